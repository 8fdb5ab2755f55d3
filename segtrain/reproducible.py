"""Reproducible mode: the same bits from the same seed on every x86-64 machine with AVX2.

Without it a run is deterministic on one machine (same seed, same bits) but not across
machines, because five libraries choose their code by the processor and the core count:

- **ATen** (torch's CPU kernels) runs AVX-512 code where the CPU has it, AVX2 code elsewhere;
  the vector width changes the order of floating-point sums;
- **oneDNN** (torch's convolutions) builds its kernels for the processor at hand, and splits the
  work by the number of threads;
- **MKL** (torch's matrix products) picks its code path per CPU and its blocking per thread;
- **NumPy** runs AVX-512 versions of ``exp`` and ``log1p`` (the synthetic images, the
  preprocessing) that round differently from its AVX2 ones;
- **OpenBLAS** (NumPy's matrix products) picks its kernel per CPU.

The mode pins each: ATen to AVX2 (``ATEN_CPU_CAPABILITY``), oneDNN and NNPACK off (torch falls
back to its own convolution on MKL), MKL to its bitwise-reproducible AVX2 path (``MKL_CBWR``)
with a fixed thread count, NumPy's dispatch capped at AVX2, OpenBLAS to its Haswell (AVX2)
kernel, and torch to ``threads`` threads whatever the core count. Most of these are read once,
when a library loads, so the mode re-executes the process with them set (:func:`enter`) before
anything is computed. ``bench/reproducibility.py`` shows what each choice changes.

What it does not cover: other versions of torch, NumPy or the C library; other processor
families (ARM, e.g. Apple silicon); GPUs (cuDNN picks its algorithms per device). Speed: at
the demo's sizes torch's own convolution is faster than oneDNN's (63.6 against 46.8 images/s
in ``bench/train.py`` on 2 cores), but a machine with many cores is held to two threads.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads only after enter() has set the environment
    import torch

THREADS = 2  # threads the mode uses, whatever the core count (a 1-core machine runs both)
MARKER = "SEGTRAIN_REPRODUCIBLE"  # holds the thread count once the mode is in effect


def numpy_above_avx2() -> str:
    """NumPy's dispatch targets above AVX2 (names differ across NumPy versions)."""
    targets = importlib.import_module("numpy._core._multiarray_umath").__cpu_dispatch__
    return " ".join(t for t in targets if t == "X86_V4" or t.startswith("AVX512"))


def environment(threads: int = THREADS) -> dict[str, str]:
    """The variables the mode sets, before any library loads."""
    count = str(threads)
    return {
        MARKER: count,
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN is off; this keeps a stray call on AVX2 too
        "MKL_CBWR": "AVX2,STRICT",
        "MKL_DYNAMIC": "FALSE",
        "OMP_DYNAMIC": "FALSE",
        "OMP_NUM_THREADS": count,
        "MKL_NUM_THREADS": count,
        "OPENBLAS_NUM_THREADS": "1",
        "OPENBLAS_CORETYPE": "Haswell",
        "NPY_DISABLE_CPU_FEATURES": numpy_above_avx2(),
    }


def active() -> int | None:
    """The mode's thread count when this process runs in it, else None."""
    count = os.environ.get(MARKER)
    if count is None or not count.isdigit():
        return None
    wanted = environment(int(count))
    return int(count) if all(os.environ.get(k) == v for k, v in wanted.items()) else None


def enter(threads: int = THREADS) -> None:
    """Put this process in the mode: re-execute it with :func:`environment` unless it already
    runs in it, then set torch's threads and turn oneDNN and NNPACK off.

    Call it first thing in a script (the re-executed process runs the script again from the
    top, with the same arguments).
    """
    if threads < 1:
        raise ValueError(f"the reproducible mode needs at least 1 thread; got {threads}.")
    if active() != threads:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(
            sys.executable, [sys.executable, *sys.orig_argv[1:]], os.environ | environment(threads)
        )
    configure(threads)


def configure(threads: int) -> None:
    """The settings made inside torch (not by the environment)."""
    import torch

    torch.set_num_threads(threads)
    torch._C._set_mkldnn_enabled(False)  # what torch.backends.mkldnn.enabled = False does
    torch._C._set_nnpack_enabled(False)


def describe(device: torch.device | str, processes: int = 1) -> dict[str, Any]:
    """What decides a run's bits beside its config: the mode, the code path, the threads and
    the versions (a run folder keeps one record per start in ``environment.jsonl``)."""
    import numpy as np
    import torch

    from segtrain import __version__

    record = {
        "reproducible": active() is not None,
        "device": str(device),
        "processes": processes,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn": bool(torch.backends.mkldnn.enabled),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "segtrain": __version__,
    }
    if torch.device(device).type == "cuda":
        record |= {
            "gpu": torch.cuda.get_device_name(device),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
        }
    return record
