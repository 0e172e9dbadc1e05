"""Scratch folders that a local Lambda environment shares with the test.

Each environment that localaws starts gets a private /tmp (Lambda's ephemeral storage), so a file the test and
the function must both see cannot live under /tmp — nor under the checkout, which CI may clone below /tmp.
/var/tmp is never replaced.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

SHARED_ROOT = Path("/var/tmp")


def shared_dir(prefix: str) -> Path:
    """A new empty folder outside /tmp (the caller removes it)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=SHARED_ROOT))
