"""The two opt-in settings the CPU learning benchmark (benchmarks/reward_learning.py) uses: ModelConfig.train_vision
(the tiny random vision tower trains too, and its weights travel with the checkpoint) and TrainConfig.max_seconds
(a wall-clock budget: the run stops early, but evaluates and saves as at its last step). Both are off by default."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from ml.reward import train as train_module  # noqa: E402
from ml.reward.config import ModelConfig, TrainConfig  # noqa: E402
from ml.reward.model import SpatialScore  # noqa: E402
from ml.reward.tiny import build_tiny_backbone  # noqa: E402
from ml.reward.train import checkpoint_dirs, train  # noqa: E402
from tests.ml.reward_data import colour_dataset  # noqa: E402

PX = 112


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("backbone"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return colour_dataset(tmp_path_factory.mktemp("data") / "pairs.parquet", train=16, validation=8, test=4)


def model_config(backbone: Path, **overrides) -> ModelConfig:
    return ModelConfig(**{"backbone": str(backbone), "lora_rank": 4, "lora_alpha": 8.0, "min_pixels": PX * PX,
                          "max_pixels": PX * PX, **overrides})


def test_the_vision_tower_stays_frozen_by_default(backbone):
    model = SpatialScore.from_pretrained(backbone, model_config(backbone))
    assert not any(param.requires_grad for param in model.backbone.visual.parameters())
    assert not any(key.startswith("vision.") for key in model.trainable_state_dict())


def test_train_vision_trains_the_vision_tower_and_saves_it(backbone, data, tmp_path):
    config = model_config(backbone, train_vision=True)
    before = SpatialScore.from_pretrained(backbone, config)
    vision = dict(before.backbone.visual.named_parameters())
    assert vision and all(param.requires_grad for param in vision.values())
    names = {name for name, _ in before.trainable_parameters()}
    assert {f"backbone.visual.{name}" for name in vision} <= names
    # The language model itself stays frozen: only its LoRA matrices train.
    assert not any(param.requires_grad for name, param in before.language_model.named_parameters()
                   if "lora_" not in name)

    summary = train(config, TrainConfig(data=str(data), output_dir=str(tmp_path), lr=3e-3, warmup_steps=1,
                                        batch_size=4, max_steps=2, eval_every=0, save_every=0, log_every=1))
    restored = SpatialScore.from_checkpoint(summary["checkpoint"])
    trained = restored.trainable_state_dict()
    start = before.trainable_state_dict()
    keys = [key for key in trained if key.startswith("vision.")]
    assert len(keys) == len(before.backbone.visual.state_dict())
    # The vision weights moved in training, and the checkpoint brings the trained ones back.
    assert any(not torch.equal(trained[key], start[key]) for key in keys)
    assert restored.config.train_vision
    assert train_module.weights_digest(restored) == summary["params_sha256"]


def test_max_seconds_stops_early_and_still_evaluates_and_saves(backbone, data, tmp_path):
    events = []
    summary = train(model_config(backbone), TrainConfig(
        data=str(data), output_dir=str(tmp_path), lr=3e-3, warmup_steps=1, batch_size=4, max_steps=50,
        max_seconds=1e-9, eval_every=0, save_every=0, log_every=10), on_metrics=events.append)
    # Out of time after the first step: that step is the last, with its evaluation and checkpoint.
    assert summary["step"] == 1 and summary["total_steps"] == 50
    assert [event["kind"] for event in events] == ["train", "eval", "checkpoint"]
    assert [path.name for path in checkpoint_dirs(tmp_path / "checkpoints")] == ["step-00000001"]
    assert summary["eval"]["pairs"] == 8


def test_without_max_seconds_the_run_goes_to_max_steps(backbone, data, tmp_path):
    summary = train(model_config(backbone), TrainConfig(
        data=str(data), output_dir=str(tmp_path), lr=3e-3, warmup_steps=1, batch_size=4, max_steps=3,
        eval_every=0, save_every=0, log_every=10))
    assert summary["step"] == 3 and len(summary["history"]) == 3


def test_corpus_tokenizer_makes_a_word_one_token_and_still_encodes_anything(tmp_path):
    from ml.reward.tiny import corpus_tokenizer

    corpus = ["a red mug is left of a kettle", "the kettle is behind the red mug", "a toaster is above a mug"] * 5
    tokenizer = corpus_tokenizer(corpus, vocab_size=400)
    words = tokenizer.convert_ids_to_tokens(tokenizer("a red mug is left of a kettle")["input_ids"])
    assert words == ["a", "Ġred", "Ġmug", "Ġis", "Ġleft", "Ġof", "Ġa", "Ġkettle"]
    unseen = "zebra, 42 ünïcode"  # not in the corpus: falls back to byte symbols, decodes back exactly
    ids = tokenizer(unseen)["input_ids"]
    assert len(ids) > 3 and tokenizer.decode(ids) == unseen
    # The same corpus gives the same tokenizer; a backbone built with it loads and reads prompts with it.
    assert corpus_tokenizer(corpus, vocab_size=400).get_vocab() == tokenizer.get_vocab()
    folder = build_tiny_backbone(tmp_path / "corpus", corpus=corpus, vocab_size=400)
    model = SpatialScore.from_pretrained(folder, model_config(folder))
    text = model.inputs.text("a red mug is left of a kettle")
    assert "Ġkettle" in model.tokenizer.convert_ids_to_tokens(model.tokenizer(text)["input_ids"])
    assert model.backbone.get_input_embeddings().num_embeddings == len(model.tokenizer)


def test_preset_overrides_reach_the_saved_config(tmp_path):
    import json

    from ml.reward.tiny import SIZES

    folder = build_tiny_backbone(tmp_path / "b", rope_theta=10.0, init_std=0.1)
    config = json.loads((folder / "config.json").read_text())
    text = config.get("text_config", config)
    assert text["rope_parameters"]["rope_theta"] == 10.0
    model = SpatialScore.from_pretrained(folder, model_config(folder))
    q = model.language_model.layers[0].self_attn.q_proj.base_layer.weight
    assert 0.09 < float(q.std()) < 0.11  # drawn with the override, not Qwen's 0.02
    default = json.loads((build_tiny_backbone(tmp_path / "d") / "config.json").read_text())
    assert default.get("text_config", default)["rope_parameters"]["rope_theta"] == SIZES["tiny"].rope_theta == 1e6

