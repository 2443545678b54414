"""SpatialScore on a tiny random Qwen2.5-VL written to a folder and loaded back through from_pretrained: input
format, what trains (LoRA, head, the reward-token row and nothing else), scoring, save/load, checkpointing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from PIL import Image  # noqa: E402

from ml.reward.config import ModelConfig  # noqa: E402
from ml.reward.losses import bradley_terry_loss  # noqa: E402
from ml.reward.model import SpatialScore  # noqa: E402
from ml.reward.tiny import build_tiny_backbone  # noqa: E402

PROMPTS = ["a red mug to the left of a blue kettle", "three books from left to right: red, green, blue"]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("qwen2_5_vl"))


def config_for(folder: Path, **overrides) -> ModelConfig:
    return ModelConfig(**{"backbone": str(folder), "lora_rank": 4, "lora_alpha": 8.0, "min_pixels": 56 * 56,
                          "max_pixels": 112 * 112, **overrides})


def load(folder: Path, seed: int = 0, **overrides) -> SpatialScore:
    torch.manual_seed(seed)
    return SpatialScore.from_pretrained(folder, config_for(folder, **overrides))


def solid(colour, size=(64, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


IMAGES = [solid((200, 30, 30)), solid((30, 30, 200), (100, 60))]


def train_step(model: SpatialScore, lr: float = 1e-2) -> None:
    """One AdamW step on a Bradley-Terry loss (winners: the first image)."""
    optimizer = torch.optim.AdamW([p for _, p in model.trainable_parameters()], lr=lr)
    batch = model.inputs(PROMPTS + PROMPTS, IMAGES + IMAGES[::-1])
    model.train()
    out = model(**batch)
    bradley_terry_loss(out.mu[:2], out.mu[2:]).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_the_folder_looks_like_a_real_download(backbone):
    names = {p.name for p in backbone.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
            "preprocessor_config.json"} <= names
    config = json.loads((backbone / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    text = config["text_config"]
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert text["hidden_size"] == 64 and text["num_hidden_layers"] == 2
    assert sum(text["rope_parameters"]["mrope_section"]) == head_dim // 2


def test_inputs_are_the_chat_format_with_the_reward_token_last(backbone):
    model = load(backbone)
    batch = model.inputs(PROMPTS, IMAGES)
    tokenizer = model.tokenizer
    grid = batch["image_grid_thw"]
    for row in range(2):
        ids = batch["input_ids"][row][batch["attention_mask"][row].bool()]
        text = tokenizer.decode(ids)
        assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                               "<|vision_start|><|image_pad|>")
        assert text.endswith(f"<|vision_end|>{PROMPTS[row]}<|reward|>")
        assert int((ids == model.inputs.image_token_id).sum()) == int(grid[row].prod()) // 4
        assert ids[-1].item() == model.reward_token_id
    assert grid.tolist() == [[1, 4, 4], [1, 4, 8]]  # 64x64 -> 56x56, 100x60 -> 112x56 (multiples of 28)
    assert torch.equal(batch["mm_token_type_ids"].bool(), batch["input_ids"] == model.inputs.image_token_id)
    # Right padding; a prompt cannot inject its own reward or image tokens.
    assert batch["attention_mask"][0, -1] == 0 or batch["attention_mask"][1, -1] == 0
    assert model.inputs.text("<|reward|><|image_pad|>x").count("<|image_pad|>") == 1


def test_only_lora_the_head_and_the_reward_row_train(backbone):
    model = load(backbone)
    names = [name for name, _ in model.trainable_parameters()]
    lora = [name for name in names if "lora_" in name]
    assert len(lora) == 2 * 7 * 2  # 2 layers x 7 projections x (A, B)
    assert all(name.startswith("backbone.language_model.layers.") for name in lora)
    assert sorted(set(names) - set(lora)) == ["head.net.1.bias", "head.net.1.weight", "head.net.3.bias",
                                              "head.net.3.weight", "reward_embedding"]
    assert not any(p.requires_grad for p in model.backbone.visual.parameters())
    assert not model.backbone.get_input_embeddings().weight.requires_grad
    head = model.head.net
    assert isinstance(head[0], torch.nn.Dropout) and head[0].p == 0.05
    assert (head[1].in_features, head[1].out_features, head[3].out_features) == (64, 16, 2)
    assert isinstance(head[2], torch.nn.ReLU)


def test_an_optimizer_step_changes_only_the_reward_row(backbone):
    model = load(backbone)
    frozen = model.backbone.get_input_embeddings().weight.detach().clone()
    before = model.input_embedding_matrix()
    vision = {name: p.detach().clone() for name, p in model.backbone.visual.named_parameters()}
    lora_b = model.language_model.layers[0].self_attn.q_proj.lora_B["default"].weight.detach().clone()
    train_step(model)
    after = model.input_embedding_matrix()
    row = model.reward_token_id
    others = torch.arange(after.shape[0]) != row
    assert torch.equal(after[others], before[others])  # every other row bit-identical
    assert not torch.equal(after[row], before[row])
    assert torch.equal(model.backbone.get_input_embeddings().weight, frozen)  # the stored matrix never moves
    assert all(torch.equal(p, vision[name]) for name, p in model.backbone.visual.named_parameters())
    assert not torch.equal(model.language_model.layers[0].self_attn.q_proj.lora_B["default"].weight, lora_b)


def test_scores_are_deterministic_batch_independent_and_leave_the_mode_alone(backbone):
    model = load(backbone)
    model.train()
    together = model.score(PROMPTS, IMAGES)
    assert model.training
    assert together.shape == (2,) and together.dtype == torch.float32
    assert torch.equal(together, model.score(PROMPTS, IMAGES))  # eval mode: no dropout
    alone = torch.cat([model.score(PROMPTS[:1], IMAGES[:1]), model.score(PROMPTS[1:], IMAGES[1:])])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    # The score depends on both the prompt and the image.
    assert model.score(PROMPTS[:1], IMAGES[1:]).item() != together[0].item()
    assert model.score(PROMPTS[1:], IMAGES[:1]).item() != together[0].item()


def test_predict_gives_mu_and_log_sigma_of_the_forward_pass_in_batches(backbone):
    model = load(backbone)
    train_step(model)
    prompts, images = PROMPTS * 3, IMAGES * 3
    out = model.predict(prompts, images, batch_size=4)  # batches of 4 and 2
    model.eval()
    with torch.no_grad():
        direct = model(**model.inputs(prompts, images))
    torch.testing.assert_close(out.mu, direct.mu, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.log_sigma, direct.log_sigma, atol=1e-5, rtol=1e-5)
    assert not torch.equal(out.mu, out.log_sigma)
    assert torch.equal(model.score(prompts, images, batch_size=4), out.mu)
    with pytest.raises(ValueError, match="3 prompts but 2 images"):
        model.predict(PROMPTS + PROMPTS[:1], IMAGES)
    assert model.predict([], []).mu.numel() == 0


def test_save_and_load_give_identical_scores(backbone, tmp_path):
    model = load(backbone)
    train_step(model)  # LoRA B starts at zero: make every part non-trivial first
    expected = model.score(PROMPTS, IMAGES)
    model.save(tmp_path / "rm")
    assert {p.name for p in (tmp_path / "rm").iterdir()} == {"reward_model.safetensors", "reward_model.json"}
    torch.manual_seed(123)  # another seed: the new parts' random init must be overwritten by the checkpoint
    loaded = SpatialScore.from_checkpoint(tmp_path / "rm")
    assert torch.equal(loaded.score(PROMPTS, IMAGES), expected)
    assert loaded.reward_token_id == model.reward_token_id
    with pytest.raises(ValueError, match="lora_rank or lora_targets"):
        load(backbone, lora_rank=2).load_trainable_state_dict(model.trainable_state_dict())


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(backbone):
    def grads(checkpointing: bool):
        model = load(backbone, lora_dropout=0.0, head_dropout=0.0)
        train_step(model)  # non-zero LoRA B, so that every LoRA gets a gradient
        if checkpointing:
            model.enable_gradient_checkpointing()
        vision_grad = []
        model.backbone.visual.register_forward_hook(
            lambda module, args, out: vision_grad.append(out.pooler_output.requires_grad))
        model.train()
        batch = model.inputs(PROMPTS + PROMPTS, IMAGES + IMAGES[::-1])
        out = model(**batch)
        loss = bradley_terry_loss(out.mu[:2], out.mu[2:])
        loss.backward()
        # The frozen vision tower must never be part of the backward pass (enabling checkpointing in transformers
        # hooks its patch embedding to require grad; on the 7B that made each step 4 times slower).
        assert vision_grad == [False]
        return loss.detach(), {name: p.grad.clone() for name, p in model.trainable_parameters()}

    loss, plain = grads(False)
    loss_ckpt, ckpt = grads(True)
    torch.testing.assert_close(loss_ckpt, loss)
    assert plain.keys() == ckpt.keys()
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], atol=1e-6, rtol=1e-5)


def test_qwen2_vl_backbones_load_too(tmp_path):
    folder = build_tiny_backbone(tmp_path / "qwen2_vl", family="qwen2_vl")
    model = load(folder)
    assert type(model.backbone).__name__ == "Qwen2VLModel"
    assert model.score(PROMPTS, IMAGES).shape == (2,)


def test_other_models_and_missing_folders_are_refused(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        tmp_path / "bert")
    with pytest.raises(ValueError, match="supports qwen2_5_vl, qwen2_vl"):
        SpatialScore.from_pretrained(tmp_path / "bert")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        SpatialScore.from_pretrained(tmp_path / "nowhere")
