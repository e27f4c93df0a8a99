"""The archive Terraform uploads imports exactly like the local code.

For every function target: build its archive with terraform/build_sources.py into a
temporary folder, unpack it, and in a fresh interpreter (cwd = the unpacked archive, no
PYTHONPATH) load the target the way the Cloud Functions runtime does
(functions_framework.create_app(target, "main.py")). Every module of ours that gets
imported must come from the archive, never from the checkout, and every third-party
distribution it pulls in must be installed by the archive's requirements.txt, and no
module of tools/ (the CLI and the dev stack) may be imported or archived.

Statically, every module of shared/ must be reachable from a function's main.py through
import statements (lazy ones inside functions count), and every line of the functions'
requirements.txt must be imported by that code: shared/ holds only what the functions run.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from tests.terraform.hcl import FUNCTION_TARGETS, REPO

BUILD_SCRIPT = REPO / "terraform" / "build_sources.py"
PYTHON = sys.executable  # the project's .venv interpreter under `make test`

_PROBE = r"""
import json, sys
from importlib import metadata
from pathlib import Path
import functions_framework

target = sys.argv[1]
app = functions_framework.create_app(target=target, source="main.py")
ours = {}
third_party = set()
distributions = metadata.packages_distributions()
# A namespace package ("google") spans many distributions: name the one owning the file.
owners = {
    str(dist.locate_file(file).resolve()): dist.metadata["Name"]
    for dist in metadata.distributions()
    for file in dist.files or ()
    if file.suffix in (".py", ".so")
}
for name, module in sorted(sys.modules.items()):
    top = name.split(".")[0]
    file = getattr(module, "__file__", None)
    if top in ("main", "shared", "tools"):
        ours[name] = file
    elif top in distributions:
        owner = owners.get(str(Path(file).resolve())) if file else None
        if owner:
            third_party.add(owner)
        elif len(distributions[top]) == 1:
            third_party.update(distributions[top])
print(json.dumps({"ours": ours, "third_party": sorted(third_party), "app": type(app).__name__}))
"""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_closure(requirements: list[str]) -> set[str]:
    """Every distribution pip installs for these requirement lines (extras included)."""
    seen: set[str] = set()
    pending: list[tuple[str, set[str]]] = []
    for line in requirements:
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[([^\]]+)\])?", line)
        assert match, line
        extras = {e.strip() for e in (match.group(3) or "").split(",") if e.strip()}
        pending.append((match.group(1), extras))
    while pending:
        name, extras = pending.pop()
        key = _normalise(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            seen.add(key)
            continue
        if key in seen and not extras:
            continue
        seen.add(key)
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
            if extra and extra.group(1) not in extras:
                continue
            dep = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[([^\]]+)\])?", spec)
            if dep:
                sub_extras = {e.strip() for e in (dep.group(3) or "").split(",") if e.strip()}
                pending.append((dep.group(1), sub_extras))
    return seen


def _build(tmp_path: Path, name: str) -> tuple[Path, str]:
    out = tmp_path / "out"
    result = subprocess.run(
        [PYTHON, str(BUILD_SCRIPT), "--out", str(out), "--only", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    built = json.loads(result.stdout)
    return Path(built[name]), built[f"{name}_sha256"]


def _directory_of(target: str) -> str:
    return FUNCTION_TARGETS[target]


@pytest.mark.parametrize("target", sorted(FUNCTION_TARGETS))
def test_archive_imports_the_target_like_the_local_code(tmp_path: Path, target: str) -> None:
    directory = _directory_of(target)
    if not (REPO / "functions" / directory / "main.py").is_file():
        pytest.skip(f"functions/{directory}/main.py is not written yet")
    archive, _ = _build(tmp_path, directory)
    unpacked = tmp_path / "workspace"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    probe = subprocess.run(
        [PYTHON, "-c", _PROBE, target],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert probe.returncode == 0, probe.stderr[-3000:]
    loaded = json.loads(probe.stdout.strip().splitlines()[-1])
    assert "main" in loaded["ours"]
    outside = {
        name: path
        for name, path in loaded["ours"].items()
        if path is not None and not Path(path).resolve().is_relative_to(unpacked.resolve())
    }
    assert outside == {}, "imported from the checkout, not from the archive"
    tool_modules = sorted(name for name in loaded["ours"] if name.split(".")[0] == "tools")
    assert tool_modules == [], "a function imports the tools"
    assert not (unpacked / "tools").exists()
    requirements = [
        line.strip()
        for line in (unpacked / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    installed_by_requirements = _requirement_closure(requirements)
    missing = {
        dist
        for dist in loaded["third_party"]
        if _normalise(dist) not in installed_by_requirements and _normalise(dist) != "setuptools"
    }
    assert missing == set(), f"imported but not installed by requirements.txt: {missing}"


def _written_directories() -> list[str]:
    return [
        d
        for d in sorted(set(FUNCTION_TARGETS.values()))
        if (REPO / "functions" / d / "main.py").is_file()
    ]


def test_archive_carries_every_file_of_the_shared_package(tmp_path: Path) -> None:
    written = _written_directories()
    if not written:
        pytest.skip("no function written yet")
    archive, _ = _build(tmp_path, written[0])

    with zipfile.ZipFile(archive) as zipped:
        names = set(zipped.namelist())

    expected = {
        "shared/" + path.relative_to(REPO / "shared").as_posix()
        for path in (REPO / "shared").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert expected - names == set()
    assert any(name.startswith("shared/sql/") and name.endswith(".sql") for name in names)
    assert {"requirements.txt", "main.py"} <= names
    assert "__init__.py" not in names
    assert not any("__pycache__" in name for name in names)
    assert not any(name.startswith("tools/") for name in names)


def test_archives_are_reproducible_and_skip_migration_only_requirements(tmp_path: Path) -> None:
    first, first_sha = _build(tmp_path / "a", "migrate")
    second, second_sha = _build(tmp_path / "b", "migrate")

    assert first_sha == second_sha == hashlib.sha256(first.read_bytes()).hexdigest()
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as zipped:
        names = set(zipped.namelist())
    assert {"pyproject.toml", "README.md", "migrations/env.py", "tools/cli.py"} <= names
    assert {"tools/migrate.py", "tools/commands/migrate.py"} <= names
    written = _written_directories()
    if written:
        archive, _ = _build(tmp_path / "c", written[0])
        with zipfile.ZipFile(archive) as zipped:
            requirements = zipped.read("requirements.txt").decode()
        assert "functions-framework" in requirements
        assert "alembic" not in requirements
        assert "sqlalchemy" not in requirements


# --- shared/ holds only what the functions run --------------------------------------------

# Listed in requirements.txt though no code of ours imports it: redis-py imports it itself.
_IMPORTED_BY_A_DEPENDENCY = {"hiredis": "redis-py's C reply parser, used when installed"}


def _imports(path: Path) -> set[str]:
    """Every module an `import`/`from ... import` anywhere in the file may name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reachable_from_the_functions() -> tuple[set[str], set[str]]:
    """(our modules reachable from functions/*/main.py, third-party names they import)."""
    pending = [
        path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".")
        for path in sorted((REPO / "functions").glob("*/main.py"))
    ]
    seen: set[str] = set()
    third_party: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(module)
        assert path is not None, module
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)) if parts[0] == "shared")
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("shared", "functions", "tools"):
                if _module_file(name) is not None:
                    pending.append(name)
            elif top not in sys.stdlib_module_names and top != "main":
                third_party.add(name)
    return seen, third_party


