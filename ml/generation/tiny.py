"""Tiny text-to-image pipelines with random weights, built from configs: what tests, the CPU demo and the
benchmarks load through the real `from_pretrained` code path, since no weights can be downloaded here.

Two families, so the diffusers backend is exercised on more than one pipeline class:
- Flux (FluxPipeline: FluxTransformer2DModel, AutoencoderKL, CLIP + T5 text encoders), the model the product
  targets first and the one GRPO fine-tunes (`build_tiny_flux_lora` writes a LoRA in the format training writes);
- SD3 (StableDiffusion3Pipeline: SD3Transformer2DModel, AutoencoderKL, two projecting CLIP encoders + T5).

Each builder takes `size`: "tiny" (milliseconds per step at 32-64 px, for tests) or "small" (a few hundred
ms per image at 256 px on CPU, for benchmarks where model compute should dominate the overhead).

Tokenizers are built locally (no vocabulary files exist on this machine): CLIP gets a byte-level BPE over the
256 byte symbols with no merges, T5 a Unigram over single characters. Every distinct prompt therefore
tokenizes differently, which is all the tests need (a perturbed prompt must condition the model differently).
They are saved into the pipeline folder as tokenizer.json, so loading back needs no hub."""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DiffusionPipeline,
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
)
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from tokenizers import pre_tokenizers
from transformers import (
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    T5Config,
    T5EncoderModel,
    T5Tokenizer,
)

SIZES = ("tiny", "small")


@dataclass(frozen=True)
class TinySize:
    """The knobs that set a tiny pipeline's cost. The other dimensions follow from them by the pipelines' rules."""

    heads: int  # attention heads of the denoiser
    head_dim: int  # per head; for Flux also sum(axes_dims_rope)
    layers: int  # Flux: double-stream blocks; SD3: joint blocks
    single_layers: int  # Flux only: single-stream blocks
    text_dim: int  # T5 d_model (= the denoiser's joint_attention_dim)
    text_layers: int
    clip_dim: int  # CLIP hidden size (= Flux pooled_projection_dim)
    vae_channels: tuple[int, ...]  # one entry per VAE block; 4 blocks give the real 8x downscale


TINY_SIZES = {
    "tiny": TinySize(heads=2, head_dim=16, layers=1, single_layers=1, text_dim=32, text_layers=1, clip_dim=32,
                     vae_channels=(8, 8, 8, 8)),
    "small": TinySize(heads=4, head_dim=64, layers=2, single_layers=4, text_dim=256, text_layers=2, clip_dim=128,
                      vae_channels=(32, 64, 64, 64)),
    # FLUX.1-dev's transformer at full size (about 12 B parameters; random weights), with one-layer text
    # encoders: for GPU throughput benchmarks only (about 24 GB in bf16 on disk).
    "flux-size": TinySize(heads=24, head_dim=128, layers=19, single_layers=38, text_dim=4096, text_layers=1,
                          clip_dim=768, vae_channels=(128, 256, 512, 512)),
}
LATENT_CHANNELS = 4
CLIP_MAX_LENGTH = 77


def _size(size: str) -> TinySize:
    if size not in TINY_SIZES:
        raise ValueError(f"size must be one of {', '.join(TINY_SIZES)}, not {size!r}.")
    return TINY_SIZES[size]


def _rope_axes(head_dim: int) -> tuple[int, int, int]:
    # Flux splits each head's rotary dimensions over (text index, row, column): each part even, together the
    # whole head (FLUX.1: 16 + 56 + 56 = 128). Here the two image axes get 3/8 of the head each.
    side = head_dim * 3 // 8 // 2 * 2
    return head_dim - 2 * side, side, side


def clip_tokenizer() -> CLIPTokenizer:
    # Byte-level BPE without merges: each UTF-8 byte is one token (the last byte of a word carries "</w>",
    # as CLIP's vocabulary does), so any text encodes without unknown tokens.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for symbol in alphabet:
            vocab[symbol + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=CLIP_MAX_LENGTH)


def t5_tokenizer(model_max_length: int = 512) -> T5Tokenizer:
    # Unigram over single printable characters: "▁" marks a word start, as in T5's SentencePiece vocabulary.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(ch, -3.0) for ch in string.printable if not ch.isspace()]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=model_max_length)


def _clip_config(tokenizer: CLIPTokenizer, size: TinySize, *, projection_dim: int | None = None) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.clip_dim,
        intermediate_size=size.clip_dim * 2,
        num_hidden_layers=size.text_layers,
        num_attention_heads=2,
        max_position_embeddings=CLIP_MAX_LENGTH,
        projection_dim=projection_dim or size.clip_dim,
        # The pooled output is read at the first eos token; the ids must be the tokenizer's.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_act="gelu",
    )


def _t5(tokenizer: T5Tokenizer, size: TinySize) -> T5EncoderModel:
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=size.text_dim,
        d_kv=size.text_dim // 2,
        d_ff=size.text_dim * 2,
        num_layers=size.text_layers,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5EncoderModel(config)


