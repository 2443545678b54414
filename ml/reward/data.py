"""Preference pairs from a dataset export in the platform's Parquet format.

The layout (written by platform/spatiallab/datasets/exports.py, read here without importing it): one row per
verified pair with the columns prompt, chosen {bytes, path}, rejected {bytes, path}, perturbed_prompt, pair_id,
split, n_edits, edits (JSON), relation_kinds (list of strings), category, generator, seed, width, height,
agreement, decision; one row group per batch of pairs, the images embedded as encoded bytes.

Reading streams row groups: building the index reads only the split column; a row's images are decoded when the
row is asked for, from its row group (the last few row groups read are cached, and a shuffled epoch still reads
each row group many times: sort a huge export by row group first or use `iter_pairs` for one pass).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch
from PIL import Image

# The columns the reward model reads; the export has more.
COLUMNS = ["pair_id", "prompt", "chosen", "rejected", "split", "n_edits", "relation_kinds"]


@dataclass
class Pair:
    pair_id: int
    prompt: str
    chosen: Image.Image  # the image of the perfect prompt: the winner
    rejected: Image.Image  # the image of the perturbed prompt: the loser
    split: str
    n_edits: int
    relation_kinds: list[str]


def decode_image(cell: dict | None, base: Path) -> Image.Image:
    """An image cell ({bytes, path}, Hugging Face's Image feature) as an RGB PIL image. Bytes win; a cell with
    only a path is read relative to the Parquet file's folder."""
    if cell is None:
        raise ValueError("image cell is empty")
    if cell.get("bytes"):
        source = io.BytesIO(cell["bytes"])
    elif cell.get("path"):
        source = base / cell["path"]
    else:
        raise ValueError("image cell has neither bytes nor path")
    with Image.open(source) as image:
        return image.convert("RGB")


def _pair(row: dict, base: Path) -> Pair:
    return Pair(pair_id=int(row["pair_id"]), prompt=row["prompt"], chosen=decode_image(row["chosen"], base),
                rejected=decode_image(row["rejected"], base), split=row["split"] or "",
                n_edits=int(row["n_edits"] or 0), relation_kinds=list(row["relation_kinds"] or []))


def iter_pairs(path: str | Path, split: str = "") -> Iterator[Pair]:
    """Every pair of `split` ('' for all) in file order, one row group in memory at a time."""
    path = Path(path)
    parquet = pq.ParquetFile(path)
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=COLUMNS)
        for row in table.to_pylist():
            if not split or row["split"] == split:
                yield _pair(row, path.parent)


class PreferencePairs(torch.utils.data.Dataset):
    """Random access to the pairs of one split: the index holds (row group, row) per pair."""

    def __init__(self, path: str | Path, split: str = "", *, limit: int = 0, cache_groups: int = 2):
        self.path = Path(path)
        self.split = split
        self.cache_groups = cache_groups
        self._file: pq.ParquetFile | None = None
        self._cache: OrderedDict[int, list[dict]] = OrderedDict()
        self.index: list[tuple[int, int]] = []
        parquet = self._parquet()
        missing = set(COLUMNS) - set(parquet.schema_arrow.names)
        if missing:
            raise ValueError(f"{self.path} is not a SpatialLab pair export: no column(s) {', '.join(sorted(missing))}")
        for group in range(parquet.num_row_groups):
            splits = parquet.read_row_group(group, columns=["split"]).column("split").to_pylist()
            self.index += [(group, row) for row, value in enumerate(splits) if not split or value == split]
        if limit:
            self.index = self.index[:limit]

    def _parquet(self) -> pq.ParquetFile:
        if self._file is None:
            self._file = pq.ParquetFile(self.path)
        return self._file

    def __getstate__(self):  # DataLoader workers reopen the file instead of sharing a handle
        return {**self.__dict__, "_file": None, "_cache": OrderedDict()}

    def __len__(self) -> int:
        return len(self.index)

    def _group(self, group: int) -> list[dict]:
        if group in self._cache:
            self._cache.move_to_end(group)
        else:
            self._cache[group] = self._parquet().read_row_group(group, columns=COLUMNS).to_pylist()
            while len(self._cache) > self.cache_groups:
                self._cache.popitem(last=False)
        return self._cache[group]

    def __getitem__(self, i: int) -> Pair:
        group, row = self.index[i]
        return _pair(self._group(group)[row], self.path.parent)


class PairCollator:
    """A list of pairs -> one batch of 2n sequences: the n winners, then the n losers (the same prompts), so a
    single forward pass (one DDP all-reduce) scores both sides. `builder` is SpatialScore.inputs.

    With `mismatch`, n more sequences follow: each prompt with the next pair's winner image (wrapping round), and
    "mismatch_valid" marks those whose image comes from a different prompt (the in-batch term of the training loop
    skips the others)."""

    def __init__(self, builder, *, mismatch: bool = False):
        self.builder = builder
        self.mismatch = mismatch

    def __call__(self, pairs: Sequence[Pair]) -> dict:
        prompts = [pair.prompt for pair in pairs]
        images = [pair.chosen for pair in pairs] + [pair.rejected for pair in pairs]
        texts = prompts + prompts
        extra = {}
        if self.mismatch:
            others = list(pairs[1:]) + list(pairs[:1])
            images += [other.chosen for other in others]
            texts += prompts
            extra["mismatch_valid"] = torch.tensor([b.prompt != a.prompt for a, b in zip(pairs, others, strict=True)])
        return {
            **extra,
            "inputs": self.builder(texts, images),
            "pairs": len(pairs),
            "pair_id": torch.tensor([pair.pair_id for pair in pairs]),
            "n_edits": torch.tensor([pair.n_edits for pair in pairs]),
            "relation_kinds": [pair.relation_kinds for pair in pairs],
        }


def shard_batches(n: int, *, batch_size: int, rank: int, world: int, seed: int, epoch: int) -> list[list[int]]:
    """This rank's batches of one epoch, as a pure function of (seed, epoch): a seeded permutation, padded by
    wrapping round to a multiple of world x batch_size so every rank gets the same number of full batches, dealt
    out rank by rank (DistributedSampler's split). A resumed run recomputes exactly the same batches."""
    if n == 0:
        return []
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    chunk = world * batch_size
    total = max(chunk, -(-n // chunk) * chunk)
    order = (order * (-(-total // n)))[:total]
    mine = order[rank::world]
    return [mine[i:i + batch_size] for i in range(0, len(mine), batch_size)]
