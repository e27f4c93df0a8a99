"""Every function's module freezes what it imported (shared/startup.py): a fresh
interpreter shows the collector's permanent generation filled by the import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(f"functions.{main.parent.name}.main" for main in ROOT.glob("functions/*/main.py"))


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_function_freezes_what_it_imported(module: str) -> None:
    script = (
        "import gc; print(gc.get_freeze_count()); "
        f"import {module}; print(gc.get_freeze_count(), len(gc.get_objects()))"
    )
    before, after, still_collected = map(
        int,
        subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split(),
    )
    assert before == 0
    # Tens of thousands of objects (modules, classes, functions) go to the permanent
    # generation; what the collector still sees is only what came after the freeze.
    assert after > 20_000
    assert still_collected < after / 10
