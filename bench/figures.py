"""What `make bench` reports: every figure's target in one table, and the report.

A figure module measures and calls ``measured(name, value, ...)``; its unit, target and
whether it passed come from ``TARGETS`` here, so a target is changed in one place and a
figure without a row cannot be reported (``tests/bench`` checks every name used).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.seed import INACTIVE_USERS, USERS

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
RUNS = 3  # every latency is the median of RUNS runs' P95


@dataclass(frozen=True)
class Target:
    unit: str
    comparison: str  # "<=", ">=", or "" for a figure only printed
    limit: float | None = None

    @property
    def text(self) -> str:
        return f"{self.comparison} {self.limit}" if self.limit is not None else "(printed)"

    def met_by(self, value: float) -> bool | None:
        if self.limit is None:
            return None
        return value >= self.limit if self.comparison == ">=" else value <= self.limit


def peak_rss_name(function: str) -> str:
    return f"peak RSS of {function} (server + workers, summed)"


def import_time_name(module: str) -> str:
    return f"import time of {module}"


def function_modules() -> list[str]:
    """``functions.<dir>.main`` of every function, as the cold-start figures name them."""
    return [
        f"functions.{main.parent.name}.main" for main in sorted(ROOT.glob("functions/*/main.py"))
    ]


GDPR_TOTAL = f"GDPR job, {INACTIVE_USERS:,} inactive of {USERS:,} users: total"

# In the order the report prints them.
TARGETS: dict[str, Target] = {
    "outbox poll (RFC query 3, LIMIT 100), 1M published + 10K unpublished: P95": Target(
        "ms", "<=", 5
    ),
    "user lookup by phone, 1M users: P95": Target("ms", "<=", 1),
    "preferences fetch, 1M users: P95": Target("ms", "<=", 1),
    "webhook, verified user text, 1 connection: P50": Target("ms", "<=", 4),
    "webhook, verified user text, 1 connection: P95": Target("ms", "<=", 10),
    "webhook, new-user YES (user + outbox + SMS to stand-in): P95": Target("ms", "<=", 25),
    "webhook throughput at 16 connections / hello-world": Target("x", ">=", 0.4),
    "notifier sends/s to the Twilio stand-in / webhook throughput": Target("x", ">=", 0.5),
    GDPR_TOTAL: Target("s", "<=", 60),
    "GDPR job: longest transaction": Target("s", "<=", 1),
    "GDPR job: webhook P95 during the run / idle": Target("x", "<=", 2),
    peak_rss_name("webhook"): Target("MiB", "<=", 160),
    peak_rss_name("notifier"): Target("MiB", "<=", 256),
    peak_rss_name("user_api"): Target("MiB", "<=", 256),
    peak_rss_name("gdpr_cleanup"): Target("MiB", "<=", 256),
    peak_rss_name("outbox_relay"): Target("MiB", "<=", 256),
    "cold start: webhook / hello-world (start to first signed 200)": Target("x", "<=", 2.0),
    **{import_time_name(module): Target("ms", "") for module in function_modules()},
    "relay / raw batched publish, 10,000 events to the emulator": Target("x", ">=", 0.6),
}


@dataclass(frozen=True)
class Figure:
    figure: str
    value: float | None
    unit: str
    target: str
    passed: bool | None
    note: str = ""


def measured(
    name: str, value: float, *, digits: int | None = None, note: str = "", holds: bool = True
) -> Figure:
    """The figure ``name`` at ``value`` (judged unrounded, shown to ``digits``); ``holds``
    is a further condition of passing (the plan uses the index, the job finished)."""
    target = TARGETS[name]
    met = target.met_by(value)
    shown = value if digits is None else round(value, digits)
    return Figure(
        name, shown, target.unit, target.text, None if met is None else met and holds, note
    )


def not_measured(name: str, why: str) -> Figure:
    return Figure(name, None, "", TARGETS[name].text, None, f"not measured: {why}")


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(figures: list[Figure], seconds: float, results: Path | None = RESULTS) -> None:
    """The table on stdout; the same rows to ``results`` (none for a partial run)."""

    def verdict(figure: Figure) -> str:
        return {True: "pass", False: "FAIL", None: "-"}[figure.passed]

    def value(figure: Figure) -> str:
        return "not measured" if figure.value is None else f"{figure.value:g} {figure.unit}"

    width = max(len(figure.figure) for figure in figures)
    print(f"\n{'figure':<{width}}  {'value':>14}  {'target':>9}  result")
    print("-" * (width + 36))
    for figure in figures:
        print(
            f"{figure.figure:<{width}}  {value(figure):>14}  {figure.target:>9}  {verdict(figure)}"
        )
        if figure.note:
            print(f"{'':<{width}}    {figure.note}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\n{machine}; total {seconds:.0f} s")
    if results is None:
        print("a partial run: no results file written")
        return
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps(
            {
                "machine": machine,
                "seconds": round(seconds, 1),
                "figures": [asdict(figure) for figure in figures],
            },
            indent=2,
        )
    )
    shown = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    print(f"written to {shown}")
