"""Peak resident memory (VmHWM) of every served function, read after the load and the
GDPR run (a function those did not serve is started for it)."""

from __future__ import annotations

import re
from contextlib import suppress
from pathlib import Path

from bench.figures import Figure, measured, not_measured, peak_rss_name
from bench.session import RELAY_LOOP_SECONDS, BenchRun

TITLE = "peak memory"
FUNCTIONS = ("webhook", "notifier", "user_api", "gdpr_cleanup", "outbox_relay")
NAMES = tuple(peak_rss_name(function) for function in FUNCTIONS)


def measure(run: BenchRun) -> list[Figure]:
    load_note = "after the wrk rounds and the GDPR run above"
    notes = {
        "webhook": load_note,
        "notifier": load_note,
        "user_api": load_note,
        "gdpr_cleanup": "after the GDPR run above",
        "outbox_relay": f"called back to back ({RELAY_LOOP_SECONDS} s loops) through the GDPR run",
    }
    figures = []
    for function in FUNCTIONS:
        if function == "outbox_relay" and not run.emulator:
            why = "no Pub/Sub emulator: " + run.why_no_emulator
            figures.append(not_measured(peak_rss_name(function), why))
        else:
            figures.append(peak_rss(function, run.server(function).pid, notes[function]))
    return figures


def peak_rss(function: str, pid: int, note: str) -> Figure:
    """Peak resident memory (VmHWM) of the server process and its workers, summed."""
    pids, total, largest = [pid], 0, 0
    while pids:
        current = pids.pop()
        with suppress(OSError):
            status = Path(f"/proc/{current}/status").read_text()
            match = re.search(r"VmHWM:\s+(\d+) kB", status)
            size = int(match.group(1)) if match else 0
            total, largest = total + size, max(largest, size)
            for task in Path(f"/proc/{current}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
    return measured(
        peak_rss_name(function),
        total / 1024,
        digits=1,
        note=f"VmHWM; largest single process {largest / 1024:.1f} MiB; {note}",
    )
