"""The paper's defaults of Flow-GRPO's settings, copied from ml.grpo.config.GRPOConfig.

ml.grpo.config is pure Python, but the layer rule (tests/test_layers.py) lets platform/ import only the listed
pure parts of ml/, so the web process keeps this copy; tests/test_grpo_runs.py fails when it drifts from the
dataclass. The fields the platform fills itself (MANAGED) are left out."""

# Filled from the run: the generator's pipeline folder, the run's folder, the prompt files written from the prompt
# sets, the reward (a checkpoint or a programmatic name) and resume (decided by the job).
MANAGED = ("pretrained", "output_dir", "prompts", "eval_prompts", "reward", "reward_model", "resume")

DEFAULTS: dict = {
    "reward_batch_size": 16, "group_size": 24, "top_k": 6, "stats": "kept", "prompts_per_step": 8,
    "sample_steps": 6, "eval_steps": 28, "noise_level": 0.7, "timestep_fraction": 1.0, "height": 512, "width": 512,
    "guidance": 3.5, "cfg_scale": 1.0, "negative_prompt": "", "max_sequence_length": 512, "sample_batch_size": 8,
    "lr": 3e-4, "weight_decay": 1e-4, "adam_beta1": 0.9, "adam_beta2": 0.999, "max_grad_norm": 1.0,
    "clip_range": 1e-4, "beta": 0.01, "adv_clip": 5.0, "std_eps": 1e-4, "updates_per_step": 2,
    "train_batch_size": 4, "ema_decay": 0.0, "lora_rank": 32, "lora_alpha": 64.0,
    "lora_targets": ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"],
    "lora_init": "default", "max_steps": 1000, "eval_every": 50, "eval_seeds": 2, "eval_seed_base": 1_000_000,
    "save_eval_images": True, "save_every": 50, "keep_last": 3, "log_every": 1, "seed": 0, "device": "auto",
    "dtype": "auto",
}

CHOICES: dict[str, tuple[str, ...]] = {
    "stats": ("kept", "group"), "lora_init": ("default", "random"),
    "dtype": ("auto", "bfloat16", "float16", "float32"), "device": ("auto", "cpu", "cuda"),
}

# The rewards registered in ml.grpo.rewards that need no checkpoint ("spatialscore" is chosen by picking a reward
# checkpoint instead).
PROGRAMMATIC_REWARDS: tuple[str, ...] = ("brightness-left-right", "brightness")
SPATIALSCORE = "spatialscore"
