"""A small, real, resumable workload for proving the job path end to end (no torch, no Django).

Counting primes below `limit` in `chunks` consecutive segments: each segment is a segmented sieve, so the
work per step is real and the final answer is checkable (there are 78,498 primes below 1,000,000).
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PrimeChunk:
    start: int
    stop: int  # exclusive
    count: int
    largest: int | None


def chunk_bounds(limit: int, chunks: int) -> list[tuple[int, int]]:
    """Splits [0, limit) into `chunks` contiguous half-open ranges of near-equal size."""
    if limit < 1 or chunks < 1:
        raise ValueError("limit and chunks must be positive")
    edges = [limit * i // chunks for i in range(chunks + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _base_primes(n: int) -> list[int]:
    sieve = bytearray([1]) * (n + 1)
    sieve[0:2] = b"\x00\x00"[: min(2, n + 1)]
    for p in range(2, math.isqrt(n) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytearray(len(range(p * p, n + 1, p)))
    return [i for i, flag in enumerate(sieve) if flag]


def count_primes_in(start: int, stop: int) -> PrimeChunk:
    """Primes p with start <= p < stop, by a segmented sieve."""
    lo = max(start, 2)
    if stop <= lo:
        return PrimeChunk(start, stop, 0, None)
    segment = bytearray([1]) * (stop - lo)
    for p in _base_primes(math.isqrt(stop - 1)):
        first = max(p * p, (lo + p - 1) // p * p)
        if first < stop:
            segment[first - lo :: p] = bytearray(len(range(first, stop, p)))
    count = segment.count(1)
    largest = None
    if count:
        largest = lo + len(segment) - 1 - segment[::-1].index(1)
    return PrimeChunk(start, stop, count, largest)
