"""segeval: global and per-segment evaluation of binary classifiers pooled from many sources.

Pure numpy/scipy/pandas statistics (no torch): weighted log loss, ROC AUC, operating points,
sensitivity at a fixed specificity, PPV, NPV and calibration (a registry of metrics),
Efron bootstrap CIs, paired ΔAUC with the paper's p-value and verdict, DeLong's test, Holm's
correction, operating-point synchronization across data segments.
"""

from segeval import plot
from segeval.bootstrap import (
    BootstrapOptions,
    BootstrapResult,
    DeltaAUCResult,
    bootstrap_auc,
    bootstrap_delta_auc,
    bootstrap_indices,
    bootstrap_wll,
)
from segeval.delong import DeLongAUCResult, DeLongTestResult, delong_auc_ci, delong_delta_auc_test
from segeval.discover import Discovery, discover
from segeval.evaluation import Evaluation, evaluate
from segeval.leakage import LeakageResult, segment_leakage
from segeval.metrics import (
    OperatingPoints,
    ROCCurve,
    operating_points,
    roc_auc,
    roc_curve,
    weighted_log_loss,
)
from segeval.op_metrics import (
    calibration_in_the_large,
    calibration_slope,
    npv,
    ppv,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from segeval.runs import RunsDeltaAUCResult, bootstrap_delta_auc_runs
from segeval.segments import GLOBAL, Segments, parse_segment_by, segment_keys
from segeval.significance import holm, p_value_from_ci, verdict
from segeval.synchronization import OPSyncResult, op_synchronization
from segeval.table import segment_table
from segeval.validation import InputError, UndefinedMetricWarning

__version__ = "0.1.0"

__all__ = [
    "GLOBAL",
    "BootstrapOptions",
    "BootstrapResult",
    "DeLongAUCResult",
    "DeLongTestResult",
    "DeltaAUCResult",
    "Discovery",
    "Evaluation",
    "InputError",
    "LeakageResult",
    "OPSyncResult",
    "OperatingPoints",
    "ROCCurve",
    "RunsDeltaAUCResult",
    "Segments",
    "UndefinedMetricWarning",
    "bootstrap_auc",
    "bootstrap_delta_auc",
    "bootstrap_delta_auc_runs",
    "bootstrap_indices",
    "bootstrap_wll",
    "calibration_in_the_large",
    "calibration_slope",
    "delong_auc_ci",
    "delong_delta_auc_test",
    "discover",
    "evaluate",
    "holm",
    "npv",
    "op_synchronization",
    "operating_points",
    "p_value_from_ci",
    "parse_segment_by",
    "plot",
    "ppv",
    "roc_auc",
    "roc_curve",
    "segment_keys",
    "segment_leakage",
    "segment_table",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
    "verdict",
    "weighted_log_loss",
]
