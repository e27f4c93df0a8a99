"""`make bench` without running it: every figure module imports, every figure it may
report has its row in the one targets table, and the report keeps its rows' shape."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import MODULES, figure_names, main, module_name
from bench.figures import ROOT, TARGETS, Target, measured, not_measured, report


def test_the_targets_table_has_exactly_the_figures_the_modules_report_in_order() -> None:
    reported = [name for module in MODULES for name in figure_names(module)]
    assert reported == list(TARGETS)
    assert len(set(reported)) == len(reported)


def test_every_figure_module_measures_a_run_and_names_its_progress() -> None:
    for module in MODULES:
        assert callable(module.measure), module.__name__
        assert isinstance(module.TITLE, str) and module.TITLE


def test_every_name_written_out_in_a_figure_module_is_one_of_its_figures() -> None:
    """A literal name given to measured/not_measured must be in the module's NAMES (so in
    TARGETS); the others are NAMES' own constants or helpers, checked by the test above."""
    for module in MODULES:
        tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
        for call in ast.walk(tree):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id in ("measured", "not_measured")
                and isinstance(call.args[0], ast.Constant)
            ):
                assert call.args[0].value in figure_names(module), (module.__name__, call.lineno)


def test_targets_read_as_they_always_have_and_judge_unrounded_values() -> None:
    assert Target("x", "<=", 2.0).text == "<= 2.0"
    assert Target("x", ">=", 0.4).text == ">= 0.4"
    assert Target("ms", "").text == "(printed)"
    poll = "outbox poll (RFC query 3, LIMIT 100), 1M published + 10K unpublished: P95"
    figure = measured(poll, 5.0004, digits=3)
    assert (figure.value, figure.unit, figure.target, figure.passed) == (5.0, "ms", "<= 5", False)
    assert measured(poll, 1.0, holds=False).passed is False
    ratio = "relay / raw batched publish, 10,000 events to the emulator"
    assert measured(ratio, 0.6).passed is True
    assert measured("import time of functions.webhook.main", 12.0).passed is None
    missing = not_measured(ratio, "no emulator")
    assert (missing.value, missing.unit, missing.target, missing.passed) == (
        None,
        "",
        ">= 0.6",
        None,
    )


def test_the_report_prints_the_table_and_writes_the_same_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = list(TARGETS)
    figures = [measured(names[0], 1.25, digits=3), not_measured(names[-1], "no emulator")]
    results = tmp_path / "latest.json"

    report(figures, 12.3, results)

    printed = capsys.readouterr().out
    assert names[0] in printed and "1.25 ms" in printed and "pass" in printed
    assert "not measured: no emulator" in printed
    written = json.loads(results.read_text())
    assert written["seconds"] == 12.3
    assert written["figures"][0] == {
        "figure": names[0],
        "value": 1.25,
        "unit": "ms",
        "target": "<= 5",
        "passed": True,
        "note": "",
    }
    assert [row["figure"] for row in written["figures"]] == [names[0], names[-1]]


def test_python_m_bench_lists_every_figure_and_refuses_an_unknown_one() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [line for line in listed.splitlines() if not line.startswith(" ")] == [
        module_name(module) for module in MODULES
    ]
    assert all(name in listed for name in TARGETS)
    with pytest.raises(SystemExit) as refused:
        main(["queries", "nothing_by_that_name"])
    assert refused.value.code == 2
