"""segtrain: periodic-sampling PyTorch training whose predictions feed segeval reports."""

__version__ = "0.1.0"
