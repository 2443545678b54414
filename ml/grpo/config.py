"""Settings of a Flow-GRPO run, as a dataclass whose fields carry their help text (TRL style). The CLI builds its
flags from it with the reward model's helpers (`ml.reward.config.add_arguments` / `from_arguments`), and each
checkpoint stores it as a dict. Pure Python: the web process may import this module to validate a job's settings.

Defaults are the paper's where it gives them (FLUX.1-dev, LoRA rank 32, lr 3e-4, clip range 1e-4, KL coefficient
0.01, G = 24, top-k 6, 6 denoising steps in training, 28 in evaluation) and Flow-GRPO's otherwise (noise level 0.7,
advantages clipped to +-5, std epsilon 1e-4, LoRA alpha 64, two optimizer steps per batch of samples)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.reward.config import add_arguments, from_arguments, from_dict, to_arguments, to_dict

__all__ = ["GRPOConfig", "LORA_TARGETS", "STATS", "add_arguments", "from_arguments", "from_dict", "to_arguments",
           "to_dict"]

# Flow-GRPO's Flux targets: the attention projections of the double-stream blocks (image and text sides) and of the
# single-stream blocks (which have no to_out). SD3's joint blocks use the same names.
LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
STATS = ("kept", "group")


@dataclass
class GRPOConfig:
    # --- What is trained, on what ---------------------------------------------------------------------------------
    pretrained: str = field(default="", metadata={
        "help": "Local folder of a diffusers flow-matching text-to-image pipeline (FLUX.1-dev or another Flux; SD3 / "
                "SD3.5), as written by save_pretrained. Nothing is downloaded."})
    output_dir: str = field(default="", metadata={
        "help": "Where checkpoints (checkpoints/step-NNNNNNNN) and evaluation images (eval/step-NNNNNNNN) go."})
    prompts: str = field(default="", metadata={
        "help": "Training prompts: a text file with one prompt per line, or a .jsonl file with a 'prompt' field."})
    eval_prompts: str = field(default="", metadata={
        "help": "Held-out prompts for evaluation, same format ('' to skip evaluation)."})
    reward: str = field(default="spatialscore", metadata={
        "help": "Reward function by registered name (ml.grpo.rewards): spatialscore (the reward model's mu; needs "
                "--reward-model), brightness-left-right (mean brightness of the left half minus the right half, a "
                "programmatic reward for tests), brightness."})
    reward_model: str = field(default="", metadata={
        "help": "A SpatialScore checkpoint folder (ml.reward checkpoints/step-*), for reward=spatialscore."})
    reward_batch_size: int = field(default=16, metadata={"help": "Images per reward-model forward pass."})
    # --- Sampling -------------------------------------------------------------------------------------------------
    group_size: int = field(default=24, metadata={
        "help": "G: images sampled and scored per prompt (paper: 24)."})
    top_k: int = field(default=6, metadata={
        "help": "Keep the k best and the k worst images of each group for advantages and gradients (paper: 6 of 24); "
                "k = G/2 (or 0) keeps all, i.e. no filtering."})
    stats: str = field(default="kept", metadata={
        "choices": STATS,
        "help": "Where the advantage's mean and std come from: the kept samples (kept) or the whole group of G "
                "(group). The paper leaves this open."})
    prompts_per_step: int = field(default=8, metadata={
        "help": "Prompts (groups) per GRPO step over all processes; must divide by the number of processes (the "
                "paper does not give it)."})
    sample_steps: int = field(default=6, metadata={
        "help": "Denoising steps when sampling for training (paper, FLUX.1-dev: 6)."})
    eval_steps: int = field(default=28, metadata={
        "help": "Denoising steps of the deterministic ODE sampling in evaluation (paper: 28)."})
    noise_level: float = field(default=0.7, metadata={
        "help": "a in sigma_t = a sqrt(t / (1 - t)): the SDE's noise level when sampling for training (Flow-GRPO: "
                "about 0.7-0.9). Must be positive: at 0 (the ODE, which evaluation uses) no step has a density."})
    timestep_fraction: float = field(default=1.0, metadata={
        "help": "Share of the sample_steps denoising steps trained on per sample (a seeded random subset per sample); "
                "1.0 trains all of them (6 of 6 in the paper's accounting)."})
    height: int = field(default=512, metadata={"help": "Image height in pixels."})
    width: int = field(default=512, metadata={"help": "Image width in pixels."})
    guidance: float = field(default=3.5, metadata={
        "help": "Distilled guidance fed to the transformer's guidance embedding (FLUX.1-dev: 3.5); ignored by models "
                "without one."})
    cfg_scale: float = field(default=1.0, metadata={
        "help": "True classifier-free guidance scale (1 is off). Above 1 each evaluation also runs the negative "
                "prompt, which doubles the function evaluations (SD3 / SD3.5 want about 4.5)."})
    negative_prompt: str = field(default="", metadata={"help": "The unconditional prompt of classifier-free guidance."})
    max_sequence_length: int = field(default=512, metadata={
        "help": "T5 tokens per prompt (FLUX.1-dev: 512; SD3: 256). Longer prompts are cut."})
    sample_batch_size: int = field(default=8, metadata={"help": "Images per transformer forward pass when sampling."})
    # --- Loss and optimisation ------------------------------------------------------------------------------------
    lr: float = field(default=3e-4, metadata={"help": "AdamW learning rate of the LoRA weights (paper: 3e-4)."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay (Flow-GRPO: 1e-4)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 turns clipping off)."})
    clip_range: float = field(default=1e-4, metadata={
        "help": "epsilon of the clipped probability ratio, clip(ratio, 1 - eps, 1 + eps) (paper: 1e-4)."})
    beta: float = field(default=0.01, metadata={
        "help": "KL coefficient: loss += beta * KL(policy || reference), the reference being the transformer with "
                "the LoRA adapter switched off (paper: 0.01; 0 skips the reference passes)."})
    adv_clip: float = field(default=5.0, metadata={"help": "Advantages are clipped to +-adv_clip (Flow-GRPO: 5)."})
    std_eps: float = field(default=1e-4, metadata={"help": "advantage = (r - mean) / (std + std_eps)."})
    updates_per_step: int = field(default=2, metadata={
        "help": "Optimizer steps per GRPO step: the kept samples are split into this many chunks, each one "
                "optimizer step accumulating the gradients of all its samples and trained timesteps (Flow-GRPO: 2). "
                "From the second on the samples are off-policy and the ratio clip acts."})
    train_batch_size: int = field(default=4, metadata={
        "help": "Samples per transformer forward/backward pass in training (gradients accumulate over them)."})
    ema_decay: float = field(default=0.0, metadata={
        "help": "Exponential moving average of the LoRA weights, used for evaluation and saved beside them (0: off)."})
    lora_rank: int = field(default=32, metadata={"help": "LoRA rank on the transformer (paper: 32)."})
    lora_alpha: float = field(default=64.0, metadata={"help": "LoRA alpha; the adapter's scale is alpha / rank."})
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS), metadata={
        "help": "Module names in the transformer that get LoRA (attention projections)."})
    lora_init: str = field(default="default", metadata={
        "choices": ("default", "random"),
        "help": "LoRA initialisation: default (B = 0: the first policy is the reference) or random (B random too, "
                "for tests)."})
    # --- The run --------------------------------------------------------------------------------------------------
    max_steps: int = field(default=1000, metadata={"help": "GRPO steps (one batch of groups sampled per step)."})
    eval_every: int = field(default=50, metadata={
        "help": "Evaluate every N steps, at step 0 (the base model) and at the end (0: only at the end)."})
    eval_seeds: int = field(default=2, metadata={
        "help": "Images per evaluation prompt, with the fixed seeds seed_base, seed_base + 1, ... (the same for "
                "every evaluation, so galleries compare base and current for the same noise)."})
    eval_seed_base: int = field(default=1_000_000, metadata={"help": "First evaluation seed."})
    save_eval_images: bool = field(default=True, metadata={
        "help": "Write each evaluation's images as PNG under output_dir/eval/step-NNNNNNNN/."})
    save_every: int = field(default=50, metadata={"help": "Write a checkpoint every N steps (and at the end)."})
    keep_last: int = field(default=3, metadata={
        "help": "Checkpoints kept; older ones are pruned after a new one is complete."})
    log_every: int = field(default=1, metadata={"help": "Report training metrics every N steps."})
    seed: int = field(default=0, metadata={
        "help": "Seeds the LoRA initialisation, the prompt order, every sample's noise and the trained timesteps."})
    device: str = field(default="auto", metadata={
        "help": "auto (the local CUDA device if any, else CPU), cpu or cuda."})
    dtype: str = field(default="auto", metadata={
        "choices": ("auto", "bfloat16", "float16", "float32"),
        "help": "Weight dtype of the frozen pipeline: auto is bfloat16 on CUDA and float32 on CPU. LoRA weights, "
                "latents and log-probabilities are always float32."})
    resume: bool = field(default=False, metadata={
        "help": "Continue from the last complete checkpoint in output_dir (a fresh start if there is none)."})

    def __post_init__(self):
        if self.stats not in STATS:
            raise ValueError(f"stats must be one of {', '.join(STATS)}, not {self.stats!r}")
        if self.group_size < 1 or self.prompts_per_step < 1 or self.sample_steps < 1 or self.eval_steps < 1:
            raise ValueError("group_size, prompts_per_step, sample_steps and eval_steps must be positive")
        if not 0 <= self.top_k <= self.group_size:
            raise ValueError("top_k must be between 0 and group_size")
        if not 0 < self.timestep_fraction <= 1:
            raise ValueError("timestep_fraction must be in (0, 1]")
        if self.noise_level <= 0:
            raise ValueError("noise_level must be positive (training needs the SDE's log-probabilities)")
        if self.beta < 0 or self.clip_range < 0:
            raise ValueError("beta and clip_range must not be negative")
        if self.updates_per_step < 1 or self.train_batch_size < 1 or self.sample_batch_size < 1:
            raise ValueError("updates_per_step, train_batch_size and sample_batch_size must be positive")
        if self.keep_last < 1:
            raise ValueError("keep_last must be at least 1")
        if self.height % 16 or self.width % 16:
            raise ValueError("height and width must be multiples of 16")

    @property
    def kept_per_group(self) -> int:
        """Samples per group that get training passes: 2k, or all G without filtering."""
        return 2 * self.top_k if 0 < self.top_k < self.group_size / 2 else self.group_size

    @property
    def train_timesteps(self) -> int:
        """Denoising steps trained on per kept sample."""
        return max(1, int(round(self.sample_steps * self.timestep_fraction)))
