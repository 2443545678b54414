"""The training loop on a tiny random Qwen2.5-VL and a synthetic colour-matching pair export: crash and resume
repeat the uninterrupted run exactly, checkpoints are atomic and pruned, a short run learns, DDP over two CPU
processes (gloo, torchrun) agrees with one process, and the CLIs and the --tiny GPU benchmark run."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from ml.reward import train as train_module  # noqa: E402
from ml.reward.config import ModelConfig, TrainConfig  # noqa: E402
from ml.reward.evaluate import evaluate_checkpoint  # noqa: E402
from ml.reward.tiny import build_tiny_backbone  # noqa: E402
from ml.reward.train import checkpoint_dirs, latest_checkpoint, train  # noqa: E402
from tests.ml.reward_data import COLOURS, colour_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PX = 112  # 16 visual tokens per image


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("backbone"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return colour_dataset(tmp_path_factory.mktemp("data") / "pairs.parquet", train=32, validation=16, test=8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Two shared cores: one thread per process is as fast here and steadier when other jobs run.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model_config(backbone: Path, **overrides) -> ModelConfig:
    return ModelConfig(**{"backbone": str(backbone), "lora_rank": 8, "lora_alpha": 16.0, "min_pixels": PX * PX,
                          "max_pixels": PX * PX, **overrides})


def train_config(data: Path, out: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{"data": str(data), "output_dir": str(out), "lr": 3e-3, "warmup_steps": 2, "batch_size": 4,
                          "max_steps": 6, "eval_every": 3, "save_every": 0, "log_every": 1, "eval_batch_size": 8,
                          **overrides})


def numbers(history: list[dict]) -> list[tuple]:
    return [(h["step"], h["loss"], h["accuracy"], h["grad_norm"], h["lr"]) for h in history]


class Crash(Exception):
    pass


def test_a_run_resumed_after_a_crash_repeats_the_uninterrupted_run(backbone, data, tmp_path, monkeypatch):
    # Dropout on, the Monte-Carlo loss and gradient accumulation: every source of randomness and state is in play.
    settings = {"loss": "uncertainty", "mc_samples": 8, "grad_accum": 2, "save_every": 2, "keep_last": 1}
    full_events = []
    full = train(model_config(backbone), train_config(data, tmp_path / "full", **settings),
                 on_metrics=full_events.append)
    assert [h["step"] for h in full["history"]] == [1, 2, 3, 4, 5, 6]

    # The second run dies while writing its step-4 checkpoint: step 2's must survive, although keep_last is 1.
    real_save = torch.save

    def dying_save(obj, path, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == 4:
            raise Crash("killed while writing the checkpoint")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(train_module.torch, "save", dying_save)
    crashed_config = train_config(data, tmp_path / "crashed", **settings)
    with pytest.raises(Crash):
        train(model_config(backbone), crashed_config)
    monkeypatch.setattr(train_module.torch, "save", real_save)
    root = tmp_path / "crashed" / "checkpoints"
    assert [p.name for p in checkpoint_dirs(root)] == ["step-00000002"]
    assert [p.name for p in root.glob(".tmp-*")] != []  # the partial one, ignored by resume
    assert latest_checkpoint(root).name == "step-00000002"

    events = []
    resumed = train(model_config(backbone), dataclasses.replace(crashed_config, resume=True),
                    on_metrics=events.append)
    assert events[0]["kind"] == "resumed" and events[0]["step"] == 2
    # Bit-exact on CPU: the same losses, accuracies, gradient norms and learning rates, and the same weights.
    assert numbers(resumed["history"]) == numbers(full["history"])[2:]
    assert resumed["params_sha256"] == full["params_sha256"]
    evals = [(e["step"], e["loss"], e["accuracy"]) for e in events if e["kind"] == "eval"]
    assert evals == [(e["step"], e["loss"], e["accuracy"]) for e in full_events if e["kind"] == "eval"]  # 3 and 6
    # Pruned to keep_last only after the new checkpoint was complete; no temporary folder is left.
    assert [p.name for p in checkpoint_dirs(root)] == ["step-00000006"]
    assert not list(root.glob(".tmp-*"))
    state = torch.load(root / "step-00000006" / "trainer_state.pt", weights_only=False)
    assert state["step"] == 6 and len(state["rng"]) == 1 and state["train_config"]["loss"] == "uncertainty"


def test_a_short_run_learns_to_match_colours(backbone, data, tmp_path):
    events = []
    config = train_config(data, tmp_path / "run", batch_size=8, max_steps=100, warmup_steps=5, schedule="constant",
                          eval_every=50, save_every=50, log_every=10)
    result = train(model_config(backbone), config, on_metrics=events.append)
    losses = [h["loss"] for h in result["history"]]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 0.6 and last < 0.3, (first, last)
    # The metrics callback saw progress, evaluations and checkpoints.
    assert [e["step"] for e in events if e["kind"] == "train"] == list(range(10, 101, 10))
    assert [e["step"] for e in events if e["kind"] == "eval"] == [50, 100]
    assert [e["step"] for e in events if e["kind"] == "checkpoint"] == [50, 100]
    # A prompt-blind score is right half the time here; the trained one is right on nearly every pair.
    checkpoint = result["checkpoint"]
    on_train = evaluate_checkpoint(checkpoint, data, split="train")
    on_validation = evaluate_checkpoint(checkpoint, data, split="validation")
    assert on_train["overall"]["accuracy"] >= 0.85, on_train["overall"]
    assert on_validation["overall"]["accuracy"] >= 0.75, on_validation["overall"]
    assert on_train["overall"]["ci95"][0] > 0.5
    assert on_train["1 edit"]["n"] + on_train["2-3 edits"]["n"] == on_train["pairs"] == 32
    assert set(on_train["by_relation"]) <= {"left_right", "front_behind", "above_below", "swap", "order"}


def test_the_mismatch_term_learns_which_image_belongs_to_the_prompt(backbone, tmp_path):
    # Four colours: another pair's winner is another colour three times in four.
    data = colour_dataset(tmp_path / "pairs.parquet", train=32, colours=tuple(COLOURS))
    settings = {"batch_size": 8, "lr": 1e-3, "warmup_steps": 5, "schedule": "constant", "eval_split": ""}
    model = model_config(backbone, lora_dropout=0.0, head_dropout=0.0)  # no dropout masks shaped by the batch
    plain = train(model, train_config(data, tmp_path / "plain", max_steps=2, **settings))
    mixed = train(model, train_config(data, tmp_path / "mixed", max_steps=100, mismatch_weight=1.0, **settings))
    # Step 1 starts from the same weights on the same pairs: the same pairwise loss; the extra term's gradient
    # makes step 2 differ.
    assert mixed["history"][0]["loss"] == pytest.approx(plain["history"][0]["loss"], abs=1e-6)
    assert mixed["history"][1]["loss"] != pytest.approx(plain["history"][1]["loss"], abs=1e-6)
    assert "mismatch_loss" not in plain["history"][0]
    # The in-batch question (this prompt's image, or another pair's?) is learnt: its loss falls from log 2, and
    # the pairwise loss with it.
    mismatch = [h["mismatch_loss"] for h in mixed["history"]]
    losses = [h["loss"] for h in mixed["history"]]
    assert sum(mismatch[:10]) / 10 > 0.65 and sum(mismatch[-10:]) / 10 < 0.45, mismatch
    assert sum(losses[:10]) / 10 > 0.65 and sum(losses[-10:]) / 10 < 0.4, losses


def test_two_ddp_processes_agree_with_each_other_and_with_one_process(backbone, data, tmp_path):
    # No dropout: two ranks with 2 pairs each then see exactly what one process with 4 pairs sees.
    flags = ["--backbone", str(backbone), "--data", str(data), "--output-dir", str(tmp_path / "ddp"),
             "--lora-rank", "8", "--lora-alpha", "16", "--lora-dropout", "0", "--head-dropout", "0",
             "--min-pixels", str(PX * PX), "--max-pixels", str(PX * PX), "--lr", "3e-3", "--warmup-steps", "1",
             "--batch-size", "2", "--max-steps", "3", "--save-every", "2", "--eval-every", "3", "--log-every", "1",
             "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "ml.reward.train", *flags], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summaries = sorted((line["summary"] for line in lines if "summary" in line), key=lambda s: s["rank"])
    assert [(s["rank"], s["world_size"], s["step"]) for s in summaries] == [(0, 2, 3), (1, 2, 3)]
    assert summaries[0]["params_sha256"] == summaries[1]["params_sha256"]
    train_events = [line for line in lines if line.get("kind") == "train"]
    assert [e["step"] for e in train_events] == [1, 2, 3]  # only rank 0 reports
    root = tmp_path / "ddp" / "checkpoints"
    assert [p.name for p in checkpoint_dirs(root)] == ["step-00000002", "step-00000003"]
    assert len(torch.load(root / "step-00000003" / "trainer_state.pt", weights_only=False)["rng"]) == 2

    single = train(model_config(backbone, lora_dropout=0.0, head_dropout=0.0),
                   train_config(data, tmp_path / "single", batch_size=4, max_steps=3, warmup_steps=1, save_every=2))
    # Step 1 is the same computation up to float rounding (other padding, another reduction order). Later steps
    # drift a little: Adam turns the rounding noise of near-zero gradient entries into full-size updates.
    first_ddp, first_one = train_events[0], single["history"][0]
    assert first_ddp["loss"] == pytest.approx(first_one["loss"], rel=1e-6)
    assert first_ddp["grad_norm"] == pytest.approx(first_one["grad_norm"], rel=1e-5)
    for ddp_step, one_step in zip(train_events[1:], single["history"][1:], strict=True):
        assert ddp_step["loss"] == pytest.approx(one_step["loss"], rel=1e-3)


def test_the_cli_builds_its_flags_from_the_configs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--backbone", "--lora-rank", "--reward-token", "--loss", "--mc-samples", "--grad-accum",
                 "--gradient-checkpointing", "--no-gradient-checkpointing", "--keep-last", "--resume"):
        assert flag in out
    assert "Bradley-Terry" in out and "2e-06" in out


def test_the_gpu_benchmark_runs_tiny_on_cpu(capsys):
    spec = importlib.util.spec_from_file_location("reward_gpu", REPO / "benchmarks" / "reward_gpu.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--tiny", "--steps", "3", "--warmup", "1", "--lora-rank", "4"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["size"] == "tiny" and figures["pairs_per_step"] == 2 and len(figures["losses"]) == 3
    assert figures["gradient_checkpointing"] and figures["samples_per_s"] > 0
