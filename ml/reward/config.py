"""Settings of the SpatialScore reward model and of its training, as dataclasses whose fields carry their help
text (TRL style): the CLIs build their flags from these (`add_arguments` / `from_arguments`), and a checkpoint
stores them as JSON. Pure Python: the web process may import this module to validate a job's settings."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LOSSES = ("bt", "uncertainty")
SCHEDULES = ("cosine", "constant")


@dataclass
class ModelConfig:
    backbone: str = field(default="", metadata={
        "help": "Local folder of the vision-language backbone (a Qwen2.5-VL or Qwen2-VL download, e.g. "
                "Qwen2.5-VL-7B-Instruct, as written by save_pretrained). Nothing is downloaded."})
    lora_rank: int = field(default=64, metadata={
        "help": "LoRA rank on the language model's linear layers (the paper trains the 7B backbone with LoRA; it "
                "does not give the rank)."})
    lora_alpha: float = field(default=128.0, metadata={"help": "LoRA alpha; the adapter's scale is alpha / rank."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS), metadata={
        "help": "Module names in the language model that get LoRA (attention and MLP projections). The vision tower "
                "stays frozen and gets none, although its MLP has layers of the same names."})
    reward_token: str = field(default="<|reward|>", metadata={
        "help": "The special token appended after the prompt; the head reads the last layer's hidden state there. "
                "Its embedding row is the only embedding row that is trained."})
    head_hidden: int = field(default=16, metadata={
        "help": "Hidden width of the MLP head Dropout-Linear(hidden, 16)-ReLU-Linear(16, 2) (paper: 16)."})
    head_dropout: float = field(default=0.05, metadata={"help": "Dropout before the head's first layer (paper: 0.05)."})
    min_pixels: int = field(default=56 * 56, metadata={
        "help": "Smallest image area the image processor resizes to (pixels); Qwen's default is 56x56."})
    max_pixels: int = field(default=448 * 448, metadata={
        "help": "Largest image area the image processor resizes to (pixels); 448x448 gives 256 visual tokens per "
                "image on Qwen2.5-VL (14 px patches merged 2x2)."})
    dtype: str = field(default="auto", metadata={
        "choices": ("auto", "bfloat16", "float16", "float32"),
        "help": "Backbone weight dtype: auto (bfloat16 on CUDA, float32 on CPU), bfloat16, float16 or float32. "
                "The trainable parts (LoRA, head, reward-token row) are always kept in float32."})
    train_vision: bool = field(default=False, metadata={
        "help": "Also train the whole vision tower (patch embedding, blocks, merger), in float32. Off in the method "
                "(the backbone stays frozen); meant for tiny random backbones, whose frozen random vision features "
                "carry too little for the CPU learning benchmark (benchmarks/reward_learning.py)."})

    def __post_init__(self):
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be auto, bfloat16, float16 or float32, not {self.dtype!r}")
        if self.lora_rank < 1 or self.head_hidden < 1:
            raise ValueError("lora_rank and head_hidden must be positive")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError("need 0 < min_pixels <= max_pixels")


@dataclass
class TrainConfig:
    data: str = field(default="", metadata={
        "help": "A dataset export in the platform's Parquet format (one file holding all splits, or a split's file)."})
    output_dir: str = field(default="", metadata={"help": "Where checkpoints (checkpoints/step-NNNNNNNN) are written."})
    train_split: str = field(default="train", metadata={"help": "Split trained on ('' for every row)."})
    eval_split: str = field(default="validation", metadata={
        "help": "Split evaluated every eval_every steps ('' to skip evaluation)."})
    loss: str = field(default="bt", metadata={
        "choices": LOSSES,
        "help": "bt: Bradley-Terry, -log sigmoid(mu_w - mu_l) (the paper). uncertainty: HPSv3's Gaussian loss, "
                "E[-log sigmoid(z)] with z ~ N(mu_w - mu_l, sigma_w^2 + sigma_l^2), by Monte-Carlo."})
    mc_samples: int = field(default=64, metadata={"help": "Monte-Carlo samples per pair for the uncertainty loss."})
    mismatch_weight: float = field(default=0.0, metadata={
        "help": "Weight of an auxiliary in-batch term (not in the paper; 0 turns it off): under each pair's prompt, "
                "its winner image must score above the next pair's winner image (Bradley-Terry on mu). It asks whether "
                "the named things are in the picture at all, a question the gradient can start on at once, before "
                "the score can compare where they are. Costs a third sequence per pair."})
    lr: float = field(default=2e-6, metadata={
        "help": "Peak learning rate. The paper's 2e-6 is for the 7B backbone at batch 32; the tiny random backbones "
                "of the tests and the CPU demo need about 1e-3 to learn anything in a few hundred steps."})
    weight_decay: float = field(default=0.0, metadata={
        "help": "AdamW weight decay, applied to matrices only (LoRA A/B, head weights), never to biases or the "
                "reward-token row."})
    warmup_steps: int = field(default=50, metadata={"help": "Linear warm-up from 0 to lr over this many steps."})
    schedule: str = field(default="cosine", metadata={
        "choices": SCHEDULES,
        "help": "After warm-up: cosine (decays to min_lr_ratio * lr at the last step) or constant."})
    min_lr_ratio: float = field(default=0.0, metadata={"help": "Floor of the cosine schedule, as a fraction of lr."})
    batch_size: int = field(default=4, metadata={
        "help": "Preference pairs per process per micro-step (each pair is two sequences: winner and loser). The "
                "paper's batch of 32 is 4 pairs x 8 GPUs."})
    grad_accum: int = field(default=1, metadata={"help": "Micro-steps accumulated into one optimizer step."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 turns clipping off)."})
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast on CUDA (never on CPU)."})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "Recompute the language model's activations in the backward pass (needed for the 7B at batch 8)."})
    eval_every: int = field(default=200, metadata={"help": "Evaluate every N optimizer steps (0: only at the end)."})
    eval_batch_size: int = field(default=8, metadata={"help": "Pairs per evaluation forward pass."})
    max_eval_pairs: int = field(default=0, metadata={"help": "Evaluate on at most this many pairs (0: all)."})
    save_every: int = field(default=200, metadata={
        "help": "Write a checkpoint every N optimizer steps (and at the end)."})
    keep_last: int = field(default=3, metadata={"help": "Checkpoints kept; older ones are pruned after a new one is "
                                                        "complete."})
    log_every: int = field(default=10, metadata={"help": "Report training metrics every N optimizer steps."})
    seed: int = field(default=0, metadata={"help": "Seeds the weights of the new parts, the data order and dropout."})
    max_steps: int = field(default=0, metadata={"help": "Optimizer steps to train (0: epochs decide)."})
    max_seconds: float = field(default=0.0, metadata={
        "help": "Stop after the step during which the training loop's wall-clock time (evaluations included) "
                "reaches this many seconds, then evaluate and save as at the last step (0: no time limit). The "
                "schedule still spans max_steps / epochs."})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the training split, when max_steps is 0."})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes decoding images."})
    device: str = field(default="auto", metadata={
        "help": "auto (the local CUDA device if any, else CPU), cpu or cuda."})
    resume: bool = field(default=False, metadata={
        "help": "Continue from the last complete checkpoint in output_dir (a fresh start if there is none)."})

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.mismatch_weight < 0:
            raise ValueError("mismatch_weight must be >= 0")
        if self.batch_size < 1 or self.grad_accum < 1 or self.mc_samples < 1:
            raise ValueError("batch_size, grad_accum and mc_samples must be positive")
        if self.keep_last < 1:
            raise ValueError("keep_last must be at least 1")


# --- Flags from the dataclasses -------------------------------------------------------------------------------


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """One flag per field of the dataclass `cls`, with the field's help text and default."""
    group = parser.add_argument_group(title or cls.__name__)
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        help_text = f"{item.metadata.get('help', '')} (default: {default!r})"
        if kind is bool:
            group.add_argument(_flag(item.name), action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif typing.get_origin(kind) is list:
            group.add_argument(_flag(item.name), nargs="+", type=typing.get_args(kind)[0], default=default,
                               help=help_text)
        else:
            if isinstance(kind, types.UnionType):
                kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
            group.add_argument(_flag(item.name), type=kind, default=default, help=help_text,
                               choices=item.metadata.get("choices"))


def from_arguments(cls: type, namespace: argparse.Namespace) -> Any:
    return cls(**{item.name: getattr(namespace, item.name) for item in dataclasses.fields(cls)})


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def from_dict(cls: type, values: dict) -> Any:
    """The dataclass from a dict, ignoring keys it does not know (a checkpoint written by a newer version)."""
    names = {item.name for item in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in values.items() if key in names})


def to_arguments(config: Any) -> list[str]:
    """The command-line flags that `from_arguments` turns back into `config` (for launching the CLI, e.g. under
    torchrun)."""
    flags: list[str] = []
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, bool):
            flags.append(_flag(item.name) if value else "--no-" + item.name.replace("_", "-"))
        elif isinstance(value, list):
            if value:  # nargs="+" needs at least one value; an empty list keeps the default
                flags += [_flag(item.name), *map(str, value)]
        elif value is not None:
            flags += [_flag(item.name), repr(value) if isinstance(value, float) else str(value)]
    return flags
