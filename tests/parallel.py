"""What a test needs to know about the other test processes running beside it.

``make test`` runs the suite in several pytest-xdist worker processes at once
(``gw0``, ``gw1``, ...). Anything a test takes from the whole machine rather than
from its own ``tmp_path`` or database (a uid range, say) is divided by worker here.
"""

from __future__ import annotations

import os


def worker_index() -> int:
    """This process's xdist worker number (``gw2`` is 2); 0 when the suite runs serially."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name.removeprefix("gw")) if name.startswith("gw") else 0


def uid_range_base(first: int, count: int) -> int:
    """The first uid of this worker's own ``count`` uids in a block starting at ``first``."""
    return first + worker_index() * count
