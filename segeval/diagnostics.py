"""Diagnostics of segment bias read off the global and local metrics.

The paper's warning sign (Discussion, Figure 3): a model whose *global* AUC is above every
*local* AUC, or whose global WLL is below every local WLL, is better on the pooled set than on
any of its parts. That happens when the score separates the segments (whose prevalences differ)
rather than, or as well as, the disease.
"""

from __future__ import annotations

import pandas as pd

from segeval.segments import GLOBAL


def global_vs_local(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per model: the global metric against the best local one, and a flag with its reason.

    ``metrics`` has the columns of :func:`segeval.segment_table` plus ``model``. Models with fewer
    than two segments of defined metrics are not judged (``suspicious`` is False, message says
    why).

    Examples
    --------
    >>> m = pd.DataFrame({"model": ["m"] * 3, "segment": ["__global__", "A", "B"],
    ...                   "auc": [0.9, 0.7, 0.8], "wll": [0.4, 0.6, 0.5]})
    >>> bool(global_vs_local(m).suspicious[0])
    True
    """
    rows = []
    for model, part in metrics.groupby("model", sort=False):
        glob = part[part.segment == GLOBAL].iloc[0]
        local = part[(part.segment != GLOBAL) & part.auc.notna() & part.wll.notna()]
        row: dict[str, object] = {"model": model, "global_auc": glob.auc, "global_wll": glob.wll}
        if len(local) < 2:
            row.update(
                suspicious=False,
                auc_above_all=False,
                wll_below_all=False,
                message=f"{model}: fewer than two segments with defined metrics; "
                "global and local metrics cannot be compared.",
            )
            rows.append(row)
            continue
        best_auc = local.iloc[int(local.auc.to_numpy().argmax())]
        best_wll = local.iloc[int(local.wll.to_numpy().argmin())]
        auc_above = bool(glob.auc > best_auc.auc)
        wll_below = bool(glob.wll < best_wll.wll)
        row.update(
            max_local_auc=best_auc.auc,
            max_local_auc_segment=best_auc.segment,
            min_local_wll=best_wll.wll,
            min_local_wll_segment=best_wll.segment,
            auc_above_all=auc_above,
            wll_below_all=wll_below,
            suspicious=auc_above or wll_below,
            message=_message(str(model), glob, best_auc, best_wll, auc_above, wll_below),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _message(
    model: str,
    glob: pd.Series,
    best_auc: pd.Series,
    best_wll: pd.Series,
    auc_above: bool,
    wll_below: bool,
) -> str:
    parts = []
    if auc_above:
        parts.append(
            f"global AUC {glob.auc:.3f} is above every local AUC (best "
            f"{best_auc.auc:.3f} on {best_auc.segment})"
        )
    if wll_below:
        parts.append(
            f"global WLL {glob.wll:.3f} is below every local WLL (best "
            f"{best_wll.wll:.3f} on {best_wll.segment})"
        )
    if not parts:
        return (
            f"{model}: global metrics lie among the local ones (AUC {glob.auc:.3f}, "
            f"local up to {best_auc.auc:.3f}); no sign of segment bias."
        )
    return (
        f"{model}: {' and '.join(parts)}. Suspiciously good global metrics: the score may "
        f"separate the segments rather than the disease (segment bias)."
    )
