"""Reading pair exports in the platform's Parquet layout: split filtering, row-group streaming, image decoding,
and the collate that turns pairs into one batch of winners then losers."""

from __future__ import annotations

import dataclasses
import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ml.reward.config import ModelConfig  # noqa: E402
from ml.reward.data import PairCollator, PreferencePairs, iter_pairs  # noqa: E402
from ml.reward.model import SpatialScore  # noqa: E402
from ml.reward.tiny import build_tiny_backbone  # noqa: E402
from tests.ml.reward_data import COLOURS, colour_dataset, colour_pairs, write_pairs  # noqa: E402


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    # 18 pairs in row groups of 16: the splits interleave across two row groups.
    return colour_dataset(tmp_path_factory.mktemp("export") / "pairs.parquet", train=10, validation=4, test=4,
                          size=56)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = build_tiny_backbone(tmp_path_factory.mktemp("backbone"))
    torch.manual_seed(0)
    return SpatialScore.from_pretrained(folder, ModelConfig(backbone=str(folder), lora_rank=4, lora_alpha=8,
                                                            min_pixels=56 * 56, max_pixels=56 * 56))


def test_the_file_has_the_platforms_columns(export):
    names = pq.ParquetFile(export).schema_arrow.names
    assert names == ["prompt", "chosen", "rejected", "perturbed_prompt", "pair_id", "split", "n_edits", "edits",
                     "relation_kinds", "category", "generator", "seed", "width", "height", "agreement", "decision"]
    assert pq.ParquetFile(export).num_row_groups == 2


def test_splits_filter_rows_and_streaming_agrees_with_random_access(export):
    assert [len(PreferencePairs(export, split)) for split in ("", "train", "validation", "test")] == [18, 10, 4, 4]
    dataset = PreferencePairs(export, "validation")
    streamed = list(iter_pairs(export, "validation"))
    assert [pair.pair_id for pair in streamed] == [dataset[i].pair_id for i in range(len(dataset))]
    assert all(pair.split == "validation" for pair in streamed)
    assert len(PreferencePairs(export, "train", limit=3)) == 3


def test_pairs_decode_to_images_and_metadata(export):
    pair = PreferencePairs(export, "train")[0]
    want = pair.prompt.split()[1]  # "a <colour> square ..."
    assert pair.chosen.mode == "RGB" and pair.chosen.size == (56, 56)
    assert pair.chosen.getpixel((10, 10)) == COLOURS[want]
    assert pair.rejected.getpixel((10, 10)) != COLOURS[want]
    assert isinstance(pair.n_edits, int) and 1 <= pair.n_edits <= 3
    assert isinstance(pair.relation_kinds, list) and pair.relation_kinds


def test_image_cells_holding_only_a_path_are_read_beside_the_file(tmp_path):
    rows = colour_pairs(2, size=56)
    for row in rows:
        for side in ("chosen", "rejected"):
            path = tmp_path / row[side]["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(row[side]["bytes"])
            row[side] = {"bytes": None, "path": row[side]["path"]}
    pair = PreferencePairs(write_pairs(tmp_path / "paths.parquet", rows))[1]
    assert pair.chosen.getpixel((0, 0)) == COLOURS[pair.prompt.split()[1]]


def test_a_file_without_the_pair_columns_is_refused(tmp_path):
    pq.write_table(pa.table({"prompt": ["x"], "split": ["train"]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a SpatialLab pair export: no column"):
        PreferencePairs(tmp_path / "other.parquet")


def test_collate_puts_winners_then_losers_in_one_batch(export, model):
    dataset = PreferencePairs(export, "train")
    pairs = [dataset[i] for i in range(3)]
    batch = PairCollator(model.inputs)(pairs)
    expected = model.inputs([p.prompt for p in pairs] * 2, [p.chosen for p in pairs] + [p.rejected for p in pairs])
    assert batch["pairs"] == 3 and batch["inputs"]["input_ids"].shape[0] == 6
    assert all(torch.equal(batch["inputs"][key], expected[key]) for key in expected)
    assert batch["pair_id"].tolist() == [p.pair_id for p in pairs]
    assert batch["relation_kinds"] == [p.relation_kinds for p in pairs]


def test_collate_with_mismatch_adds_each_prompt_with_the_next_pairs_winner(export, model):
    dataset = PreferencePairs(export, "train")
    pairs = [dataset[i] for i in range(3)]
    pairs.append(dataclasses.replace(dataset[3], prompt=pairs[0].prompt))  # the same prompt as the first pair
    batch = PairCollator(model.inputs, mismatch=True)(pairs)
    prompts = [p.prompt for p in pairs]
    others = pairs[1:] + pairs[:1]
    expected = model.inputs(prompts * 3, [p.chosen for p in pairs] + [p.rejected for p in pairs]
                            + [p.chosen for p in others])
    assert batch["pairs"] == 4 and batch["inputs"]["input_ids"].shape[0] == 12
    assert all(torch.equal(batch["inputs"][key], expected[key]) for key in expected)
    # The last pair's "other" winner is the first pair's, under the same prompt: not a mismatch.
    assert batch["mismatch_valid"].tolist() == [p.prompt != o.prompt for p, o in zip(pairs, others, strict=True)]
    assert batch["mismatch_valid"].tolist()[-1] is False
    assert "mismatch_valid" not in PairCollator(model.inputs)(pairs)


def test_the_dataset_goes_to_dataloader_workers(export, model):
    dataset = PreferencePairs(export, "test")
    dataset[0]  # opens the file and fills the cache: neither may travel to a worker
    assert pickle.loads(pickle.dumps(dataset))[1].pair_id == dataset[1].pair_id
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=PairCollator(model.inputs), num_workers=1)
    assert [batch["pairs"] for batch in loader] == [2, 2]
