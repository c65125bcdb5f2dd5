"""Process-level settings for fast CPU inference: threads and the C allocator.

glibc returns large freed buffers to the OS (mmap/trim) and gets them back on the next batch;
for PyTorch's big per-batch tensors this made the encoder ~3x slower here. ``tune_allocator``
keeps such buffers in the heap instead (the same as ``MALLOC_MMAP_MAX_=0`` and a high
``MALLOC_TRIM_THRESHOLD_``), at the cost of a heap that does not shrink. A process that also runs a
model with large buffers of its own allocated batch by batch (a pretrained backend's interpreter) calls
``keep_default_allocator`` instead: there the tuned heap grew to twice the default's peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False
_kept_default = False
#: glibc's defaults (mallopt(3)): restored by keep_default_allocator
_DEFAULT_MMAP_MAX, _DEFAULT_TRIM_THRESHOLD = 65536, 128 * 1024


def _mallopt(mmap_max: int, trim_threshold: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(_M_MMAP_MAX, mmap_max) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
    except (OSError, AttributeError):
        return False


def tune_allocator() -> bool:
    """Stop glibc from unmapping large buffers. Returns False where this is not glibc (no-op), or after
    :func:`keep_default_allocator`."""
    global _done
    if _done:
        return True
    if os.environ.get("SONOTYPE_NO_MALLOPT") or _kept_default:
        return False
    _done = _mallopt(0, 2**31 - 1)
    return _done


def keep_default_allocator() -> None:
    """Keep (or restore) glibc's default allocator settings for the rest of the process: later
    :func:`tune_allocator` calls do nothing."""
    global _done, _kept_default
    _kept_default = True
    if _done:
        _mallopt(_DEFAULT_MMAP_MAX, _DEFAULT_TRIM_THRESHOLD)
        _done = False


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in PyTorch (None: leave PyTorch's default)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
