"""Every benchmark of issue 11, one command: ``make bench`` (``python -m bench``).

    python -m bench [FIGURES ...]   e.g. ``python -m bench cold_start relay_throughput``
    python -m bench --list          the figures, their targets and the module of each

Sets up its own data in a database of its own (``wh_bench_<random>``, migrated, seeded
when a figure needs it, dropped at the end) on the real PostgreSQL, Redis, Twilio stand-in
and Pub/Sub emulator of this machine (``bench/session.py``), runs one module a figure
group in the order below, prints a table (figure, value, unit, target, pass/fail) and, for
a whole run, writes the same rows to ``bench/results/latest.json``. Targets live in one
table, ``bench/figures.py``. Every latency figure is the median of three runs' P95; every
ratio is measured side by side in one run.

Under load (wrk, 16 connections, ``bench/load.py``): every webhook request is a distinct
signed message from a distinct verified user (never a deduplicated repeat), beside the
hello-world function, the notifier (Pub/Sub push CloudEvents, sends counted at the Twilio
stand-in) and user_api, in RUNS rounds. Then the GDPR job on 100,000 inactive of 1,000,000
users (``bench/gdpr_job.py``). Peak RSS (VmHWM) of every function is read after all that;
the cold starts and the relay's ratio come last, once the servers have stopped.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from types import ModuleType

from bench import (
    cold_start,
    gdpr_job,
    memory,
    queries,
    relay_throughput,
    throughput,
    webhook_latency,
)
from bench.figures import RESULTS, TARGETS, Figure, report
from bench.session import BenchRun, bench_run

# In this order: memory is read after the load and the GDPR run; cold starts want the
# servers gone.
MODULES: tuple[ModuleType, ...] = (
    queries,
    webhook_latency,
    throughput,
    gdpr_job,
    memory,
    cold_start,
    relay_throughput,
)


def module_name(module: ModuleType) -> str:
    return module.__name__.rsplit(".", 1)[-1]


def figure_names(module: ModuleType) -> tuple[str, ...]:
    return tuple(module.NAMES)


def measure(module: ModuleType) -> Callable[[BenchRun], list[Figure]]:
    function: Callable[[BenchRun], list[Figure]] = module.measure
    return function


def listing() -> str:
    lines = []
    for module in MODULES:
        lines.append(module_name(module))
        lines += [
            f"  {name}  {TARGETS[name].text} {TARGETS[name].unit}".rstrip()
            for name in figure_names(module)
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    names = [module_name(module) for module in MODULES]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("figures", nargs="*", metavar="FIGURES", help="any of: " + ", ".join(names))
    parser.add_argument("--list", action="store_true", help="the figures and their targets")
    args = parser.parse_args(argv)
    if args.list:
        print(listing())
        return 0
    unknown = sorted(set(args.figures) - set(names))
    if unknown:
        parser.error(f"no figures named {', '.join(unknown)}: choose from {', '.join(names)}")
    chosen = [module for module in MODULES if module_name(module) in (args.figures or names)]
    begun = time.perf_counter()
    figures: list[Figure] = []
    with bench_run() as run:
        for module in chosen:
            figures += measure(module)(run)
            print(f"{module.TITLE} measured", flush=True)
    results = RESULTS if len(chosen) == len(MODULES) else None  # a part would hide the rest
    report(figures, time.perf_counter() - begun, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
