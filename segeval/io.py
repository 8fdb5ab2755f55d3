"""Reading and writing the files segeval exchanges: predictions in, tables and JSON out.

Every reader validates at the boundary and raises :class:`InputError` with one sentence naming
the file, the column and the value; every writer goes through a temporary file and ``os.replace``
so that a file written before is never left half-overwritten.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segeval.validation import InputError, describe_values

__all__ = [
    "METRICS_LOG_FIELDS",
    "PREDICTION_COLUMNS",
    "RunFiles",
    "atomic_write",
    "check_cluster_column",
    "check_columns",
    "check_label_column",
    "check_predictions",
    "check_required_columns",
    "check_unique_images",
    "file_record",
    "json_text",
    "predictions_file_records",
    "read_metrics_log",
    "read_predictions",
    "read_runs",
    "read_table",
    "run_model_name",
    "runs_as_models",
    "to_jsonable",
    "write_csv",
    "write_files",
    "write_json",
    "write_parquet",
    "write_text",
]

PREDICTION_COLUMNS = ("image_id", "label", "score")


def read_table(path: str | Path, what: str = "file") -> pd.DataFrame:
    """Read a Parquet or CSV file (by extension) into a DataFrame, or raise InputError."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The {what} {str(p)!r} does not exist.")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(p)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(p, dtype={"image_id": str, "patient_id": str})
    except Exception as exc:  # the readers raise many types; all mean "not readable"
        kind = "Parquet" if suffix in (".parquet", ".pq") else "CSV"
        raise InputError(f"The {what} {str(p)!r} is not a readable {kind} file ({exc}).") from exc
    got = suffix or "no extension"
    raise InputError(
        f"The {what} {str(p)!r} must be Parquet (.parquet) or CSV (.csv); got {got!r}."
    )


