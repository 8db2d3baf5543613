"""Process-wide settings that make the CPU paths fast; called once by each command's entry point.

glibc's malloc returns every freed block above its mmap threshold to the kernel (and trims the
heap top), so each forward pass maps and faults in its activation buffers anew: measured, more
system time than half the user time in the audit. `keep_freed_memory` raises the mmap threshold to
glibc's maximum and stops heap trimming, so freed buffers are reused. It changes the process
it runs in, so the library never calls it on import; commands (stages, the CLI) do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_NEVER = 2**31 - 1


def keep_freed_memory() -> bool:
    """Tell glibc to reuse freed memory instead of handing it back; False where it cannot (not
    glibc, or `EQUISEG_MALLOC=default` to measure the difference)."""
    if os.environ.get("EQUISEG_MALLOC") == "default":
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if os.environ.get("EQUISEG_MALLOC") == "threshold":
        return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
                    and mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))
    return bool(mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))
