"""terraform/*.tf parsed with python-hcl2, merged into one view for the tests.

Expressions stay strings (``"${local.functions[each.key].timeout_seconds}"``); literal
values (numbers, lists, maps written out in HCL) come back as Python values.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"

# Contract section 3: target -> folder under functions/.
FUNCTION_TARGETS = {
    "webhook": "webhook",
    "user_api": "user_api",
    "outbox_relay": "outbox_relay",
    "outbox_purge": "outbox_relay",
    "gdpr_cleanup": "gdpr_cleanup",
    "notify": "notifier",
}


@dataclass(frozen=True)
class Terraform:
    locals: dict[str, Any]
    variables: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    resources: dict[str, dict[str, dict[str, Any]]]
    data: dict[str, dict[str, dict[str, Any]]]
    ephemeral: dict[str, dict[str, dict[str, Any]]]
    text: dict[str, str]  # file name -> source text

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        return self.resources[kind][name]

    def all_text(self) -> str:
        return "\n".join(self.text.values())


def _blocks(into: dict[str, dict[str, dict[str, Any]]], entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        for kind, by_name in entry.items():
            for name, body in by_name.items():
                assert name not in into.setdefault(kind, {}), f"{kind}.{name} declared twice"
                into[kind][name] = body


@lru_cache(maxsize=1)
def load() -> Terraform:
    options = hcl2.SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    merged_locals: dict[str, Any] = {}
    variables: dict[str, dict[str, Any]] = {}
    outputs: dict[str, dict[str, Any]] = {}
    resources: dict[str, dict[str, dict[str, Any]]] = {}
    data: dict[str, dict[str, dict[str, Any]]] = {}
    ephemeral: dict[str, dict[str, dict[str, Any]]] = {}
    text: dict[str, str] = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        text[path.name] = path.read_text(encoding="utf-8")
        with path.open(encoding="utf-8") as handle:
            parsed = hcl2.load(handle, serialization_options=options)
        for block in parsed.get("locals", []):
            for key, value in block.items():
                assert key not in merged_locals, f"local.{key} declared twice"
                merged_locals[key] = value
        for block in parsed.get("variable", []):
            variables.update(block)
        for block in parsed.get("output", []):
            outputs.update(block)
        _blocks(resources, parsed.get("resource", []))
        _blocks(data, parsed.get("data", []))
        _blocks(ephemeral, parsed.get("ephemeral", []))
    return Terraform(merged_locals, variables, outputs, resources, data, ephemeral, text)


def one(block: Any) -> dict[str, Any]:
    """A nested block (hcl2 returns a list of one dict)."""
    if isinstance(block, list):
        assert len(block) == 1, block
        block = block[0]
    assert isinstance(block, dict), block
    return block


@lru_cache(maxsize=1)
def build_script() -> ModuleType:
    """terraform/build_sources.py as a module (it is a script, not a package member)."""
    spec = importlib.util.spec_from_file_location("build_sources", TERRAFORM / "build_sources.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
