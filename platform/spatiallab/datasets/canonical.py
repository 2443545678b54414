"""The pure parts of dataset versions (no Django, no database): which split a prompt's pairs belong to, the
canonical encoding of an entry and the content hash over a version's entry list, and the diff of two versions.

- Splits are assigned by the perfect prompt, not by pair: every pair and seed made from one prompt lands in the
  same split, so nothing about a test prompt leaks into training. The split is a pure function of the prompt's
  normalised text, a salt and the ratios (SHA-256 of "salt\\0text" read as a number in [0, 1)), so a rebuilt or
  child version puts the same prompt in the same split whatever else changed.
- An entry's canonical form is its JSON with sorted keys, no insignificant whitespace, UTF-8; the content hash
  is SHA-256 over the canonical lines in entry order, each followed by a newline, computed while streaming (a
  version of any size is hashed in constant memory). Exports recompute it and refuse to serve a mismatch.
- The diff of two versions walks both entry lists in pair-id order at once (both streams, constant memory):
  pairs only in the new version are added, only in the old removed, in both with another label relabelled.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

SPLITS = ("train", "validation", "test")
DEFAULT_RATIOS = {"train": 0.8, "validation": 0.1, "test": 0.1}


def check_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """The ratios as a dict over the three splits; a ValueError names what is wrong."""
    unknown = sorted(set(ratios) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown splits {unknown}; the splits are {', '.join(SPLITS)}")
    values = {split: float(ratios.get(split, 0.0)) for split in SPLITS}
    bad = [split for split, value in values.items() if not math.isfinite(value) or value < 0]
    if bad:
        raise ValueError(f"ratios must be finite and not negative: {', '.join(bad)}")
    if not math.isclose(sum(values.values()), 1.0, abs_tol=1e-9):
        raise ValueError(f"ratios must add up to 1 (they add up to {sum(values.values()):g})")
    return values


def split_for(prompt_text: str, ratios: Mapping[str, float], salt: str = "") -> str:
    """The split of every pair made from this perfect prompt (its normalised text)."""
    digest = hashlib.sha256(f"{salt}\0{prompt_text}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    cumulative = 0.0
    for split in SPLITS:
        cumulative += ratios.get(split, 0.0)
        if position < cumulative:
            return split
    # Rounding can leave the top of [0, 1) uncovered: it goes to the last split that has a share.
    return next(split for split in reversed(SPLITS) if ratios.get(split, 0.0) > 0)


def canonical_line(entry: Mapping) -> bytes:
    """One entry as canonical JSON bytes (sorted keys, compact, UTF-8). NaN and infinities are refused: they
    have no JSON form that every reader agrees on."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def content_hash(entries: Iterable[Mapping]) -> str:
    """SHA-256 (hex) over the canonical lines of the entries, in order, each followed by a newline."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(canonical_line(entry))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class Diff:
    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    relabelled: list[tuple[int, object, object]] = field(default_factory=list)  # (pair, old label, new label)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.relabelled)


def _checked(entries: Iterable[tuple[int, object]], name: str) -> Iterator[tuple[int, object]]:
    previous = None
    for pair, label in entries:
        if previous is not None and pair <= previous:
            raise ValueError(f"the {name} entries must come in increasing pair id order ({pair} after {previous})")
        previous = pair
        yield pair, label


def diff_entries(old: Iterable[tuple[int, object]], new: Iterable[tuple[int, object]]) -> Diff:
    """Added, removed and relabelled pairs between two versions, from (pair id, label) streams in increasing
    pair id order (what `ORDER BY pair_id` returns)."""
    diff = Diff()
    old_iter, new_iter = _checked(old, "old"), _checked(new, "new")
    a, b = next(old_iter, None), next(new_iter, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            diff.removed.append(a[0])
            a = next(old_iter, None)
        elif a is None or b[0] < a[0]:
            diff.added.append(b[0])
            b = next(new_iter, None)
        else:
            if a[1] != b[1]:
                diff.relabelled.append((a[0], a[1], b[1]))
            a, b = next(old_iter, None), next(new_iter, None)
    return diff
