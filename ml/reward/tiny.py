"""Qwen2.5-VL (and Qwen2-VL) backbones with random weights, built from configs: what the tests, the CPU demo and
the GPU benchmark load, since no weights can be downloaded here.

`build_tiny_backbone(folder)` writes a folder laid out like a real Qwen2.5-VL-7B-Instruct download (config.json,
model.safetensors, tokenizer.json + tokenizer_config.json, chat_template.jinja, preprocessor_config.json), so
`SpatialScore.from_pretrained(folder)` goes through exactly the loading code a real folder goes through.

The tokenizer is built locally: a byte-level BPE over the 256 byte symbols with no merges (each UTF-8 byte is one
token), plus Qwen's special tokens with the roles the processor and chat template give them. It has Qwen's
pre-tokenizer and decoder, so any text encodes without unknown tokens; every distinct prompt tokenizes
differently, which is all the tests need. It does give about five times as many text tokens per word as Qwen's
real 151k vocabulary, which the GPU benchmark corrects for by cutting prompts to the real token count. With
`corpus=texts`, the tokenizer is instead a byte-level BPE trained on those texts (`corpus_tokenizer`): a word of
the corpus is one token, as with Qwen's vocabulary (the CPU learning benchmark trains it on its training prompts).

`qwen2_5_vl_config("7b", ...)` has the real Qwen2.5-VL-7B dimensions (8.3 B parameters) for the GPU benchmark,
which instantiates it directly on the device in bf16 (`build_backbone_on_device`); no folder is written for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tokenizers import AddedToken, pre_tokenizers
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

# Qwen's special tokens, in the order of the real vocabulary (ids 151643...).
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]

# Qwen2-VL / Qwen2.5-VL's own chat template (the one their processors ship), so inputs are built in the
# model's own chat format.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class BackboneSize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    mrope_section: tuple[int, int, int]  # sums to head_dim / 2 (head_dim = hidden / heads)
    vision_depth: int
    vision_hidden: int
    vision_heads: int
    vision_intermediate: int
    fullatt_blocks: tuple[int, ...]
    vocab_size: int | None = None  # None: the tokenizer's size
    # The language model's rotary base. Qwen's 3-D rotary gives the width axis the lowest frequencies: at 1e6 and a
    # head_dim of 32 they turn by under 0.001 rad across a 4-token-wide image, so a tiny model cannot tell left from
    # right through its positions at all (docs/reward_learning.md); the learning benchmark's preset uses a low base.
    rope_theta: float = 1e6
    # Standard deviation of the random weights (transformers' initializer_range; Qwen's is 0.02).
    init_std: float = 0.02


SIZES = {
    # Milliseconds per step on CPU at 56x56 px; about 0.2 M parameters.
    "tiny": BackboneSize(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, mrope_section=(2, 3, 3),
                         vision_depth=2, vision_hidden=32, vision_heads=2, vision_intermediate=64,
                         fullatt_blocks=(1,)),
    # The CPU learning benchmark (benchmarks/reward_learning.py): 0.9 M parameters, about 0.15 s per training step
    # of 8 pairs at 112 px on one core with the corpus tokenizer; a low rotary base (the width axis turns by about
    # 0.2 rad per visual token instead of 0.0002) and larger random weights (docs/reward_learning.md).
    "bench": BackboneSize(hidden=128, layers=4, heads=4, kv_heads=2, intermediate=256, mrope_section=(4, 6, 6),
                          vision_depth=2, vision_hidden=64, vision_heads=2, vision_intermediate=128,
                          fullatt_blocks=(1,), rope_theta=10.0, init_std=0.1),
    # Qwen2.5-VL-7B-Instruct's real dimensions (its config.json): 8.3 B parameters with the vision tower.
    "7b": BackboneSize(hidden=3584, layers=28, heads=28, kv_heads=4, intermediate=18944, mrope_section=(16, 24, 24),
                       vision_depth=32, vision_hidden=1280, vision_heads=16, vision_intermediate=3420,
                       fullatt_blocks=(7, 15, 23, 31), vocab_size=152064),
}

# Pixel bounds for the tiny folder's image processor: 56x56 to 112x112 px give 4 to 16 visual tokens.
TINY_MIN_PIXELS = 56 * 56
TINY_MAX_PIXELS = 112 * 112


def byte_level_tokenizer() -> Qwen2Tokenizer:
    """A Qwen2Tokenizer over the 256 byte symbols (no merges) plus Qwen's special tokens and chat template."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    return _qwen_tokenizer({symbol: i for i, symbol in enumerate(alphabet)}, [])


def corpus_tokenizer(texts: Iterable[str], vocab_size: int = 2000) -> Qwen2Tokenizer:
    """A byte-level BPE trained on `texts` (Qwen's pre-tokenizer: a word and its leading space become one token
    once the vocabulary is large enough), the 256 byte symbols kept so any text still encodes, plus Qwen's special
    tokens and chat template. Words of the corpus cost one token instead of one per byte, as with Qwen's real
    vocabulary; deterministic for the same texts."""
    from tokenizers import Tokenizer, models, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = byte_level_tokenizer().backend_tokenizer.pre_tokenizer
    backend.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    trained = json.loads(backend.to_str())["model"]
    merges = [tuple(merge) if isinstance(merge, list) else tuple(merge.split(" ")) for merge in trained["merges"]]
    return _qwen_tokenizer(dict(sorted(trained["vocab"].items(), key=lambda item: item[1])), merges)


