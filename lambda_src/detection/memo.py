"""A memo for functions that return NumPy tables, bounded by the bytes it holds rather than by a count.

``functools.lru_cache(maxsize=64)`` bounds entries, not memory: resize tables grow with the image side, so a
caller sending images of many distinct sizes could pin gigabytes. One ``ByteBoundedCache`` shared by several
functions keeps their results together under ``max_bytes``, evicting the least recently used; a result larger
than the whole budget is returned but not kept.

Example:
    >>> import numpy as np
    >>> cache = ByteBoundedCache(max_bytes=1000)
    >>> @cache
    ... def table(n):
    ...     return np.zeros(n, np.uint8)
    >>> _ = table(600), table(300), table(600)   # the second 600 is a hit
    >>> cache.nbytes, len(cache)
    (900, 2)
    >>> _ = table(500)                           # evicts 300 (least recently used), then 600
    >>> cache.nbytes, len(cache)
    (500, 1)
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np


def nbytes(value: Any) -> int:
    """Bytes held by the arrays in ``value`` (nested tuples/lists of arrays and scalars)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value)
    return 0


class ByteBoundedCache:
    def __init__(self, *, max_bytes: int):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._entries: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def __call__(self, function: Callable) -> Callable:
        @functools.wraps(function)
        def cached(*args):
            key = (function.__qualname__, args)
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key][0]
            value = function(*args)
            self._store(key, value)
            return value

        return cached

    def _store(self, key: tuple, value: Any) -> None:
        size = nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            while self._entries and self.nbytes + size > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.nbytes -= evicted
            self._entries[key] = (value, size)
            self.nbytes += size
