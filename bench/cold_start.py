"""Cold start: the webhook against hello-world (start to the first signed 200), and the
import time of every function's module."""

from __future__ import annotations

import compileall
import statistics
import subprocess
import sys

from bench.figures import (
    ROOT,
    RUNS,
    Figure,
    function_modules,
    import_time_name,
    measured,
)
from bench.serving import FUNCTIONS, serve
from bench.session import BenchRun

TITLE = "cold start"
COLD_START = "cold start: webhook / hello-world (start to first signed 200)"
NAMES = (COLD_START, *(import_time_name(module) for module in function_modules()))
COLD_RUNS = 5


def compile_sources() -> None:
    """Bytecode for our modules, as a deployed image that has started once has it.

    This machine sets PYTHONDONTWRITEBYTECODE=1, so without this every measured start
    would compile ~6,000 lines of ours from source (~40 ms) while hello-world compiles 10.
    """
    for folder in ("shared", "functions", "bench/hello"):
        compileall.compile_dir(ROOT / folder, quiet=1)


def measure(run: BenchRun) -> list[Figure]:
    run.stop_servers()  # starts are timed on a machine not serving the earlier figures
    return cold_start(run.env)


def cold_start(env: dict[str, str]) -> list[Figure]:
    compile_sources()
    webhook_times, hello_times = [], []
    for _ in range(COLD_RUNS):
        with serve(FUNCTIONS["hello"], env) as served:
            hello_times.append(served.seconds)
        with serve(FUNCTIONS["webhook"], env) as served:
            webhook_times.append(served.seconds)
    hello, webhook = statistics.median(hello_times), statistics.median(webhook_times)
    figures = [
        measured(
            COLD_START,
            webhook / hello,
            digits=2,
            note=f"webhook {webhook * 1000:.0f} ms, hello {hello * 1000:.0f} ms, median of"
            f" {COLD_RUNS} alternating starts, bytecode compiled beforehand",
        ),
    ]
    for module in function_modules():
        code = (
            f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        )
        seconds = statistics.median(
            float(
                subprocess.run(
                    [sys.executable, "-c", code],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(RUNS)
        )
        figures.append(measured(import_time_name(module), seconds * 1000, digits=1))
    return figures
