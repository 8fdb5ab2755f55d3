"""Evaluation on Dask: bit-identical to the in-memory Poisson bootstrap, whatever the
partitioning or the workers; bad input in one line. Clusters listen on 127.0.0.1 only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import segeval as se  # noqa: E402
from segeval.cli import main  # noqa: E402
from segeval.distributed import read_parquet_files  # noqa: E402
from segeval.synthetic import make_predictions  # noqa: E402
from segeval.validation import InputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KW = {"segment_by": "source", "baseline": "single_segment", "n_boot": 30, "seed": 3}
# DeLong needs every row in one place; Holm is read off it only through p_value (same).
NOT_ON_DASK = ["p_value_delong"]


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        )  # fmt: skip
        with distributed.Client(cluster) as c:
            yield c
        cluster.close()


@pytest.fixture(scope="module")
def preds():
    p = make_predictions(scale=0.1)
    p["score"] = p["score"].round(2)  # many ties, some across range partitions' edges
    return p


@pytest.fixture(scope="module")
def in_memory(preds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return se.evaluate(preds, resample="poisson", **KW)


def same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    keys = ["model", "segment"]
    cols = [c for c in b.columns if c not in NOT_ON_DASK]
    left = a[cols].sort_values(keys).reset_index(drop=True)
    right = b[cols].sort_values(keys).reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_exact=True, check_dtype=False)


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_bit_identical_to_in_memory_poisson_for_any_partitioning(
    client, preds, in_memory, partitions
):
    shuffled = preds.sample(frac=1, random_state=partitions)
    ev = se.evaluate(dd.from_pandas(shuffled, npartitions=partitions), resample="poisson", **KW)
    assert isinstance(ev, se.Evaluation)
    same(in_memory.metrics, ev.metrics)
    same(in_memory.comparisons, ev.comparisons)
    pd.testing.assert_frame_equal(
        in_memory.deltas.sort_values(["model", "segment", "metric"]).reset_index(drop=True),
        ev.deltas.sort_values(["model", "segment", "metric"]).reset_index(drop=True),
        check_exact=True,
        check_dtype=False,
    )
    assert ev.segments == in_memory.segments  # the same order too
    # The report's counts and score histograms, from the same map pass.
    counts = ["segment", "n", "benign", "malignant", "prevalence"]  # patients: in memory only
    pd.testing.assert_frame_equal(in_memory.data[counts], ev.data[counts], check_exact=True)
    keys = ["model", "segment", "label", "bin_left"]
    pd.testing.assert_frame_equal(
        in_memory.score_hist.sort_values(keys).reset_index(drop=True),
        ev.score_hist.sort_values(keys).reset_index(drop=True),
        check_exact=True,
        check_dtype=False,
    )
    card = ["model", "auc", "delta_auc", "p_holm", "n_segments_worse", "worst_segment"]
    pd.testing.assert_frame_equal(in_memory.scorecard[card], ev.scorecard[card])


def test_one_worker_equals_two_and_patients_are_units(client, preds):
    kw = {**KW, "cluster": "patient_id"}
    frame = dd.from_pandas(preds, npartitions=4)
    two = se.evaluate(frame, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        memory = se.evaluate(preds, resample="poisson", **kw)
        with (
            distributed.LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster),  # the default client while open
        ):  # fmt: skip
            one = se.evaluate(frame, **kw)
    pd.testing.assert_frame_equal(one.metrics, two.metrics, check_exact=True)
    same(memory.metrics, two.metrics)


def test_bad_input_over_dask_is_one_sentence(client, preds):
    dup = pd.concat([preds, preds.iloc[:1]], ignore_index=True)  # the copy lands elsewhere
    with pytest.raises(InputError, match=r"1 duplicate \(image_id, model\) row\(s\) for model"):
        se.evaluate(dd.from_pandas(dup, npartitions=3), **KW)
    with pytest.raises(InputError, match="lack the column"):
        se.evaluate(dd.from_pandas(preds.drop(columns="score"), npartitions=2), **KW)
    bad = preds.assign(label=preds.label.where(preds.index != 5, 2))
    with pytest.raises(InputError, match="'label' must hold 0 or 1; got 2"):
        se.evaluate(dd.from_pandas(bad, npartitions=2), **KW)
    with pytest.raises(InputError, match="On Dask the metrics are wll and auc"):
        se.evaluate(dd.from_pandas(preds, npartitions=2), **{**KW, "metrics": "sens@spec=0.9"})
    first = preds.model == preds.model.iloc[0]
    flipped = preds.assign(
        label=np.where(first & (preds.index == preds.index[0]), 1 - preds.label, preds.label)
    )
    with pytest.raises(InputError, match="give different labels to the same image_id"):
        se.evaluate(dd.from_pandas(flipped, npartitions=3), **KW)
    renamed = preds.assign(
        image_id=preds.image_id.where(~first | (preds.index != preds.index[0]), "new")
    )
    with pytest.raises(InputError, match="are scored on different images"):
        se.evaluate(dd.from_pandas(renamed, npartitions=3), **KW)


def test_undefined_segments_read_as_in_memory(client, preds):
    """A segment of one class and one with a single malignant image: the same NaNs, reasons
    and point estimates as in memory, whichever partitions their rows fall in."""
    pos = preds[preds.label == 1].image_id.unique()
    neg = preds[preds.label == 0].image_id.unique()
    odd = preds.assign(
        source=np.select(
            [preds.image_id.isin(neg[:40]), preds.image_id.isin([*neg[40:80], pos[0]])],
            ["benign_only", "one_malignant"],
            preds.source,
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = se.evaluate(odd, resample="poisson", **KW)
        ev = se.evaluate(dd.from_pandas(odd.sample(frac=1, random_state=1), npartitions=5),
                         resample="poisson", **KW)  # fmt: skip
    same(mine.metrics, ev.metrics)
    same(mine.comparisons, ev.comparisons)
    rows = ev.metrics.set_index(["segment", "model"])
    assert rows.loc["benign_only"].auc.isna().all()
    assert rows.loc["one_malignant"].auc.notna().all()
    assert rows.loc["one_malignant"].auc_ci_low.isna().all()


def write_parts(preds: pd.DataFrame, folder: Path, k: int) -> None:
    folder.mkdir()
    shuffled = preds.sample(frac=1, random_state=0)
    edges = np.linspace(0, len(shuffled), k + 1).astype(int)
    for i in range(k):
        shuffled.iloc[edges[i] : edges[i + 1]].to_parquet(folder / f"part{i}.parquet", index=False)


def test_files_with_a_missing_column_or_mixed_types_are_named(tmp_path, preds):
    write_parts(preds, tmp_path / "a", 3)
    preds.iloc[:10].drop(columns="label").to_parquet(tmp_path / "a" / "part9.parquet")
    with pytest.raises(InputError, match=r"part9.parquet' lacks the column\(s\) label"):
        read_parquet_files([str(tmp_path / "a" / "*.parquet")])
    write_parts(preds, tmp_path / "b", 2)
    preds.iloc[:10].assign(score="0.5").to_parquet(tmp_path / "b" / "part9.parquet")
    with pytest.raises(InputError, match=r"Column 'score' is float in .* but text in"):
        read_parquet_files([str(tmp_path / "b" / "*.parquet")])
    with pytest.raises(InputError, match="No Parquet file matches"):
        read_parquet_files([str(tmp_path / "none" / "*.parquet")])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cli_on_a_multiprocess_cluster_started_here(tmp_path, preds, in_memory, capsys):
    write_parts(preds, tmp_path / "preds", 4)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bin_dir = Path(sys.executable).parent
    common = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = subprocess.Popen(
        [bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", "127.0.0.1:0"], **common,
    )  # fmt: skip
    worker = subprocess.Popen(
        [bin_dir / "dask", "worker", address, "--host", "127.0.0.1", "--nworkers", "2",
         "--nthreads", "1", "--dashboard-address", "127.0.0.1:0"], **common,
    )  # fmt: skip
    try:
        with distributed.Client(address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=30)
        out = tmp_path / "r.html"
        args = ["report", "--preds", str(tmp_path / "preds" / "*.parquet"), "--scheduler",
                address, "--segment-by", "source", "--baseline", "single_segment",
                "--n-boot", "30", "--seed", "3", "--out", str(out)]  # fmt: skip
        assert main(args) == 0
        metrics = pd.read_csv(tmp_path / "r_metrics.csv", keep_default_na=False)
        mine = in_memory.metrics.sort_values(["model", "segment"]).reset_index(drop=True)
        theirs = metrics.sort_values(["model", "segment"]).reset_index(drop=True)
        # Through CSV the floats keep 17 significant digits: still exact.
        np.testing.assert_array_equal(mine.auc_ci_low.to_numpy(), theirs.auc_ci_low.to_numpy())
        np.testing.assert_array_equal(mine.wll.to_numpy(), theirs.wll.to_numpy())
        page = out.read_text()  # the HTML report, saying what Dask leaves out
        assert "Evaluated on Dask" in page and "single_segment" in page
    finally:
        for p in (worker, scheduler):
            p.terminate()
            p.wait(timeout=30)


def test_cli_unreachable_scheduler_is_one_line_exit_2(tmp_path, preds, capsys):
    write_parts(preds, tmp_path / "p", 2)
    t = time.monotonic()
    code = main(["report", "--preds", str(tmp_path / "p" / "*.parquet"), "--scheduler",
                 f"tcp://127.0.0.1:{free_port()}", "--out", str(tmp_path / "r.html")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("segeval report: error: Cannot reach the Dask scheduler at")
    assert "\n" not in err
    assert time.monotonic() - t < 30


def test_import_segeval_does_not_import_dask_and_works_without_it():
    code = (
        "import sys, importlib.abc\n"
        "class NoDask(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'distributed'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoDask())\n"
        "import segeval, segeval.distributed, segeval.cli\n"
        "from segeval.synthetic import make_predictions\n"
        "ev = segeval.evaluate(make_predictions(scale=0.05), segment_by='source', n_boot=5,\n"
        "                      resample='poisson')\n"
        "assert 'dask' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