def _qwen_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Qwen2Tokenizer:
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, errors="replace")
    tokenizer.add_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS],
                         special_tokens=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "right"
    return tokenizer


def image_processor(min_pixels: int = TINY_MIN_PIXELS, max_pixels: int = TINY_MAX_PIXELS) -> Qwen2VLImageProcessorPil:
    # The PIL backend: the torchvision one cannot load beside the CPU torch used here.
    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


def _size(size: str) -> BackboneSize:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    return SIZES[size]


def qwen2_5_vl_config(size: str, tokenizer: Qwen2Tokenizer, *, family: str = "qwen2_5_vl", **overrides):
    """A Qwen2.5-VL (or, with family="qwen2_vl", a Qwen2-VL) config of the given size whose special token ids are
    the tokenizer's; `overrides` replace fields of the preset (rope_theta=..., init_std=...; None keeps it)."""
    dims = replace(_size(size), **{key: value for key, value in overrides.items() if value is not None})
    ids = dict(zip(SPECIAL_TOKENS, tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS), strict=True))
    head_dim = dims.hidden // dims.heads
    if sum(dims.mrope_section) * 2 != head_dim:
        raise ValueError(f"mrope_section {dims.mrope_section} must sum to head_dim / 2 = {head_dim // 2}")
    text = dict(
        vocab_size=dims.vocab_size or len(tokenizer),
        hidden_size=dims.hidden,
        intermediate_size=dims.intermediate,
        num_hidden_layers=dims.layers,
        num_attention_heads=dims.heads,
        num_key_value_heads=dims.kv_heads,
        max_position_embeddings=128000,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": dims.rope_theta,
                         "mrope_section": list(dims.mrope_section)},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        initializer_range=dims.init_std,
    )
    special = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                   vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    if family == "qwen2_5_vl":
        vision = dict(depth=dims.vision_depth, hidden_size=dims.vision_hidden,
                      intermediate_size=dims.vision_intermediate, num_heads=dims.vision_heads,
                      out_hidden_size=dims.hidden, hidden_act="silu", patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2, window_size=112, tokens_per_second=2,
                      fullatt_block_indexes=list(dims.fullatt_blocks), initializer_range=dims.init_std)
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, initializer_range=dims.init_std, **special)
    if family == "qwen2_vl":
        vision = dict(depth=dims.vision_depth, embed_dim=dims.vision_hidden, hidden_size=dims.hidden,
                      num_heads=dims.vision_heads, mlp_ratio=dims.vision_intermediate // dims.vision_hidden,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, initializer_range=dims.init_std)
        return Qwen2VLConfig(text_config=text, vision_config=vision, initializer_range=dims.init_std, **special)
    raise ValueError(f"family must be qwen2_5_vl or qwen2_vl, not {family!r}")


def build_tiny_backbone(folder: str | Path, size: str = "tiny", *, family: str = "qwen2_5_vl", seed: int = 0,
                        corpus: Iterable[str] | None = None, vocab_size: int = 2000,
                        rope_theta: float | None = None, init_std: float | None = None) -> Path:
    """Writes a randomly initialised Qwen2.5-VL (or Qwen2-VL) ForConditionalGeneration with its tokenizer, chat
    template and image processor into `folder` (created), laid out like a real download; returns the folder.

    With `corpus`, the tokenizer is a byte-level BPE trained on those texts (`corpus_tokenizer`) instead of one
    token per byte; `rope_theta` and `init_std` override the preset's."""
    tokenizer = byte_level_tokenizer() if corpus is None else corpus_tokenizer(corpus, vocab_size)
    config = qwen2_5_vl_config(size, tokenizer, family=family, rope_theta=rope_theta, init_std=init_std)
    model_class = Qwen2_5_VLForConditionalGeneration if family == "qwen2_5_vl" else Qwen2VLForConditionalGeneration
    with torch.random.fork_rng():  # the same seed gives the same weights; the caller's RNG is left alone
        torch.manual_seed(seed)
        model = model_class(config).eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor().save_pretrained(folder)
    return folder


def build_backbone_on_device(size: str = "7b", *, device: str | torch.device = "cuda",
                             dtype: torch.dtype = torch.bfloat16, family: str = "qwen2_5_vl"):
    """The bare vision-language model (Qwen2_5_VLModel: vision tower + language model, no LM head) of `size` with
    random weights, allocated and initialised on `device` in `dtype` (no CPU copy of the 8 B parameters), with
    the byte-level tokenizer and an image processor. Returns (model, tokenizer, image_processor)."""
    from transformers import Qwen2_5_VLModel, Qwen2VLModel

    tokenizer = byte_level_tokenizer()
    config = qwen2_5_vl_config(size, tokenizer, family=family)
    model_class = Qwen2_5_VLModel if family == "qwen2_5_vl" else Qwen2VLModel
    with torch.device(device):
        model = model_class._from_config(config, dtype=dtype)
    return model, tokenizer, image_processor(max_pixels=448 * 448)
