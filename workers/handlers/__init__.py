"""One handler per job kind (spatiallab.jobs.kinds.JOB_KINDS). A handler takes a JobContext and returns the
job's result as a JSON-able dict. Handlers for GPU kinds import torch inside the function, never at module
level, so the web process and CPU workers never load it."""

from workers.handlers.datasets import run_build_dataset, run_export_dataset
from workers.handlers.demo import run_demo_primes
from workers.handlers.generate import run_generate_pairs
from workers.handlers.grpo import run_train_grpo
from workers.handlers.perturb import run_perturb_prompt_set
from workers.handlers.rewards import run_evaluate_reward, run_score_pairs, run_train_reward
from workers.handlers.scoring import run_score_images
from workers.handlers.verification import run_build_queue

HANDLERS = {
    "demo_primes": run_demo_primes,
    "perturb_prompt_set": run_perturb_prompt_set,
    "generate_pairs": run_generate_pairs,
    "build_queue": run_build_queue,
    "build_dataset": run_build_dataset,
    "export_dataset": run_export_dataset,
    "train_reward": run_train_reward,
    "evaluate_reward": run_evaluate_reward,
    "score_pairs": run_score_pairs,
    "score_images": run_score_images,
    "train_grpo": run_train_grpo,
}
