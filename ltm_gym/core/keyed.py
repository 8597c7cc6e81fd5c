"""Arguments that ``functools.lru_cache`` can key: a value hashed and compared by a key of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Hashable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Keyed(Generic[T]):
    """``value`` (unhashable, or equal to another by content only) seen by a cache as ``key``:
    e.g. a tokenizer by its fingerprint, so that two loads of one study share what was built."""

    key: Hashable
    value: T = field(compare=False, hash=False, repr=False)
