"""The wheel: it carries the report templates, and `segeval report` runs from it in a fresh venv.

The venv sees the installed wheel and, for numpy, pandas and the rest, the dependencies already
installed on this machine (PYTHONPATH, with site processing off so that the source tree's
editable install cannot be picked up instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from segeval.synthetic import make_predictions

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("segeval-*.whl")
    return path


def test_wheel_contains_the_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for template in ("report.html.j2", "audit.html.j2", "_style.html.j2", "_data.html.j2"):
        assert f"segeval/templates/{template}" in names
    assert "segtrain/sampler.py" in names


def test_report_runs_from_the_wheel_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            # A segeval already on PYTHONPATH (a checkout being tested) must not stop the install.
            "--force-reinstall",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([site, sysconfig.get_paths()["purelib"]])}
    preds = tmp_path / "preds.parquet"
    make_predictions(scale=0.05).to_parquet(preds)
    where = subprocess.run(
        [str(python), "-S", "-c", "import segeval; print(segeval.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(venv))
    done = subprocess.run(
        [
            str(python),
            "-S",
            "-m",
            "segeval.cli",
            "report",
            "--preds",
            str(preds),
            "--segment-by",
            "source",
            "--baseline",
            "single_segment",
            "--n-boot",
            "20",
            "--out",
            "out/report.html",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Comparison to the baseline" in (tmp_path / "out" / "report.html").read_text()
