"""The paper's defaults of SpatialScore's settings, copied from ml.reward.config (ModelConfig, TrainConfig).

ml.reward.config is pure Python, but the layer rule (tests/test_layers.py) lets platform/ import only the listed
pure parts of ml/, so the web process keeps this copy; tests/test_rewards.py fails when it drifts from the
dataclasses. The fields the platform fills itself (backbone, data, output_dir, resume) are left out."""

MODEL_DEFAULTS: dict = {
    "lora_rank": 64, "lora_alpha": 128.0, "lora_dropout": 0.05,
    "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "reward_token": "<|reward|>", "head_hidden": 16, "head_dropout": 0.05, "min_pixels": 56 * 56,
    "max_pixels": 448 * 448, "dtype": "auto", "train_vision": False,
}

TRAIN_DEFAULTS: dict = {
    "train_split": "train", "eval_split": "validation", "loss": "bt", "mc_samples": 64, "mismatch_weight": 0.0,
    "lr": 2e-6, "weight_decay": 0.0, "warmup_steps": 50, "schedule": "cosine", "min_lr_ratio": 0.0, "batch_size": 4,
    "grad_accum": 1, "max_grad_norm": 1.0, "bf16": True, "gradient_checkpointing": False, "eval_every": 200,
    "eval_batch_size": 8, "max_eval_pairs": 0, "save_every": 200, "keep_last": 3, "log_every": 10, "seed": 0,
    "max_steps": 0, "max_seconds": 0.0, "epochs": 1.0, "num_workers": 0, "device": "auto",
}

CHOICES: dict[str, tuple[str, ...]] = {
    "dtype": ("auto", "bfloat16", "float16", "float32"), "loss": ("bt", "uncertainty"),
    "schedule": ("cosine", "constant"), "device": ("auto", "cpu", "cuda"),
    "train_split": ("", "train", "validation", "test"), "eval_split": ("", "train", "validation", "test"),
}
