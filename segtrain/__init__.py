"""segtrain: periodic-sampling PyTorch training whose predictions feed segeval reports.

The face of the package::

    from segtrain import PeriodicBatchSampler, TrainConfig, fit, predict

- :class:`PeriodicBatchSampler`: the paper's sampling as a ``DataLoader`` batch sampler;
- :class:`TrainConfig` and :func:`fit`: a training run (``segtrain fit``);
- :func:`predict`: a checkpoint's scores as the predictions file segeval reads.

They are imported here, eagerly: ``predict`` is also the name of its module, and only a name
bound after that module is loaded stays the function.
"""

from segtrain.config import TrainConfig
from segtrain.predict import predict
from segtrain.sampler import PeriodicBatchSampler
from segtrain.train import fit

__version__ = "0.1.0"
__all__ = ["PeriodicBatchSampler", "TrainConfig", "fit", "predict"]
