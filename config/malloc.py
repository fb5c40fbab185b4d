"""Keep large buffers in the process instead of handing them back to the kernel.

A deposit streams through the web process in 1 MiB pieces: every piece read from
the body, every batch of ciphertext. glibc maps each allocation that large as
fresh pages (``mmap``) and unmaps it when freed, so every piece costs a page fault
per 4 KiB on first touch: about a quarter of a million faults per GiB, which on a
virtual machine cost more than the encryption itself (docs/benchmarks.md). With the
thresholds raised, freed pieces stay in the heap and the next piece reuses them;
the heap only keeps what the bounded pipeline has in flight at its peak.
"""

from __future__ import annotations

import ctypes

#: ``mallopt`` parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Allocations up to this size come from the heap (glibc's maximum is 32 MiB on 64-bit).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory at the heap's top kept for reuse before it is returned to the kernel.
TRIM_THRESHOLD = 4 * 1024 * 1024
#: One heap for every thread: a piece allocated by one stage of the pipeline and freed
#: by another goes back where the next piece is taken from, instead of each thread's
#: arena keeping its own peak.
ARENA_MAX = 1


def reuse_large_buffers() -> bool:
    """Raise glibc's thresholds; False (and nothing changed) on a C library without them.

    The symbols are looked up in the running process (``CDLL(None)``), which has its C
    library loaded: ``ctypes.util.find_library`` would run ``ldconfig`` at every start."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(
        mallopt(parameter, value)
        for parameter, value in (
            (_M_ARENA_MAX, ARENA_MAX),
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        )
    )
