"""A/B: bench/report.py's report timed for this checkout and for an earlier commit, alternately.

Run:  python bench/ab.py --base afb9b1c [--repeats 3] [--rows 200000] [--n-boot 2000]
      python bench/ab.py --base-path OLD_CHECKOUT ...   (a copy of the earlier code, no git)

Each measurement is a fresh process that times `evaluate` + `write_report` on bench/report.py's
data (200,000 predictions x 5 models x 9 segments, 2000 resamples) with one code version on the
path; the versions alternate (A, B, A, B, ...) so that a noisy, shared machine loads both alike.
The earlier commit is checked out with `git worktree` into a temporary folder and removed after.
Prints the median of each and the ratio base / this checkout (> 1: this checkout is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TIMED = """
import sys, tempfile, time, warnings
from pathlib import Path
sys.path.insert(0, {bench!r})
from report import make_predictions
from segeval.evaluation import evaluate
from segeval.report import write_report
warnings.simplefilter("ignore")
preds = make_predictions({rows})
t = time.perf_counter()
ev = evaluate(preds, segment_by="source,manufacturer", baseline="baseline", n_boot={n_boot}, seed=0)
t_eval = time.perf_counter() - t
with tempfile.TemporaryDirectory() as tmp:
    write_report(ev, Path(tmp) / "report.html")
print(t_eval, time.perf_counter() - t)
"""


def measure(tree: Path, rows: int, n_boot: int) -> tuple[float, float]:
    """(statistics, statistics + files) in seconds, in a fresh process with ``tree`` first."""
    code = TIMED.format(bench=str(ROOT / "bench"), rows=rows, n_boot=n_boot)
    env = os.environ | {"PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    stats, total = (float(v) for v in done.stdout.split())
    return stats, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the earlier commit (A)")
    parser.add_argument("--base-path", help="or a folder holding the earlier code (A)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    if not (args.base or args.base_path):
        parser.error("give --base COMMIT or --base-path FOLDER")
    times: dict[str, list[tuple[float, float]]] = {"base": [], "this": []}

    def alternate(base: Path) -> None:
        for _ in range(args.repeats):
            times["base"].append(measure(base, args.rows, args.n_boot))
            times["this"].append(measure(ROOT, args.rows, args.n_boot))

    if args.base_path:
        alternate(Path(args.base_path).resolve())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp) / "base"
            git = ["git", "-C", str(ROOT), "worktree"]
            subprocess.run([*git, "add", "-q", "--detach", str(base), args.base], check=True)
            try:
                alternate(base)
            finally:
                subprocess.run([*git, "remove", "--force", str(base)], check=True)
    print(
        f"{args.rows:,} predictions x 5 models x 9 segments, {args.n_boot} resamples, "
        f"{args.repeats} alternating runs each"
    )
    for k, what in enumerate(("statistics (evaluate)", "report (evaluate + files)")):
        a = statistics.median(t[k] for t in times["base"])
        b = statistics.median(t[k] for t in times["this"])
        runs_a = ", ".join(f"{t[k]:.1f}" for t in times["base"])
        runs_b = ", ".join(f"{t[k]:.1f}" for t in times["this"])
        print(
            f"{what}: {args.base or args.base_path} {a:.1f} s ({runs_a}); this checkout {b:.1f} s "
            f"({runs_b}); "
            f"ratio {a / b:.2f}x"
        )


if __name__ == "__main__":
    main()
