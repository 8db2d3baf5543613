"""Process-wide settings that make the CPU paths fast; called once by each command's entry point.

glibc's malloc returns every freed block above its mmap threshold to the kernel (and trims the
heap top), so each forward pass maps and faults in its activation buffers anew: measured, more
system time than half the user time in the audit. `keep_freed_memory` stops glibc from mapping big
buffers and from trimming the heap, so freed buffers are reused. `huge_pages_for_torch` asks torch
for transparent huge pages on its big buffers (`THP_MEM_ALLOC_ENABLE`: 512 times fewer faults on
memory touched for the first time, which the audit still does at every image); the audit
command asks for them, the stages do not (measured: 1.2x the audit's images/s, 8% slower training
at 64 px). Both change the process they run in, so the library never calls them on import;
commands (stages, the CLI) call them first, before torch allocates anything (torch reads that
setting at its first allocation, and the library makes tensors on import).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc refuses more on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_NEVER = 2**31 - 1


@contextmanager
def huge_pages_for_torch() -> Iterator[None]:
    """Ask torch for transparent huge pages on its big buffers, if its first allocation comes
    inside. The request then leaves the environment, so child processes and later callers in this
    process inherit nothing. A user's own `THP_MEM_ALLOC_ENABLE` stands; `EQUISEG_MALLOC=default`
    asks nothing, to measure the difference."""
    if "THP_MEM_ALLOC_ENABLE" in os.environ or os.environ.get("EQUISEG_MALLOC") == "default":
        yield
        return
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    try:
        yield
    finally:
        os.environ.pop("THP_MEM_ALLOC_ENABLE", None)


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
