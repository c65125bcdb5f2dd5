"""Process-level settings for fast CPU inference: threads and the C allocator.

glibc returns large freed buffers to the OS (mmap/trim) and gets them back on the next batch;
for PyTorch's big per-batch tensors this made the encoder ~3x slower here. ``tune_allocator``
keeps such buffers in the heap instead (the same as ``MALLOC_MMAP_MAX_=0`` and a high
``MALLOC_TRIM_THRESHOLD_``), at the cost of a heap that does not shrink.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False


def tune_allocator() -> bool:
    """Stop glibc from unmapping large buffers. Returns False where this is not glibc (no-op)."""
    global _done
    if _done:
        return True
    if os.environ.get("SONOTYPE_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in PyTorch (None: leave PyTorch's default)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))