def test_every_module_of_shared_is_reachable_from_a_function() -> None:
    reachable, _ = _reachable_from_the_functions()
    modules = {
        path.relative_to(REPO)
        .with_suffix("")
        .as_posix()
        .replace("/", ".")
        .removesuffix(".__init__")
        for path in (REPO / "shared").rglob("*.py")
    }

    assert not any(name.split(".")[0] == "tools" for name in reachable)
    assert sorted(modules - reachable) == [], "in shared/ but no function runs it: move to tools/"


@functools.cache
def _file_owners() -> dict[Path, str]:
    return {
        Path(dist.locate_file(file)).resolve(): dist.metadata["Name"]
        for dist in metadata.distributions()
        for file in dist.files or ()
        if file.suffix in (".py", ".so")
    }


def _distribution_of(name: str) -> str:
    """The installed distribution a dotted import name comes from (its longest importable prefix)."""
    parts = name.split(".")
    for length in range(len(parts), 0, -1):
        try:
            spec = importlib.util.find_spec(".".join(parts[:length]))
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and spec.origin not in ("built-in", "frozen"):
            owner = _file_owners().get(Path(spec.origin).resolve())
            if owner:
                return _normalise(owner)
    raise AssertionError(f"no installed distribution provides {name}")


def _function_requirements() -> list[str]:
    spec = importlib.util.spec_from_file_location("build_sources", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.function_requirements()
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_the_functions_requirements_are_what_the_functions_import() -> None:
    _, imported = _reachable_from_the_functions()
    imported_distributions = {_distribution_of(name) for name in imported}
    listed = {
        _normalise(re.split(r"[\[<>=!~;@ ]", line, maxsplit=1)[0])
        for line in _function_requirements()
    }

    assert listed - imported_distributions - set(_IMPORTED_BY_A_DEPENDENCY) == set(), (
        "required but imported by no function: make it an extra for the tools, or drop it"
    )
    assert imported_distributions - _requirement_closure(_function_requirements()) == set()


def test_nothing_deployed_or_tooled_imports_the_tests_or_the_bench() -> None:
    importers = {
        f"{path.relative_to(REPO)}: {name}"
        for folder in ("shared", "functions", "tools")
        for path in sorted((REPO / folder).rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] in ("tests", "bench")
    }

    assert importers == set()
