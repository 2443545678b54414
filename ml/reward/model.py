"""SpatialScore: a vision-language backbone (Qwen2.5-VL or Qwen2-VL) that scores (prompt, image).

The input is the model's own chat format: a user turn holding the image and the prompt, with a special reward
token appended to the prompt. The last layer's hidden state at that token goes through a small MLP head,
Dropout(0.05)-Linear(hidden, 16)-ReLU-Linear(16, 2), whose two outputs are mu and log sigma of a Gaussian score
N(mu, sigma^2). The score is mu.

What trains: LoRA adapters on the language model's projections (peft), the head, and the reward token's embedding
row. The row is a separate float32 parameter merged into the embedding layer's output by a forward hook wherever
the input holds the reward token; the embedding matrix itself stays frozen, so no gradient (or optimizer state)
is ever kept for its other 150 k rows, and every other row stays bit-identical by construction.
`input_embedding_matrix()` shows the matrix the model effectively uses (the frozen one with that row replaced).

Everything after the reward token is cut off the input: attention is causal, so nothing after it can reach its
hidden state.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken
from torch import nn

from ml.reward.config import ModelConfig, from_dict, to_dict

SUPPORTED_MODEL_TYPES = ("qwen2_5_vl", "qwen2_vl")
IMAGE_TOKEN = "<|image_pad|>"
WEIGHTS_NAME = "reward_model.safetensors"
CONFIG_NAME = "reward_model.json"


class RewardOutput(NamedTuple):
    mu: torch.Tensor  # (batch,) the score
    log_sigma: torch.Tensor  # (batch,) log of the score's standard deviation


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA; nothing on CPU (CPU bf16 is slow and would change the numbers the tests check)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _quiet_transformers():
    # Loading the bare model from a ...ForConditionalGeneration folder reports lm_head.weight as unexpected: the
    # reward model has no use for the language-model head, and leaving it out saves 0.5 B parameters on the 7B.
    from transformers.utils import logging as hf_logging

    before, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()


class InputBuilder:
    """(prompts, images) -> the backbone's input tensors, in the model's own chat format.

    Picklable (tokenizer + image processor only), so DataLoader workers can build batches."""

    def __init__(self, tokenizer, image_processor, *, reward_token: str, chat_template: str | None,
                 min_pixels: int, max_pixels: int):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.reward_token = reward_token
        self.chat_template = chat_template or tokenizer.chat_template
        if not self.chat_template:
            raise ValueError("the backbone folder has no chat template (tokenizer_config.json, chat_template.jinja "
                             "or chat_template.json)")
        self.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
        self.merge = getattr(image_processor, "merge_size", 2)
        self.image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.reward_token_id = tokenizer.convert_tokens_to_ids(reward_token)

    def text(self, prompt: str) -> str:
        """The chat-formatted text of one prompt (one image placeholder), ending with the reward token."""
        # A prompt must not smuggle in special tokens that would break the image-token count or the read-out.
        for token in (self.reward_token, IMAGE_TOKEN, "<|vision_start|>", "<|vision_end|>"):
            prompt = prompt.replace(token, "")
        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": prompt + self.reward_token}]}]
        text = self.tokenizer.apply_chat_template(messages, chat_template=self.chat_template, tokenize=False,
                                                  add_generation_prompt=False)
        return text[: text.rindex(self.reward_token) + len(self.reward_token)]

    def __call__(self, prompts: Sequence[str], images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
        vision = self.image_processor(images=[image.convert("RGB") for image in images], size=self.size,
                                      return_tensors="pt")
        grid = vision["image_grid_thw"]
        texts = []
        for prompt, thw in zip(prompts, grid, strict=True):
            tokens = int(thw.prod()) // self.merge**2  # patches merged 2x2 into one language-model token
            texts.append(self.text(prompt).replace(IMAGE_TOKEN, IMAGE_TOKEN * tokens, 1))
        encoded = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        input_ids = encoded["input_ids"]
        return {
            "input_ids": input_ids,
            "attention_mask": encoded["attention_mask"],
            "pixel_values": vision["pixel_values"],
            "image_grid_thw": grid,
            # Text 0, image 1: Qwen's 3-D rotary positions are computed from it.
            "mm_token_type_ids": (input_ids == self.image_token_id).int(),
        }


class RewardHead(nn.Module):
    def __init__(self, hidden_size: int, width: int = 16, dropout: float = 0.05):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, width), nn.ReLU(), nn.Linear(width, 2))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden)


class SpatialScore(nn.Module):
    def __init__(self, backbone: nn.Module, tokenizer, image_processor, config: ModelConfig, *,
                 chat_template: str | None = None):
        """`backbone` is the bare vision-language model (Qwen2_5_VLModel or Qwen2VLModel: `.visual` and
        `.language_model`); `from_pretrained` loads one from a folder."""
        super().__init__()
        self.config = config
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"

        # The reward token: a new special token whose embedding row is the only one trained.
        known = len(tokenizer)
        tokenizer.add_tokens([AddedToken(config.reward_token, special=True, normalized=False)], special_tokens=True)
        self.reward_token_id = tokenizer.convert_tokens_to_ids(config.reward_token)
        embed = backbone.get_input_embeddings()
        if self.reward_token_id >= embed.num_embeddings:
            # Real Qwen checkpoints have spare rows (152064 rows for 151665 tokens) and need no resize.
            backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            embed = backbone.get_input_embeddings()
        embed.weight.requires_grad_(False)
        with torch.no_grad():  # starts as the mean of the known tokens' rows: no RNG, the same on every rank
            start = embed.weight[: min(known, embed.num_embeddings)].float().mean(0)
        self.reward_embedding = nn.Parameter(start.clone())
        self._hook = embed.register_forward_hook(self._merge_reward_row)

        # LoRA on the language model only (the vision tower has layers of the same names and stays frozen).
        self.lora_config = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                                      lora_dropout=config.lora_dropout, target_modules=list(config.lora_targets))
        inject_adapter_in_model(self.lora_config, self.language_model)
        for name, param in self.language_model.named_parameters():
            if "lora_" in name:
                # float32 master weights: at lr 2e-6 most bf16 updates would round away.
                param.data = param.data.float()
                param.requires_grad_(True)
        if config.train_vision:
            # Opt-in, for tiny random backbones: the whole vision tower trains too (float32 master weights).
            self.backbone.visual.float().requires_grad_(True)

        hidden = backbone.config.text_config.hidden_size
        self.head = RewardHead(hidden, config.head_hidden, config.head_dropout).to(embed.weight.device)
        self.inputs = InputBuilder(tokenizer, image_processor, reward_token=config.reward_token,
                                   chat_template=chat_template, min_pixels=config.min_pixels,
                                   max_pixels=config.max_pixels)

    # --- Loading -------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, folder: str | Path | None = None, config: ModelConfig | None = None, *,
                        device: str | torch.device = "cpu") -> SpatialScore:
        """Loads the backbone from a local folder (a Qwen2.5-VL or Qwen2-VL download) and adds the new parts
        (their weights drawn from torch's global RNG: seed it first for reproducible runs)."""
        from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoTokenizer

        config = config or ModelConfig(backbone=str(folder))
        folder = Path(folder or config.backbone).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"backbone {str(folder)!r} is not a model folder (no config.json)")
        model_type = AutoConfig.from_pretrained(folder).model_type
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"backbone {folder} is a {model_type!r} model; SpatialScore supports "
                             f"{', '.join(SUPPORTED_MODEL_TYPES)}")
        device = torch.device(device)
        dtype = resolve_dtype(config.dtype, device)
        with _quiet_transformers():
            backbone = AutoModel.from_pretrained(folder, dtype=dtype,
                                                 device_map={"": device} if device.type == "cuda" else None)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        image_processor = AutoImageProcessor.from_pretrained(folder)
        model = cls(backbone, tokenizer, image_processor, config, chat_template=_chat_template(folder, tokenizer))
        return model.to(device)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, *, backbone: str | Path | None = None,
                        device: str | torch.device = "cpu") -> SpatialScore:
        """A trained reward model: the backbone folder named in the checkpoint (or `backbone`) plus the checkpoint's
        LoRA, head and reward-token row."""
        checkpoint = Path(checkpoint)
        meta = json.loads((checkpoint / CONFIG_NAME).read_text())
        config = from_dict(ModelConfig, meta["model"])
        if backbone is not None:
            config.backbone = str(backbone)
        with torch.random.fork_rng():  # the new parts' random init is overwritten; leave the caller's RNG alone
            model = cls.from_pretrained(config.backbone, config, device=device)
        model.load_trainable_state_dict(load_file(checkpoint / WEIGHTS_NAME))
        return model

    # --- The parts -----------------------------------------------------------------------------------------

    @property
    def language_model(self) -> nn.Module:
        return self.backbone.language_model

    @property
    def device(self) -> torch.device:
        return self.reward_embedding.device

    def _merge_reward_row(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        is_reward = (args[0] == self.reward_token_id).unsqueeze(-1)
        return torch.where(is_reward, self.reward_embedding.to(output.dtype), output)

    def input_embedding_matrix(self) -> torch.Tensor:
        """The embedding matrix as the model uses it: the frozen matrix with the trained reward-token row (a copy)."""
        weight = self.backbone.get_input_embeddings().weight.detach().clone()
        weight[self.reward_token_id] = self.reward_embedding.detach().to(weight.dtype)
        return weight

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(name, param) for name, param in self.named_parameters() if param.requires_grad]

    def enable_gradient_checkpointing(self) -> None:
        # Non-reentrant: works with frozen inputs and with DDP, and needs no enable_input_require_grads.
        kwargs = {"use_reentrant": False}
        if hasattr(self.backbone, "activation_checkpointing_enable"):  # transformers >= 5.2x; the old name warns
            self.backbone.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        # Enabling it also hooks every sub-model's input embeddings to make their outputs require grad, the vision
        # tower's patch embedding included: autograd would then run a backward pass through the whole frozen vision
        # tower (measured on an H200 with the 7B: 4.3 s per step instead of 1.5 s). Nothing needs those hooks here:
        # the reward-token row already makes the text embeddings require grad, and the checkpointing is
        # non-reentrant.
        self.backbone.disable_input_require_grads()

    # --- Forward -------------------------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                image_grid_thw: torch.Tensor, mm_token_type_ids: torch.Tensor | None = None) -> RewardOutput:
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                            image_grid_thw=image_grid_thw, mm_token_type_ids=mm_token_type_ids, use_cache=False)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        hidden = out.last_hidden_state[rows, self.reward_positions(input_ids)]
        with torch.autocast(hidden.device.type, enabled=False):  # the head runs in float32
            raw = self.head(hidden.float())
        return RewardOutput(mu=raw[:, 0], log_sigma=raw[:, 1])

    def reward_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Index of the last reward token in each row (right padding puts it anywhere)."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        found = torch.where(input_ids == self.reward_token_id, positions, -1).amax(dim=1)
        if bool((found < 0).any()):
            raise ValueError("an input row holds no reward token (build inputs with model.inputs)")
        return found

    @torch.no_grad()
    def predict(self, prompts: Sequence[str], images: Sequence[Image.Image], *,
                batch_size: int = 16) -> RewardOutput:
        """mu and log sigma for each (prompt, image), batched, in eval mode (no dropout); float32 CPU tensors."""
        if len(prompts) != len(images):
            raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
        was_training = self.training
        self.eval()
        try:
            mus, log_sigmas = [], []
            for start in range(0, len(prompts), batch_size):
                batch = self.inputs(prompts[start:start + batch_size], images[start:start + batch_size])
                with autocast(self.device):
                    out = self(**to_device(batch, self.device))
                mus.append(out.mu.float().cpu())
                log_sigmas.append(out.log_sigma.float().cpu())
            if not mus:
                return RewardOutput(torch.empty(0), torch.empty(0))
            return RewardOutput(torch.cat(mus), torch.cat(log_sigmas))
        finally:
            self.train(was_training)

    def score(self, prompts: Sequence[str], images: Sequence[Image.Image], *, batch_size: int = 16) -> torch.Tensor:
        """mu for each (prompt, image): the score (see `predict` for sigma too)."""
        return self.predict(prompts, images, batch_size=batch_size).mu

    # --- Saving --------------------------------------------------------------------------------------------

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """LoRA (peft's keys, prefixed 'lora.'), head ('head.'), the reward-token row and, with train_vision, the
        vision tower ('vision.'), on CPU."""
        state = {f"lora.{key}": value for key, value in get_peft_model_state_dict(self.language_model).items()}
        state.update({f"head.{key}": value for key, value in self.head.state_dict().items()})
        state["reward_token.embedding"] = self.reward_embedding
        if self.config.train_vision:
            state.update({f"vision.{key}": value for key, value in self.backbone.visual.state_dict().items()})
        return {key: value.detach().to("cpu", copy=True).contiguous() for key, value in state.items()}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        lora = {key[len("lora."):]: value for key, value in state.items() if key.startswith("lora.")}
        head = {key[len("head."):]: value for key, value in state.items() if key.startswith("head.")}
        expected = {key: value.shape for key, value in get_peft_model_state_dict(self.language_model).items()}
        if {key: value.shape for key, value in lora.items()} != expected:
            raise ValueError(f"LoRA weights do not match this model's adapters ({len(lora)} tensors for "
                             f"{len(expected)}, or other shapes): another lora_rank or lora_targets?")
        result = set_peft_model_state_dict(self.language_model, lora)
        if result.unexpected_keys:
            raise ValueError(f"unexpected LoRA weights: {result.unexpected_keys[:5]}")
        self.head.load_state_dict(head)
        if self.config.train_vision:
            self.backbone.visual.load_state_dict(
                {key[len("vision."):]: value for key, value in state.items() if key.startswith("vision.")})
        with torch.no_grad():
            self.reward_embedding.copy_(state["reward_token.embedding"])

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """The trained parts (safetensors) and the settings needed to rebuild the model (JSON)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state_dict(), folder / WEIGHTS_NAME,
                  metadata={"format": "spatialscore", "reward_token": self.config.reward_token})
        meta = {"model": to_dict(self.config), "model_type": self.backbone.config.model_type,
                "hidden_size": self.backbone.config.text_config.hidden_size,
                "reward_token_id": self.reward_token_id, **(extra or {})}
        (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=1, sort_keys=True))
        return folder


def _chat_template(folder: Path, tokenizer) -> str | None:
    if tokenizer.chat_template:
        return tokenizer.chat_template
    # Older downloads keep the template with the processor only.
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text()
    if (folder / "chat_template.json").is_file():
        return json.loads((folder / "chat_template.json").read_text())["chat_template"]
    return None


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}