def read_predictions(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Read and validate one or more predictions files (the DESIGN predictions contract).

    A file without a ``model`` column takes its file stem as model name. The checks are those of
    :func:`check_predictions`.
    """
    if not paths:
        raise InputError("No predictions file was given.")
    frames = []
    for path in paths:
        df = read_table(path, "predictions file")
        name = str(path)
        check_required_columns(df, PREDICTION_COLUMNS, name, "predictions file")
        if "model" not in df.columns:
            df = df.assign(model=Path(path).stem)
        _check_column_values(df, name)
        frames.append(df)
    if any("run" in f.columns for f in frames):
        # A file without a run column, beside files with one, holds one run of each model.
        frames = [f if "run" in f.columns else f.assign(run="0") for f in frames]
    return check_predictions(pd.concat(frames, ignore_index=True), checked=True)


def check_predictions(
    predictions: Any, name: str = "predictions", *, checked: bool = False
) -> pd.DataFrame:
    """Validate a predictions table and return it with clean types (a new pandas DataFrame).

    Accepts a pandas DataFrame or any frame with ``to_pandas()`` (polars). Checks: the columns
    ``image_id, label, score`` (``model`` defaults to one model named ``"model"``), labels in
    {0, 1}, finite numeric scores in [0, 1], ids of one type (:func:`check_id_column`) and no
    missing image_id, no repeated (image_id, model[, run]), and every model (every run) scored
    on the same images (paired comparisons align rows on ``image_id``). The result holds the
    user's columns and no other: ``image_id``, ``model`` and ``run`` as text, ``label`` int8,
    ``score`` float64. An optional ``run`` column holds several training runs of a model; see
    :func:`runs_as_models` for how they are evaluated.
    """
    if hasattr(predictions, "to_pandas") and not isinstance(predictions, pd.DataFrame):
        predictions = pd.DataFrame(predictions.to_pandas())
    if not isinstance(predictions, pd.DataFrame):
        raise InputError(
            f"predictions must be a pandas or polars DataFrame; got {type(predictions).__name__}."
        )
    if not checked:
        check_required_columns(predictions, PREDICTION_COLUMNS, name, "predictions table")
        if "model" not in predictions.columns:
            predictions = predictions.assign(model="model")
        _check_column_values(predictions, name)
    preds: pd.DataFrame = predictions.copy()
    _check_no_missing(preds, "image_id", name, "every row needs an image_id")
    _check_no_missing(preds, "model", name, "every row needs a model name")
    if "run" in preds.columns:
        _check_no_missing(preds, "run", name, "give every row its run, or drop the column")
    for column in ("image_id", "model", "run"):
        if column in preds.columns:
            check_id_column(preds[column], column, name)
            preds[column] = preds[column].astype(str)
    empty = preds["model"].str.strip() == ""
    if empty.any():
        raise InputError(
            f"Column 'model' of {name!r} holds an empty name in {int(empty.sum())} row(s); give "
            "every model a name (a report and a baseline refer to it)."
        )
    if "patient_id" in preds.columns:  # the data table counts patients
        check_id_column(preds["patient_id"], "patient_id", name)
    preds["label"] = pd.to_numeric(preds["label"]).astype(np.int8)
    preds["score"] = pd.to_numeric(preds["score"]).astype(np.float64)
    evaluated, _ = runs_as_models(preds)
    dup = evaluated.duplicated(["image_id", "model"])
    if dup.any():
        first = evaluated.loc[dup].iloc[0]
        key, per = (
            ("(image_id, model, run)", "run") if "run" in preds else ("(image_id, model)", "model")
        )
        hint = (
            ""
            if "run" in preds
            else " (several training runs of a model, e.g. seeds, go in a 'run' column)"
        )
        raise InputError(
            f"{int(dup.sum())} duplicate {key} row(s), first image_id {first.image_id!r} for "
            f"model {first.model!r}; each image is scored once per {per}{hint}."
        )
    _check_same_images(evaluated)
    return preds


def check_cluster_column(preds: pd.DataFrame, cluster: str, name: str = "predictions") -> None:
    """The ``cluster`` column exists, and names every row's cluster with ids of one type."""
    check_columns(preds, [cluster], "cluster")
    _check_no_missing(preds, cluster, name, f"every row needs its {cluster} to resample it whole")
    blank = preds[cluster].astype(str).str.strip() == ""
    if blank.any():
        raise InputError(
            f"Column {cluster!r} of {name!r} is empty in {int(blank.sum())} row(s); every row "
            f"needs its {cluster} to resample it whole."
        )
    check_id_column(preds[cluster], cluster, name)


# The types an id (image_id, model, run, a cluster column) may have, by the name messages use.
_ID_KINDS: tuple[tuple[tuple[type, ...], str], ...] = (
    ((bool, np.bool_), "booleans"),
    ((int, np.integer), "integers"),
    ((float, np.floating), "floats"),
    ((str,), "strings"),
)


def check_id_column(column: pd.Series, what: str, name: str) -> None:
    """Raise InputError unless the ids in ``column`` are scalars of one kind.

    Ids are compared as text, so integers beside strings (``1`` and ``"1"``) would silently
    merge, and lists or other objects would be named by their repr: both are refused.
    """
    values = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column
    if not pd.api.types.is_object_dtype(values.dtype):
        return  # a typed column holds one kind of value
    kinds: dict[str, Any] = {}
    for value in values.dropna():
        kind = next((k for types, k in _ID_KINDS if isinstance(value, types)), None)
        if kind is None:
            raise InputError(
                f"Column {what!r} of {name!r} holds {type(value).__name__} values such as "
                f"{value!r:.40}; "
                f"each {what} must be one string or number, e.g. 's0' or 0."
            )
        kinds.setdefault(kind, value)
        if len(kinds) > 1:
            (k1, v1), (k2, v2) = kinds.items()
            raise InputError(
                f"Column {what!r} of {name!r} mixes {k1} and {k2} (e.g. {v1!r} and {v2!r}), "
                f"which are ambiguous as ids; give every {what} the same type, e.g. all strings."
            )


def check_required_columns(df: pd.DataFrame, columns: Sequence[str], name: str, what: str) -> None:
    """Raise InputError listing the ``columns`` that ``df`` (read from ``name``) lacks."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(
            f"The {what} {name!r} lacks the required column(s) {', '.join(missing)}; "
            f"it has {', '.join(map(str, df.columns))}."
        )
    if len(df) == 0:
        raise InputError(f"The {what} {name!r} has no rows.")


def check_label_column(df: pd.DataFrame, name: str) -> None:
    """Raise InputError unless column ``label`` holds only 0 and 1."""
    try:
        label = pd.to_numeric(df["label"], errors="coerce")
    except TypeError:  # objects no number parses from, e.g. lists
        numbers = [v if isinstance(v, (int, float, np.number)) else np.nan for v in df["label"]]
        label = pd.Series(numbers, index=df.index, dtype=object)
    bad = ~label.isin([0, 1])
    if bad.any():
        values = describe_values(_distinct(df.loc[bad, "label"]))
        raise InputError(
            f"Column 'label' of {name!r} must contain only 0 and 1; got {values} "
            f"in {int(bad.sum())} row(s)."
        )


def _distinct(values: pd.Series, limit: int = 6) -> list[Any]:
    """The first few distinct values, unhashable ones (lists) included."""
    seen: dict[str, Any] = {}
    for value in values:
        seen.setdefault(repr(value), value)
        if len(seen) == limit:
            break
    return list(seen.values())


def check_unique_images(df: pd.DataFrame, name: str) -> None:
    """Raise InputError if an ``image_id`` repeats (a table with one row per image)."""
    if "image_id" not in df.columns:
        return
    dup = df["image_id"].astype(str).duplicated()
    if dup.any():
        raise InputError(
            f"{int(dup.sum())} repeated image_id value(s) in {name!r}, first "
            f"{str(df.loc[dup, 'image_id'].iloc[0])!r}; each image must have one row."
        )


def _check_column_values(df: pd.DataFrame, name: str) -> None:
    check_label_column(df, name)
    _check_score_type(df["score"], name)
    score = pd.to_numeric(df["score"], errors="coerce")
    not_finite = ~np.isfinite(score.to_numpy(dtype=float, na_value=np.nan))
    if not_finite.any():
        values = describe_values(list(pd.unique(df.loc[not_finite, "score"])))
        raise InputError(
            f"Column 'score' of {name!r} must be finite numbers; got {values} "
            f"in {int(not_finite.sum())} row(s)."
        )
    outside = (score < 0) | (score > 1)
    if outside.any():
        values = describe_values(list(pd.unique(score[outside])))
        raise InputError(
            f"Column 'score' of {name!r} must be probabilities in [0, 1]; got {values} "
            f"in {int(outside.sum())} row(s)."
        )


def _check_score_type(score: pd.Series, name: str) -> None:
    """Scores are numbers: text that looks like one, booleans and other objects are refused."""
    if pd.api.types.is_bool_dtype(score.dtype):
        raise InputError(
            f"Column 'score' of {name!r} holds booleans; scores must be probabilities in "
            f"[0, 1] (convert with .astype(float) if True means 1)."
        )
    if pd.api.types.is_numeric_dtype(score.dtype):
        return
    for value in score.dropna():
        if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)
        ):
            raise InputError(
                f"Column 'score' of {name!r} holds {type(value).__name__} values such as "
                f"{value!r:.40}; "
                f"scores must be numbers (probabilities in [0, 1]), e.g. convert with "
                f"pd.to_numeric."
            )
    if not pd.api.types.is_object_dtype(score.dtype):
        raise InputError(
            f"Column 'score' of {name!r} has dtype {score.dtype}; scores must be numbers "
            f"(probabilities in [0, 1]), e.g. convert with .astype(float)."
        )


def run_model_name(model: str, run: str) -> str:
    """The name under which one run of a model with several runs is evaluated."""
    return f"{model} [run {run}]"


Recipes = dict[str, list[tuple[str, str]]]


def runs_as_models(preds: pd.DataFrame) -> tuple[pd.DataFrame, Recipes]:
    """Several training runs (seeds) of one model: each run is evaluated as a model of its own.

    ``preds`` is checked (:func:`check_predictions`). Returns a copy whose ``model`` is the
    evaluated model (``"model [run r]"`` for a model with more than one run, else the model),
    and beside it each model's runs as sorted (run, evaluated model) pairs; one run named
    ``""`` when there is no ``run`` column. The bookkeeping travels beside the frame, never as
    a column of it, so no user column can collide with it.
    """
    if "run" not in preds.columns:
        return preds, {m: [("", m)] for m in sorted(preds["model"].unique())}
    out = preds.copy()
    several = out.groupby("model")["run"].transform("nunique") > 1
    out.loc[several, "model"] = [
        run_model_name(m, r)
        for m, r in zip(out.loc[several, "model"], out.loc[several, "run"], strict=True)
    ]
    pairs = (
        pd.DataFrame({"recipe": preds["model"], "run": preds["run"], "model": out["model"]})
        .drop_duplicates()
        .sort_values(["recipe", "run"])
    )
    recipes: Recipes = {}
    for recipe, run, model in pairs.itertuples(index=False):
        recipes.setdefault(str(recipe), []).append((str(run), str(model)))
    return out, recipes


def _check_no_missing(df: pd.DataFrame, column: str, name: str, advice: str) -> None:
    missing = df[column].isna()
    if missing.any():
        raise InputError(
            f"Column {column!r} of {name!r} has {int(missing.sum())} missing value(s), first in "
            f"row {int(np.flatnonzero(missing)[0])}; {advice}."
        )


def _check_same_images(preds: pd.DataFrame) -> None:
    images = {m: set(g["image_id"]) for m, g in preds.groupby("model", sort=True)}
    models = list(images)
    reference = images[models[0]]
    for model in models[1:]:
        only_ref = len(reference - images[model])
        only_model = len(images[model] - reference)
        if only_ref or only_model:
            raise InputError(
                f"Models {models[0]!r} and {model!r} are scored on different images: "
                f"{only_ref} image(s) only in {models[0]!r}, {only_model} only in {model!r}; "
                f"paired comparisons need the same images."
            )


METRICS_LOG_FIELDS = ("step", "segment", "wll", "auc")


def read_metrics_log(run_dir: str | Path, name: str | None = None) -> pd.DataFrame:
    """The validation records of a training run: ``RUN/metrics.jsonl`` as a DataFrame.

    One JSON object per line with at least step, segment, wll, auc (DESIGN "Run directory"),
    the whole set (segment ``"__global__"``) among them; the run's ``name`` (default: the folder's
    name) is added as column ``run``.
    """
    run = Path(run_dir)
    path = run / "metrics.jsonl"
    if not run.is_dir():
        raise InputError(f"The run directory {str(run)!r} does not exist.")
    if not path.is_file():
        raise InputError(f"The run directory {str(run)!r} has no metrics.jsonl.")
    records = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{str(path)!r} is not UTF-8 text (byte {exc.start}); metrics.jsonl holds one JSON "
            "record a line, as segtrain fit writes it."
        ) from exc
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"Line {number} of {str(path)!r} is not JSON ({exc.msg}).") from exc
        missing = [f for f in METRICS_LOG_FIELDS if not isinstance(record, dict) or f not in record]
        if missing:
            raise InputError(
                f"Line {number} of {str(path)!r} lacks the field(s) {', '.join(missing)}."
            )
        _check_record_types(record, number, path)
        records.append(record)
    if not records:
        raise InputError(f"{str(path)!r} holds no validation record.")
    if not any(r["segment"] == "__global__" for r in records):
        raise InputError(
            f'{str(path)!r} has no whole-set record (segment "__global__"); the validation '
            "curves and diagnostics compare it with the segments'."
        )
    frame = pd.DataFrame.from_records(records)
    frame["wll"] = pd.to_numeric(frame["wll"], errors="coerce")
    frame["auc"] = pd.to_numeric(frame["auc"], errors="coerce")
    return frame.assign(run=name or run.resolve().name)


def _check_record_types(record: dict[str, Any], number: int, path: Path) -> None:
    """step an integer, segment a string, wll and auc numbers (or null)."""
    expected = {
        "step": "an integer",
        "segment": "a string",
        "wll": "a finite number >= 0",
        "auc": "a number in [0, 1]",
    }
    ok = {
        "step": isinstance(record["step"], int) and not isinstance(record["step"], bool),
        "segment": isinstance(record["segment"], str),
        "wll": record["wll"] is None
        or (_is_number(record["wll"]) and 0 <= record["wll"] < math.inf),
        "auc": record["auc"] is None or (_is_number(record["auc"]) and 0 <= record["auc"] <= 1),
    }
    for name, good in ok.items():
        if not good:
            raise InputError(
                f"Line {number} of {str(path)!r}: field {name!r} must be {expected[name]}; "
                f"got {record[name]!r}."
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_columns(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise InputError naming the first ``columns`` entry absent from ``df``."""
    for col in columns:
        if col not in df.columns:
            shown = [str(c) for c in df.columns]
            raise InputError(
                f"The {what} column {col!r} is not in the predictions; available columns: "
                f"{', '.join(shown)}."
            )


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    """The process's umask, read once (at import) rather than at every write.

    ``os.umask`` can only read the mask by setting another; done per write, a thread creating a
    file at that moment (a bootstrap worker, a data loader thread) would get the other mask.
    Linux shows the mask in /proc/self/status, which reads it without changing it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_text(path: str | Path, text: str) -> None:
    """Atomically write a UTF-8 text file."""

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """Atomically write a DataFrame as CSV (no index)."""
    atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    """Atomically write a DataFrame as Parquet (no index)."""
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: NaN and inf become null, numpy scalars and arrays become Python ones."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, pd.DataFrame):
        return to_jsonable(value.to_dict(orient="records"))
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA:  # a missing count or flag of a nullable column (Int64, boolean)
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_text(value: Any) -> str:
    """``value`` as indented, strict JSON (NaN written as null)."""
    return json.dumps(to_jsonable(value), indent=2, allow_nan=False) + "\n"


def write_json(path: str | Path, value: Any) -> None:
    """Atomically write ``value`` as indented, strict JSON (NaN written as null)."""
    write_text(path, json_text(value))


def write_files(texts: Mapping[Path, str], *, remove: Sequence[Path] = ()) -> None:
    """Replace a set of files whole or not at all: ``texts`` written, ``remove`` removed.

    Every file is first written to a temporary file beside its target. Then the files already
    there (the targets, and ``remove``: what an older set had and this one lacks) are moved
    aside, the new ones moved into place (``os.replace``), and only then the old ones deleted.
    A failure at any step puts the old set back as it was, and leaves no temporary file.
    """
    for target in [*texts, *remove]:
        if target.is_dir():
            raise InputError(f"{str(target)!r} is a directory; give a file name, e.g. report.html.")
    temps: dict[Path, Path] = {}
    aside: dict[Path, Path] = {}
    placed: list[Path] = []
    try:
        for target, text in texts.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            temps[target] = _temp_beside(target)
            temps[target].write_text(text, encoding="utf-8")
            os.chmod(temps[target], 0o666 & ~_UMASK)
        for target in [*texts, *remove]:
            if target.exists() or target.is_symlink():
                aside[target] = _temp_beside(target, ".old")
                os.replace(target, aside[target])
        for target, temp in temps.items():
            os.replace(temp, target)
            placed.append(target)
    except BaseException:
        for target in placed:
            target.unlink(missing_ok=True)
        for target, old in aside.items():
            os.replace(old, target)
        aside.clear()
        raise
    finally:
        for path in [*temps.values(), *aside.values()]:
            path.unlink(missing_ok=True)


def _temp_beside(target: Path, kind: str = "") -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f"{kind}.tmp", dir=target.parent)
    os.close(fd)
    return Path(name)


def file_record(path: str | Path, role: str, rows: int | None = None) -> dict[str, Any]:
    """An input file as the report's provenance lists it: role, path, sha256 and rows.

    ``rows`` defaults to the file's lines (one record a line, as in metrics.jsonl).
    """
    digest = hashlib.sha256()
    lines = 0
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            if rows is None:
                lines += block.count(b"\n")
    return {
        "role": role,
        "path": str(path),
        "sha256": digest.hexdigest(),
        "rows": lines if rows is None else rows,
    }


def predictions_file_records(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """:func:`file_record` of each predictions file; rows from Parquet metadata or CSV lines."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    records = []
    for path in paths:
        if Path(path).suffix.lower() in (".parquet", ".pq"):
            records.append(file_record(path, "predictions", pq.read_metadata(path).num_rows))
        else:
            record = file_record(path, "predictions")
            records.append(record | {"rows": max(record["rows"] - 1, 0)})  # less the header
    return records


