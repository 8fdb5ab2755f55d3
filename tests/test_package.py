"""Package structure: segeval works without torch and never imports upwards."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import segeval

ROOT = Path(__file__).resolve().parents[1]


def test_segeval_imports_without_torch():
    code = (
        "import sys, pkgutil, importlib, importlib.abc\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoTorch())  # as if torch were not installed\n"
        "import segeval\n"
        "for m in pkgutil.walk_packages(segeval.__path__, 'segeval.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_segeval_never_imports_segtrain_or_torch():
    for path in (ROOT / "segeval").glob("*.py"):
        roots = {name.split(".")[0] for name in imported_modules(path)}
        assert not roots & {"segtrain", "torch"}, path.name


def test_statistics_do_not_import_the_layers_above():
    # Pure statistics at the bottom; evaluation, reporting and CLI on top.
    upper = {"segeval.cli", "segeval.cliutils", "segeval.report", "segeval.evaluate", "segeval.io"}
    for name in (
        "_kernels",
        "validation",
        "metrics",
        "resampling",
        "op_spread",
        "engine",
        "bootstrap",
        "delong",
        "significance",
        "segments",
        "table",
        "synchronization",
        "leakage",
        "runs",
    ):
        assert not imported_modules(ROOT / "segeval" / f"{name}.py") & upper, name


def test_public_api_is_exported():
    for name in segeval.__all__:
        assert hasattr(segeval, name), name


def test_segtrain_uses_only_segeval_public_modules():
    # segtrain builds on segeval's public API; a private segeval module may change at any time.
    for path in (ROOT / "segtrain").glob("*.py"):
        private = {
            name
            for name in imported_modules(path)
            if name.startswith("segeval.") and name.split(".")[1].startswith("_")
        }
        assert not private, f"{path.name} imports {sorted(private)}"


def test_only_the_cli_may_choose_a_matplotlib_backend():
    for path in (ROOT / "segeval").glob("*.py"):
        if path.name != "cli.py":
            assert "matplotlib.use(" not in path.read_text(), path.name


DRAWING = {
    "bootstrap_distribution",
    "child_seeds",
    "draw",
    "local_draw",
    "counts_matrix",
    "poisson_counts",
    "poisson_block",
}


def names_used(path: Path) -> set[str]:
    """Every name and attribute a module refers to."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name):
            out.add(node.id)
        elif isinstance(node, ast.Attribute):
            out.add(node.attr)
        elif isinstance(node, ast.alias):
            out.add(node.name)
    return out


def test_only_the_engine_draws_resamples():
    # Every view (bootstrap, table, synchronization, leakage, runs, evaluation, report…) goes
    # through engine.evaluate_part; the machinery lives in resampling.py. The one exception is
    # distributed.py: its whole-set map computes each partition's Poisson counts itself (they
    # cannot be drawn in one process), through resampling.poisson_counts, the very function
    # the engine's Poisson resamples come from; its segments go through evaluate_part.
    for path in (ROOT / "segeval").glob("*.py"):
        if path.name in ("engine.py", "resampling.py", "distributed.py"):
            continue
        assert not names_used(path) & DRAWING, f"{path.name} draws resamples itself"
    assert names_used(ROOT / "segeval" / "engine.py") & DRAWING  # the test sees the engine's
