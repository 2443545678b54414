"""A tiny synthetic preference dataset written in the platform's Parquet export layout (the columns and types of
PARQUET_FIELDS in platform/spatiallab/datasets/exports.py, copied here: ml/ and its tests do not import the
platform).

Each prompt names a colour; the chosen image is a solid square of that colour, the rejected one of another. A
score that ignores the prompt can do no better than chance (every colour is the winner as often as the loser),
so learning it needs the reward token to attend to both the prompt and the image."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (30, 60, 220), "yellow": (230, 220, 40)}
KINDS = ["left_right", "front_behind", "above_below", "swap", "order"]
PLACES = ["on the table", "in the kitchen", "left of the lamp", "behind the chair"]


def png(colour: tuple[int, int, int], size: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def schema() -> pa.Schema:
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.schema([
        ("prompt", pa.string()), ("chosen", image), ("rejected", image), ("perturbed_prompt", pa.string()),
        ("pair_id", pa.int64()), ("split", pa.string()), ("n_edits", pa.int32()), ("edits", pa.string()),
        ("relation_kinds", pa.list_(pa.string())), ("category", pa.string()), ("generator", pa.string()),
        ("seed", pa.int64()), ("width", pa.int32()), ("height", pa.int32()), ("agreement", pa.float64()),
        ("decision", pa.string()),
    ])


def colour_pairs(n: int, *, split: str = "train", seed: int = 0, start_id: int = 1,
                 colours: tuple[str, ...] = ("blue", "red"), size: int = 112) -> list[dict]:
    """n pairs, the prompted colour cycling through `colours` (at least two). 112 px gives 16 visual tokens."""
    rng = random.Random(seed)
    names = sorted(colours)
    rows = []
    for i in range(n):
        want = names[i % len(names)]
        other = rng.choice([name for name in names if name != want])
        n_edits = rng.choice([1, 1, 2, 3])
        kinds = sorted(rng.sample(KINDS, min(n_edits, 2)))
        pair_id = start_id + i
        prompt = f"a {want} square {rng.choice(PLACES)}"
        rows.append({
            "prompt": prompt,
            "chosen": {"bytes": png(COLOURS[want], size), "path": f"images/{pair_id}-w.png"},
            "rejected": {"bytes": png(COLOURS[other], size), "path": f"images/{pair_id}-l.png"},
            "perturbed_prompt": f"a {other} square",
            "pair_id": pair_id, "split": split, "n_edits": n_edits,
            "edits": json.dumps([{"relation_kind": kind} for kind in kinds]),
            "relation_kinds": kinds, "category": "kitchen", "generator": "synthetic", "seed": i,
            "width": size, "height": size, "agreement": 1.0, "decision": "confirmed",
        })
    return rows


def write_pairs(path: str | Path, rows: list[dict], *, row_group: int = 16) -> Path:
    """`rows` as one Parquet file, `row_group` pairs per row group (like the export's batches)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, schema(), compression="zstd") as writer:
        for start in range(0, len(rows), row_group):
            chunk = rows[start:start + row_group]
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema()))
    return path


def colour_dataset(path: str | Path, *, train: int = 32, validation: int = 8, test: int = 8, seed: int = 0,
                   **options) -> Path:
    """The three splits in one file (options: colours, size)."""
    rows = (colour_pairs(train, split="train", seed=seed, **options)
            + colour_pairs(validation, split="validation", seed=seed + 1, start_id=train + 1, **options)
            + colour_pairs(test, split="test", seed=seed + 2, start_id=train + validation + 1, **options))
    random.Random(seed).shuffle(rows)  # the splits interleave across row groups, as in a real export
    return write_pairs(path, rows)
