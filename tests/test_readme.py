"""The README's "first training run" runs as written: the commands are read from the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def first_run_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- first-run -->\n```bash\n(.*?)```", text, re.S)
    assert block, "README.md lost its first-run block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_first_run_commands_are_the_five_steps():
    steps = [c.split()[:2] for c in first_run_commands()]
    assert steps == [
        ["segtrain", "synth"],
        ["segtrain", "prepare"],
        ["segtrain", "fit"],
        ["segtrain", "predict"],
        ["segeval", "report"],
    ]


def test_first_run_as_written(tmp_path):
    # `segtrain` and `segeval` on PATH are this checkout's, whatever else is installed.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("segtrain", "segeval"):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m {name}.cli "$@"\n')
        shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }
    work = tmp_path / "work"
    work.mkdir()
    started = time.perf_counter()
    for command in first_run_commands():
        done = subprocess.run(
            ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (command, done.stderr[-3000:])
        assert "Traceback" not in done.stderr
    print(f"README first run: {time.perf_counter() - started:.0f} s")
    preds = pd.read_parquet(work / "first" / "preds.parquet")
    split = pd.read_parquet(work / "first" / "run" / "split.parquet")
    assert sorted(preds.image_id) == sorted(split.image_id[split.split == "val"])
    assert (work / "first" / "report.html").stat().st_size > 10_000