@dataclass(frozen=True)
class RunFiles:
    """What ``segeval report --run`` reads from training run folders, as frames.

    ``training``: every run's ``metrics.jsonl`` (column ``run``: the folder's name);
    ``validation``: run name -> its ``preds/val.parquet`` (written by ``segtrain fit``), for the
    runs that have one; ``inputs``: a provenance record (path, sha256, rows) per log read.
    """

    training: pd.DataFrame
    validation: dict[str, pd.DataFrame]
    inputs: list[dict[str, Any]]


def read_runs(runs: Sequence[str | Path]) -> RunFiles:
    """Read training run folders for :func:`segeval.evaluate` (``training=``,
    ``validation_predictions=``).

    Each entry is a folder (the run is named as the folder) or ``NAME=FOLDER`` (named NAME, e.g.
    as the model whose predictions it made). A folder given twice, two runs of one name, and a
    ``preds/val.parquet`` holding several models' rows are refused.
    """
    named = [_run_entry(r) for r in runs]
    seen: dict[Path, str] = {}
    names: dict[str, Path] = {}
    for name, folder in named:
        where = folder.resolve()
        if where in seen:
            raise InputError(f"The run folder {str(folder)!r} is given twice.")
        if name in names:
            raise InputError(
                f"Two run folders are named {name!r} ({str(names[name])!r} and {str(folder)!r}); "
                f"name them apart with --run NAME=FOLDER."
            )
        seen[where], names[name] = name, folder
    training = [read_metrics_log(folder, name) for name, folder in named]
    validation = {}
    for name, folder in named:
        path = folder / "preds" / "val.parquet"
        if path.is_file():
            frame = read_table(path, "validation predictions file")
            models = list(pd.unique(frame["model"])) if "model" in frame.columns else []
            if len(models) > 1:
                raise InputError(
                    f"{str(path)!r} holds {len(models)} models' rows ({describe_values(models)}); "
                    "a run's validation predictions are one model's."
                )
            validation[name] = frame
    return RunFiles(
        training=pd.concat(training, ignore_index=True) if training else pd.DataFrame(),
        validation=validation,
        inputs=[file_record(folder / "metrics.jsonl", "training run") for _, folder in named],
    )


def _run_entry(entry: str | Path) -> tuple[str, Path]:
    """(name, folder) of a --run entry: FOLDER, or NAME=FOLDER when no such folder exists."""
    text = str(entry)
    name, sep, folder = text.partition("=")
    if sep and not Path(text).exists():
        if not name.strip() or not folder.strip():
            raise InputError(f"--run takes FOLDER or NAME=FOLDER; got {text!r}.")
        return name.strip(), Path(folder)
    return Path(text).resolve().name, Path(text)
