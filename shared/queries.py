"""Every SQL statement the service runs lives in shared/sql/*.sql, one named block each.

    -- name: find_user_by_phone
    -- Every webhook: the unique index idx_users_phone makes this one index probe.
    SELECT ... WHERE phone_number = :phone_number;

Parameters use pg8000's ``named`` style (``:name``). Blocks are parsed once per process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent / "sql"
_NAME_LINE = re.compile(r"^--\s*name:\s*(?P<name>[a-z_][a-z0-9_]*)\s*$")


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    sql: str


def parse_queries(text: str, source: str = "<string>") -> dict[str, Query]:
    queries: dict[str, Query] = {}
    name: str | None = None
    description: list[str] = []
    body: list[str] = []

    def flush() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip().rstrip(";").strip()
        if not sql:
            raise ValueError(f"{source}: query {name} has no SQL")
        if name in queries:
            raise ValueError(f"{source}: query {name} defined twice")
        queries[name] = Query(name=name, description=" ".join(description), sql=sql)

    for line in text.splitlines():
        match = _NAME_LINE.match(line.strip())
        if match:
            flush()
            name, description, body = match["name"], [], []
        elif name is not None and not body and line.strip().startswith("--"):
            description.append(line.strip().removeprefix("--").strip())
        elif name is not None:
            body.append(line)
    flush()
    return queries


@lru_cache(maxsize=1)
def all_queries() -> dict[str, Query]:
    merged: dict[str, Query] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        for name, query in parse_queries(path.read_text(encoding="utf-8"), path.name).items():
            if name in merged:
                raise ValueError(f"{path.name}: query {name} is also defined elsewhere")
            merged[name] = query
    return merged


def sql(name: str) -> str:
    return all_queries()[name].sql
