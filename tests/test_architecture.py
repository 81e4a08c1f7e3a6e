"""The layout is the architecture: the tree of docs/layout.md lists exactly what src/blockmon/
holds, every package says its job in its docstring, and the import-linter contract
keeps lower layers from importing higher ones."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "blockmon"


def documented_tree() -> list[str]:
    text = (ROOT / "docs" / "layout.md").read_text()
    block = text.split("## The tree", 1)[1].split("```", 2)[1]
    lines = block.strip().splitlines()
    assert lines[0] == "src/blockmon/"
    return [line.split()[0] for line in lines[1:]]


def test_the_documented_tree_matches_the_package_one_to_one() -> None:
    on_disk = sorted(
        f"{p.name}/" if p.is_dir() else p.name
        for p in PACKAGE.iterdir()
        if p.name not in ("__pycache__", "py.typed", "__main__.py")
    )
    assert sorted(documented_tree()) == on_disk


def test_every_package_and_module_says_its_job() -> None:
    missing = []
    for path in PACKAGE.rglob("*.py"):
        if "versions" in path.parts:  # Alembic revisions carry their own header
            continue
        tree = ast.parse(path.read_text())
        if not ast.get_docstring(tree):
            missing.append(str(path.relative_to(PACKAGE)))
    assert missing == []


def test_an_upward_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    """Run import-linter on a copy of the package with one import from config (low)
    to health (high): the contract must fail and name it."""
    lint = Path(sys.executable).parent / "lint-imports"
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "blockmon", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    log = copy / "blockmon" / "config" / "log.py"
    log.write_text(log.read_text() + "\nfrom blockmon.health.model import Status  # upward\n")
    result = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"blockmon\.config is not allowed to import blockmon\.health", result.stdout)
    assert "blockmon.config.log -> blockmon.health.model" in result.stdout

    clean = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
