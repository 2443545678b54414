"""Flow-GRPO on the tiny random Flux pipeline (ml.generation.tiny): the reference is the base model, the NFE
accounting counted with a forward hook, a short run learns the left-minus-right brightness reward (and unlearns it
with the sign flipped), a crashed run resumes from its checkpoint and repeats the uninterrupted one, the saved LoRA
loads with diffusers' load_lora_weights, two DDP processes (gloo, torchrun) end with identical weights, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("peft")

from diffusers import FluxPipeline, FluxTransformer2DModel  # noqa: E402

from ml.generation.tiny import build_tiny_flux  # noqa: E402
from ml.grpo import train as train_module  # noqa: E402
from ml.grpo.config import LORA_TARGETS, GRPOConfig  # noqa: E402
from ml.grpo.policy import FlowPolicy  # noqa: E402
from ml.grpo.rewards import left_minus_right  # noqa: E402
from ml.grpo.train import checkpoint_dirs, load_lora_file, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ["a red cube left of a blue ball", "a cat above a table", "a lamp behind the sofa",
           "three books from left to right: red, green, blue"]
EVAL_PROMPTS = ["a mug right of the keyboard", "a plant behind a chair"]
# The tiny transformer's attention alone moves its output too little to learn within 30 steps; the learning test
# also adapts the output projections.
LEARN_TARGETS = [*LORA_TARGETS, "proj_out", "proj_mlp"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def flux(tmp_path_factory) -> Path:
    return build_tiny_flux(tmp_path_factory.mktemp("flux"))


@pytest.fixture(scope="module")
def prompt_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("prompts")
    (folder / "train.txt").write_text("\n".join(PROMPTS) + "\n")
    (folder / "eval.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in EVAL_PROMPTS))
    return folder / "train.txt", folder / "eval.jsonl"


def config(flux: Path, prompt_files, out: Path | str = "", **overrides) -> GRPOConfig:
    train_txt, eval_jsonl = prompt_files
    values = {"pretrained": str(flux), "output_dir": str(out), "prompts": str(train_txt),
              "eval_prompts": str(eval_jsonl), "reward": "brightness-left-right", "group_size": 8, "top_k": 2,
              "prompts_per_step": 2, "sample_steps": 4, "eval_steps": 4, "height": 64, "width": 64,
              "max_sequence_length": 32, "sample_batch_size": 16, "train_batch_size": 8, "lora_rank": 4,
              "lora_alpha": 4.0, "max_steps": 4, "eval_every": 0, "eval_seeds": 2, "save_every": 0,
              "save_eval_images": False, "device": "cpu"}
    return GRPOConfig(**{**values, **overrides})


def policy_with_lora(flux: Path) -> FlowPolicy:
    policy = FlowPolicy.from_pretrained(flux, device=torch.device("cpu"), dtype=torch.float32)
    torch.manual_seed(0)
    policy.add_lora(rank=4, alpha=4.0, targets=LORA_TARGETS, init="random")  # B != 0: the adapter acts
    return policy


def test_the_reference_is_the_base_model(flux):
    policy = policy_with_lora(flux)
    base = FluxTransformer2DModel.from_pretrained(flux / "transformer").eval()
    cond = policy.encode(["a cat left of a dog", "a box"], max_sequence_length=32)
    x = policy.initial_noise([torch.Generator().manual_seed(s) for s in (0, 1)], 64, 64)
    t = torch.tensor([0.8, 0.3])
    with torch.no_grad():
        adapted = policy.velocity(x, t, cond, height=64, width=64)
        with policy.reference():
            reference = policy.velocity(x, t, cond, height=64, width=64)
        again = policy.velocity(x, t, cond, height=64, width=64)
        policy.transformer = base  # the same call through a transformer that never had a LoRA
        plain = policy.velocity(x, t, cond, height=64, width=64)
    torch.testing.assert_close(reference, plain, rtol=0, atol=1e-6)
    assert (adapted - plain).abs().max() > 1e-3  # the adapter changes the output ...
    torch.testing.assert_close(again, adapted)  # ... and is back on after the context


@pytest.mark.parametrize(("top_k", "train_passes"), [(6, 72), (12, 144)])
def test_training_passes_per_prompt_count_only_kept_samples(flux, prompt_files, top_k, train_passes):
    c = config(flux, prompt_files, group_size=24, top_k=top_k, sample_steps=6, prompts_per_step=1, max_steps=1,
               height=32, width=32, sample_batch_size=24, train_batch_size=12, eval_prompts="", beta=0.01)
    counted = {"grad": 0, "no_grad": 0}
    original = FlowPolicy.from_pretrained

    def hooked(*args, **kwargs):
        policy = original(*args, **kwargs)

        def count(module, inputs, kwargs, output):
            counted["grad" if torch.is_grad_enabled() else "no_grad"] += kwargs["hidden_states"].shape[0]

        policy.transformer.register_forward_hook(count, with_kwargs=True)
        return policy

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FlowPolicy, "from_pretrained", hooked)
        summary = train(c)
    metrics = summary["history"][0]
    # Forward/backward passes: the 2k kept samples x 6 steps (72), or all 24 x 6 (144) without filtering.
    assert counted["grad"] == train_passes
    # Without gradient: sampling all 24 images x 6 steps, plus one reference pass per training pass (beta > 0).
    assert counted["no_grad"] == 24 * 6 + train_passes
    assert metrics["nfe_train_per_prompt"] == train_passes
    assert metrics["nfe_sampling_per_prompt"] == 144
    assert metrics["nfe_reference_per_prompt"] == train_passes
    assert metrics["kept_per_prompt"] == 2 * min(top_k, 12)


def _learn(flux, prompt_files, sign: float) -> tuple[list[float], list[float]]:
    # 4 groups of 16 per step, top-k 4 (8 kept); lr 0.05 for the tiny random model (the paper's 3e-4 is for FLUX.1).
    c = config(flux, prompt_files, group_size=16, top_k=4, prompts_per_step=4, max_steps=30, eval_every=30,
               eval_seeds=8, lr=0.05, beta=0.0, updates_per_step=1, lora_targets=LEARN_TARGETS, seed=3)
    evals = []
    train(c, on_metrics=lambda m: evals.append(m) if m["kind"] == "eval" else None,
          reward_fn=lambda prompts, images: sign * left_minus_right(prompts, images))
    assert [e["step"] for e in evals] == [0, 30]
    before, after = (sign * torch.tensor(e["rewards"]) for e in evals)  # back to left-minus-right
    return before.tolist(), after.tolist()


def test_thirty_steps_learn_the_brightness_reward_and_the_flipped_sign_unlearns_it(flux, prompt_files):
    from scipy import stats

    # Evaluation: the same 16 (prompt, seed) pairs with the deterministic ODE, before and after: a paired test.
    before, after = _learn(flux, prompt_files, +1.0)
    gain = torch.tensor(after) - torch.tensor(before)
    print(f"left-minus-right: {sum(before) / 16:.4f} -> {sum(after) / 16:.4f}, "
          f"p = {stats.ttest_rel(after, before, alternative='greater').pvalue:.2g}")
    assert gain.mean() > 0.005  # the base model's rewards spread about 0.003 around 0
    assert stats.ttest_rel(after, before, alternative="greater").pvalue < 0.01

    before_flip, after_flip = _learn(flux, prompt_files, -1.0)
    assert before_flip == pytest.approx(before)  # the same base images
    loss = torch.tensor(after_flip) - torch.tensor(before_flip)
    print(f"flipped: {sum(before_flip) / 16:.4f} -> {sum(after_flip) / 16:.4f}, "
          f"p = {stats.ttest_rel(after_flip, before_flip, alternative='less').pvalue:.2g}")
    assert loss.mean() < -0.005
    assert stats.ttest_rel(after_flip, before_flip, alternative="less").pvalue < 0.01


class Crash(Exception):
    pass


def test_a_crashed_run_resumes_from_its_checkpoint_and_repeats_the_uninterrupted_run(flux, prompt_files, tmp_path):
    overrides = {"max_steps": 4, "save_every": 1, "keep_last": 2, "updates_per_step": 2, "clip_range": 0.2,
                 "lr": 0.05, "ema_decay": 0.5, "eval_every": 2}
    full = train(config(flux, prompt_files, tmp_path / "full", **overrides))

    def die_at_step_3(metrics: dict) -> None:
        if metrics["kind"] == "train" and metrics["step"] == 3:
            raise Crash

    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        train(config(flux, prompt_files, out, **overrides), on_metrics=die_at_step_3)
    root = out / "checkpoints"
    assert [p.name for p in checkpoint_dirs(root)] == ["step-00000001", "step-00000002"]
    events = []
    resumed = train(config(flux, prompt_files, out, resume=True, **overrides), on_metrics=events.append)
    assert events[0] == {"kind": "resumed", "step": 2, "path": str(root / "step-00000002")}
    assert [h["step"] for h in resumed["history"]] == [3, 4]

    def numbers(history):
        return [(h["step"], h["loss"], h["reward_mean"], h["kl"], h["clip_fraction"], h["grad_norm"])
                for h in history]

    # CPU, fixed seeds: everything random is a function of (seed, step), the LoRA and Adam state are restored.
    assert numbers(resumed["history"]) == numbers(full["history"][2:])
    assert resumed["lora_sha256"] == full["lora_sha256"]
    assert resumed["eval"]["rewards"] == full["eval"]["rewards"]
    assert [p.name for p in checkpoint_dirs(root)] == ["step-00000003", "step-00000004"]  # pruned to keep_last
    assert not list(root.glob(".tmp-*"))
    assert (root / "step-00000004" / "ema" / "pytorch_lora_weights.safetensors").is_file()


def test_the_saved_lora_loads_with_load_lora_weights_and_changes_the_output(flux, prompt_files, tmp_path):
    summary = train(config(flux, prompt_files, tmp_path / "run", max_steps=2, lr=0.1, beta=0.0, eval_prompts=""))
    checkpoint = Path(summary["checkpoint"])
    ours = load_lora_file(checkpoint / "pytorch_lora_weights.safetensors")
    assert ours and all(value.abs().sum() > 0 for key, value in ours.items() if "lora_B" in key)

    pipe = FluxPipeline.from_pretrained(flux)
    pipe.set_progress_bar_config(disable=True)

    def image():
        return pipe("a cat left of a dog", num_inference_steps=3, height=64, width=64, max_sequence_length=32,
                    generator=torch.Generator().manual_seed(0), output_type="np").images

    before = image()
    pipe.load_lora_weights(str(checkpoint))
    after = image()
    assert abs(after - before).max() > 1e-4
    loaded = {name: param for name, param in pipe.transformer.named_parameters() if "lora_" in name}
    key = next(k for k in ours if "lora_B" in k)
    match = next(param for name, param in loaded.items()
                 if name.replace(".default_0", "").replace(".default", "") == key)
    torch.testing.assert_close(match.detach(), ours[key])


def test_two_ddp_processes_end_with_identical_lora_weights(flux, prompt_files, tmp_path):
    c = config(flux, prompt_files, tmp_path / "ddp", max_steps=2, save_every=2, eval_every=2, lr=0.05,
               updates_per_step=2, clip_range=0.2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "ml.grpo.train", *train_module.to_arguments(c)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summaries = sorted((line["summary"] for line in lines if "summary" in line), key=lambda s: s["rank"])
    assert [(s["rank"], s["world_size"], s["step"]) for s in summaries] == [(0, 2, 2), (1, 2, 2)]
    assert summaries[0]["lora_sha256"] == summaries[1]["lora_sha256"]
    first = json.loads(next(line for line in proc.stdout.splitlines() if '"kind": "train"' in line))
    assert first["step"] == 1 and first["nfe_sampling_per_prompt"] == 8 * 4 and first["kept_per_prompt"] == 4
    evals = [line for line in lines if line.get("kind") == "eval"]
    assert [e["step"] for e in evals] == [0, 2] and len(evals[-1]["rewards"]) == 4  # gathered from both ranks
    assert "images" not in evals[-1]
    assert (tmp_path / "ddp" / "checkpoints" / "step-00000002" / "pytorch_lora_weights.safetensors").is_file()


def test_the_cli_builds_its_flags_from_the_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--pretrained", "--group-size", "--top-k", "--stats", "--noise-level", "--timestep-fraction",
                 "--clip-range", "--beta", "--lora-rank", "--cfg-scale", "--ema-decay", "--resume", "--no-resume"):
        assert flag in out
    assert "0.0003" in out and "top-k" in out


def test_sd3_with_classifier_free_guidance_trains_and_its_lora_loads(prompt_files, tmp_path):
    from diffusers import StableDiffusion3Pipeline

    from ml.generation.tiny import build_tiny_sd3

    folder = build_tiny_sd3(tmp_path / "sd3")
    c = config(folder, prompt_files, tmp_path / "run", group_size=4, top_k=1, sample_steps=3, eval_steps=3,
               max_steps=2, eval_every=2, cfg_scale=4.5, guidance=0.0, lr=0.1, beta=0.01, clip_range=0.2)
    summary = train(c)
    metrics = summary["history"][0]
    # True CFG runs the negative prompt beside each image: two evaluations per image and step.
    assert metrics["nfe_sampling_per_prompt"] == 4 * 3 * 2
    assert metrics["nfe_train_per_prompt"] == 2 * 3 * 2 and metrics["nfe_reference_per_prompt"] == 2 * 3 * 2
    assert all(torch.isfinite(torch.tensor([h["loss"], h["kl"]])).all() for h in summary["history"])
    assert summary["history"][1]["kl"] > 0  # the policy has moved away from the reference
    assert len(summary["eval"]["images"]) == 4 and summary["eval"]["images"][0].size == (64, 64)

    pipe = StableDiffusion3Pipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)

    def image():
        return pipe("a cat left of a dog", num_inference_steps=2, height=64, width=64, guidance_scale=1.0,
                    generator=torch.Generator().manual_seed(0), output_type="np").images

    before = image()
    pipe.load_lora_weights(summary["checkpoint"])
    assert abs(image() - before).max() > 1e-4


def test_a_spatialscore_checkpoint_is_the_reward(flux, prompt_files, tmp_path):
    from ml.grpo.rewards import build_reward
    from ml.reward.config import ModelConfig
    from ml.reward.model import SpatialScore
    from ml.reward.tiny import build_tiny_backbone

    backbone = build_tiny_backbone(tmp_path / "qwen")
    torch.manual_seed(0)
    model_config = ModelConfig(backbone=str(backbone), lora_rank=4, lora_alpha=8.0, min_pixels=56 * 56,
                               max_pixels=56 * 56)
    scorer = SpatialScore.from_pretrained(backbone, model_config)
    checkpoint = scorer.save(tmp_path / "rm")
    c = config(flux, prompt_files, tmp_path / "run", reward="spatialscore", reward_model=str(checkpoint),
               group_size=4, top_k=1, max_steps=1, eval_every=1, eval_seeds=1)
    evals = []
    summary = train(c, on_metrics=lambda m: evals.append(m) if m["kind"] == "eval" else None)
    # The rewards are the reward model's mu for (prompt, decoded image): scored again outside, the same numbers.
    final = evals[-1]
    expected = scorer.predict(final["prompts"], final["images"]).mu
    torch.testing.assert_close(torch.tensor(final["rewards"], dtype=torch.float32), expected, rtol=1e-4, atol=1e-5)
    assert summary["history"][0]["reward_std"] > 0
    with pytest.raises(ValueError, match="reward_model"):
        build_reward("spatialscore")
    with pytest.raises(ValueError, match="unknown reward"):
        build_reward("aesthetics")
