"""Stop glibc's heap from shrinking and regrowing around every large message.

glibc gives free memory at the top of its heap back to the kernel once more
than its trim threshold (128 KiB at start) is free there. A server passing
100 KiB messages allocates and frees about that much per request (the read,
a stream's buffer, the slice it hands out), so the heap shrinks and regrows
on every request, and each regrowth page-faults page by page: a minor
fault per 4 KiB page, which can be most of the server's CPU time.
glibc raises the threshold by itself the first time a block from its mmap
path (above 128 KiB) is freed: the mmap threshold becomes that block's size
and the trim threshold twice that. Until something in the process happens to
do so, every large message pays; whether it has is luck (asyncio's first
256 KiB read does it). The loop does it once, on purpose, with one untouched
mmap and munmap: no page is faulted in.

Where a user fixed the thresholds (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``mallopt``), glibc keeps them and this changes
nothing. Other C libraries are left alone.
"""

from __future__ import annotations

import os
from typing import Final

# glibc's mmap threshold becomes 1 MiB, its trim threshold 2 MiB: up to 2 MiB
# of free heap top stays mapped instead of going back to the kernel. (glibc
# caps the dynamic threshold at 32 MiB on 64-bit systems.)
WARM_BLOCK: Final = 1024 * 1024


def is_glibc() -> bool:
    """True where the C library is glibc (its malloc is what this tunes)."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):
        return False


_done = False


def raise_trim_threshold() -> None:
    """Once per process, on glibc: free one mmap-sized block so glibc stops trimming."""
    global _done
    if _done:
        return
    _done = True
    if is_glibc():
        # calloc: glibc maps the block and skips zeroing mmap'd memory, so no
        # page is touched; freeing it (at once: nothing holds it) moves the
        # thresholds.
        bytes(WARM_BLOCK)
