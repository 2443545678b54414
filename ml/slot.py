"""One loaded model per worker process, kept while jobs for it keep coming.

A GPU worker runs one task at a time (pool solo), so one slot per kind of model is enough: asking for another
key releases the current object first (its `close()` if it has one), so its memory is freed before the next
one loads. Pure Python: importing this never imports torch."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")


class OneSlot(Generic[T]):
    def __init__(self, what: str = "model") -> None:
        self.what = what
        self.key: Any = None
        self.value: T | None = None
        self.loads = 0

    def get(self, key: Any, load: Callable[[], T]) -> T:
        if self.value is not None and self.key == key:
            return self.value
        self.release()
        logger.info("loading %s for %s", self.what, key)
        self.value = load()
        self.key = key
        self.loads += 1
        return self.value

    def release(self) -> None:
        if self.value is not None and hasattr(self.value, "close"):
            self.value.close()
        self.value, self.key = None, None
        gc.collect()
        torch = sys.modules.get("torch")  # only if something already loaded it
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
