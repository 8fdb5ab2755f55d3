"""Package structure: segeval works without torch and never imports upwards."""

from __future__ import annotations

import ast
import importlib
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


# segeval's layers, bottom up: a module imports its own layer and those below, never above.
LAYERS = (
    ("core", {"validation", "_kernels", "_op_kernels", "_slice_kernels", "segments", "dtypes"}),
    (
        "statistics",
        {
            "metrics",
            "op_metrics",
            "registry",
            "resampling",
            "significance",
            "delong",
            "op_spread",
            "audit",
            "diagnostics",
            "scorecard",
            "synthetic",
        },
    ),
    ("engine", {"engine"}),
    ("views", {"bootstrap", "table", "synchronization", "frames", "runs", "leakage", "slices"}),
    ("files", {"io"}),
    (
        "evaluation and presentation",
        {"evaluation", "distributed", "discover", "report", "plots", "plot"},
    ),
    ("interface", {"cliutils", "cli", "__init__"}),
)


def segeval_imports(path: Path) -> set[str]:
    """The segeval modules ``path`` imports (``from segeval import x`` counts x if a module)."""
    modules = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "segeval":
            modules |= {a.name for a in node.names if (ROOT / "segeval" / f"{a.name}.py").exists()}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("segeval."):
            modules.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            modules |= {a.name.split(".")[1] for a in node.names if a.name.startswith("segeval.")}
    return modules


def test_every_segeval_module_has_a_layer_and_imports_none_above_it():
    layer_of = {name: k for k, (_, names) in enumerate(LAYERS) for name in names}
    present = {p.stem for p in (ROOT / "segeval").glob("*.py")}
    assert sorted(present - set(layer_of)) == [], "modules without a layer"
    assert sorted(set(layer_of) - present) == [], "layers list modules that do not exist"
    for name in sorted(present):
        above = {
            m
            for m in segeval_imports(ROOT / "segeval" / f"{name}.py")
            if layer_of[m] > layer_of[name]
        }
        assert not above, f"{name} ({LAYERS[layer_of[name]][0]}) imports {sorted(above)}"


def test_segtrain_imports_only_declared_segeval_names():
    # What segtrain takes from segeval is declared there (__all__): the surface segeval keeps.
    for path in sorted((ROOT / "segtrain").glob("*.py")):
        tree = ast.parse(path.read_text())
        aliases = {
            a.asname or a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for a in node.names
            if a.name == "segeval"
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "segeval":
                module = importlib.import_module(node.module)
                declared = getattr(module, "__all__", None)
                assert declared is not None, f"{path.name}: {node.module} declares no __all__"
                undeclared = sorted({a.name for a in node.names} - set(declared))
                assert not undeclared, f"{path.name} imports {undeclared} from {node.module}"
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                assert node.attr in segeval.__all__, f"{path.name} uses segeval.{node.attr}"


def test_public_api_is_exported():
    for name in segeval.__all__:
        assert hasattr(segeval, name), name
    for module in ("io", "cliutils", "segments", "validation"):
        declared = importlib.import_module(f"segeval.{module}")
        for name in declared.__all__:
            assert hasattr(declared, name), (module, name)


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


def test_segtrain_has_a_face():
    code = (
        "import segtrain\n"
        "from segtrain import PeriodicBatchSampler, TrainConfig, fit, predict\n"
        "from segtrain.sampler import PeriodicBatchSampler as S\n"
        "from segtrain.predict import predict as p\n"
        "assert PeriodicBatchSampler is S and predict is p and segtrain.predict is p\n"
        "assert callable(fit) and TrainConfig.__name__ == 'TrainConfig'\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
