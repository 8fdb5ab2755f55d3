"""Diagnostics of segment bias read off the global and local metrics.

The paper's warning sign (Discussion, Figure 3): a model whose *global* AUC is above every
*local* AUC, or whose global WLL is below every local WLL, is better on the pooled set than on
any of its parts. That happens when the score separates the segments (whose prevalences differ)
rather than, or as well as, the disease. The same reading applies to every metric of the
registry that has a direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from segeval.registry import DEFAULT_METRICS, MetricSpec, resolve_metrics
from segeval.segments import GLOBAL

METRICS = resolve_metrics(DEFAULT_METRICS)


def global_vs_local(metrics: pd.DataFrame, specs: Sequence[MetricSpec] = METRICS) -> pd.DataFrame:
    """Per model: each global metric against the best local one, and a flag with its reason.

    ``metrics`` has the columns of :func:`segeval.segment_table` plus ``model``. Every metric of
    ``specs`` with a direction is judged (higher-is-better metrics first): the flag is raised
    when the global value is better than every local one (columns ``global_<m>``,
    ``max_local_<m>`` or ``min_local_<m>`` and its segment, ``<m>_above_all`` or
    ``<m>_below_all``). Models with fewer than two segments of defined metrics are not judged
    (``suspicious`` is False, message says why).

    Examples
    --------
    >>> m = pd.DataFrame({"model": ["m"] * 3, "segment": ["__global__", "A", "B"],
    ...                   "auc": [0.9, 0.7, 0.8], "wll": [0.4, 0.6, 0.5]})
    >>> bool(global_vs_local(m).suspicious[0])
    True
    """
    judged = sorted(
        (spec for spec in specs if spec.higher_is_better is not None and spec.name in metrics),
        key=lambda spec: not spec.higher_is_better,
    )
    names = [spec.name for spec in judged]
    rows = []
    for model, part in metrics.groupby("model", sort=False):
        glob = part[part.segment == GLOBAL].iloc[0]
        local = part[(part.segment != GLOBAL) & part[names].notna().all(axis=1)]
        row: dict[str, object] = {"model": model}
        row |= {f"global_{name}": glob[name] for name in names}
        if len(local) < 2 or not judged:
            row.update(
                {f"{name}_{_side(spec)}_all": False for spec in judged for name in [spec.name]}
            )
            reason = (
                "no segments (segment_by not given)"
                if len(part) == 1
                else "fewer than two segments with defined metrics"
            )
            row.update(
                suspicious=False,
                judged=False,
                reason=reason,
                message=f"{model}: {reason}; global and local metrics cannot be compared, "
                "so segment bias is undefined.",
            )
            rows.append(row)
            continue
        findings = []
        for spec in judged:
            values = local[spec.name].to_numpy()
            best = local.iloc[int(values.argmax() if spec.higher_is_better else values.argmin())]
            extreme = "max" if spec.higher_is_better else "min"
            flagged = bool(
                glob[spec.name] > best[spec.name]
                if spec.higher_is_better
                else glob[spec.name] < best[spec.name]
            )
            row |= {
                f"{extreme}_local_{spec.name}": best[spec.name],
                f"{extreme}_local_{spec.name}_segment": best.segment,
            }
            findings.append((spec, best, flagged))
        row |= {f"{spec.name}_{_side(spec)}_all": flagged for spec, _, flagged in findings}
        row["suspicious"] = any(flagged for _, _, flagged in findings)
        row["judged"] = True
        row["message"] = _message(str(model), glob, findings)
        rows.append(row)
    return pd.DataFrame(rows)


def _side(spec: MetricSpec) -> str:
    return "above" if spec.higher_is_better else "below"


def _message(
    model: str, glob: pd.Series, findings: list[tuple[MetricSpec, pd.Series, bool]]
) -> str:
    parts = [
        f"global {spec.short} {glob[spec.name]:.3f} is {_side(spec)} every local {spec.short} "
        f"(best {best[spec.name]:.3f} on {best.segment})"
        for spec, best, flagged in findings
        if flagged
    ]
    if not parts:
        spec, best, _ = findings[0]
        bound = "up" if spec.higher_is_better else "down"
        return (
            f"{model}: global metrics lie among the local ones ({spec.short} "
            f"{glob[spec.name]:.3f}, local {bound} to {best[spec.name]:.3f}); no sign of "
            "segment bias."
        )
    return (
        f"{model}: {' and '.join(parts)}. Suspiciously good global metrics: the score may "
        f"separate the segments rather than the disease (segment bias)."
    )