def _vae(size: TinySize) -> AutoencoderKL:
    blocks = len(size.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=size.vae_channels,
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=min(size.vae_channels),
        sample_size=256,
        use_quant_conv=False,
        use_post_quant_conv=False,
        # Flux and SD3 read both factors from the config; these are FLUX.1's.
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def _save(pipe: DiffusionPipeline, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for component in pipe.components.values():
        # Models built from a config start in train mode (T5 dropout would make every run differ).
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.save_pretrained(folder)
    return folder


def build_tiny_flux(folder: str | Path, *, seed: int = 0, size: str = "tiny") -> Path:
    """A FluxPipeline with random weights saved to `folder` (created); returns the folder."""
    dims = _size(size)
    with torch.random.fork_rng():  # the same seed gives the same weights, and the caller's RNG is left alone
        torch.manual_seed(seed)
        pipe = _flux(dims)
    return _save(pipe, folder)


def _flux(dims: TinySize) -> FluxPipeline:
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    # Flux's rules: the transformer sees 2x2 patches of latents (in_channels = 4 x latent channels), its rotary
    # axes fill a head, the T5 states are its joint attention input and CLIP's pooled output its pooled input.
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4 * LATENT_CHANNELS,
        num_layers=dims.layers,
        num_single_layers=dims.single_layers,
        attention_head_dim=dims.head_dim,
        num_attention_heads=dims.heads,
        joint_attention_dim=dims.text_dim,
        pooled_projection_dim=dims.clip_dim,
        guidance_embeds=True,  # like FLUX.1-dev, so the guidance setting reaches the model
        axes_dims_rope=_rope_axes(dims.head_dim),
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                  base_image_seq_len=256, max_image_seq_len=4096, shift=3.0),
        vae=_vae(dims),
        text_encoder=CLIPTextModel(_clip_config(tokenizer, dims)),
        tokenizer=tokenizer,
        text_encoder_2=_t5(tokenizer_2, dims),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def build_tiny_sd3(folder: str | Path, *, seed: int = 0, size: str = "tiny") -> Path:
    """A StableDiffusion3Pipeline with random weights saved to `folder` (created); returns the folder."""
    dims = _size(size)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        pipe = _sd3(dims)
    return _save(pipe, folder)


def _sd3(dims: TinySize) -> StableDiffusion3Pipeline:
    tokenizer, tokenizer_3 = clip_tokenizer(), t5_tokenizer(model_max_length=256)
    # SD3's rules: the two CLIP sequences are concatenated on the feature axis and padded to T5's width, so
    # 2 x clip_dim <= text_dim; their pooled projections are concatenated into pooled_projection_dim.
    clip_dim = min(dims.clip_dim, dims.text_dim // 2)
    clip_dims = dataclasses.replace(dims, clip_dim=clip_dim)
    inner = dims.heads * dims.head_dim
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        num_layers=dims.layers,
        attention_head_dim=dims.head_dim,
        num_attention_heads=dims.heads,
        joint_attention_dim=dims.text_dim,
        caption_projection_dim=inner,
        pooled_projection_dim=2 * clip_dim,
        pos_embed_max_size=64,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(dims),
        text_encoder=CLIPTextModelWithProjection(_clip_config(tokenizer, clip_dims)),
        tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(tokenizer, clip_dims)),
        tokenizer_2=clip_tokenizer(),
        text_encoder_3=_t5(tokenizer_3, dims),
        tokenizer_3=tokenizer_3,
    )


FLUX_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]


def build_tiny_flux_lora(pipeline_folder: str | Path, out_folder: str | Path, *, rank: int = 4,
                         alpha: float | None = None, seed: int = 0) -> Path:
    """LoRA weights for the tiny Flux in `pipeline_folder`, saved to `out_folder` the way GRPO training saves its
    checkpoints (FluxPipeline.save_lora_weights of the peft state dict, with the adapter's config as metadata),
    so the generation backend must load them. `alpha` defaults to `rank` (a LoRA scale of 1)."""
    transformer = FluxTransformer2DModel.from_pretrained(Path(pipeline_folder) / "transformer")
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,
        target_modules=FLUX_LORA_TARGETS,
        # peft's default B = 0 makes a LoRA that changes nothing, and a test could not tell a loaded LoRA from an
        # ignored one; False draws B at random too.
        init_lora_weights=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        transformer.add_adapter(config)
    out = Path(out_folder)
    out.mkdir(parents=True, exist_ok=True)
    FluxPipeline.save_lora_weights(
        out,
        transformer_lora_layers=get_peft_model_state_dict(transformer),
        # Without the metadata a loader assumes lora_alpha = rank and silently rescales any other alpha (what
        # diffusers' own training scripts save, via training_utils._collate_lora_metadata).
        transformer_lora_adapter_metadata=transformer.peft_config["default"].to_dict(),
    )
    return out
