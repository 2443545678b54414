"""Proof that SpatialScore learns (issue 7): a tiny reward model trained on this 2-core CPU, on a dataset the
platform made by itself, reaches a pairwise accuracy on the held-out test split within a training budget.

    python benchmarks/reward_learning.py                       # make the data, train 20 minutes, evaluate
    python benchmarks/reward_learning.py --make-only           # only the dataset (prints the export's path)
    python benchmarks/reward_learning.py --data /tmp/reward-learning/pairs.parquet --minutes 5   # reuse one

The dataset is made only through the platform's own services and job handlers, on a fresh database (SQLite and
media under a temporary VAR_DIR, unless DATABASE_URL names another database):

1. a prompt set from the platform's prompt generator (`prompt_set_generate`, ml/spatial/generator.py);
2. the `perturb_prompt_set` job with the default rules (one run for 1 edit, one for 2-3 edits);
3. the `generate_pairs` job with a scene-renderer generator (small images; the renderer records which relations
   each image satisfies, and the job stores the pair's ground truth in `Pair.ground_truth_ok`);
4. a verification queue (`queue_create`) answered by simulated annotators through `item_claim` /
   `verdict_submit`, each answering from the renderer's ground truth: "winner" when only the perfect prompt's
   image follows it, "loser", "both" or "neither" otherwise, so pairs that are not valid preference pairs are
   rejected by consensus;
5. a frozen dataset version (`version_create` + the `build_dataset` job: train / validation / test split by prompt)
   and its Parquet export through `write_export` (the file a user downloads).

Jobs run in-process through their handlers, exactly as a worker runs them (claim, handler, succeed), so no worker
or broker is needed. The reward model sees only the prompt text and the image pixels.

Training: `ml.reward.train.train` on a random Qwen2.5-VL backbone from `ml.reward.tiny.build_tiny_backbone`, for at
most --minutes of wall-clock time (TrainConfig.max_seconds); the validation split is scored every --eval-every
steps. Then `ml.reward.evaluate.evaluate_checkpoint` scores the test split: pairwise accuracy overall, for 1 edit
and 2-3 edits, by relation kind, with 95 % Wilson intervals. Results go to --out: result.json, curve.csv and
(when matplotlib is installed) curve.png. Figures are recorded in docs/reward_learning.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]


# --- The dataset, made by the platform ------------------------------------------------------------------------


def setup_django(var_dir: Path) -> None:
    os.environ.setdefault("VAR_DIR", str(var_dir))
    os.environ.setdefault("MEDIA_ROOT", str(var_dir / "media"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spatiallab.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("spatiallab").setLevel(logging.WARNING)  # one "enqueued job" line per job
    logging.getLogger("ml").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run_job_inline(job) -> dict:
    """Runs a job through its kind's handler, exactly as a worker would (claim, handler, succeed)."""
    from spatiallab.jobs.services import job_claim, job_succeed
    from workers.handlers import HANDLERS
    from workers.runner import JobContext

    claim = job_claim(job_id=job.pk, worker_name="reward-learning-bench")
    if claim is None:
        raise RuntimeError(f"job {job.pk} ({job.kind}) could not be claimed")
    result = HANDLERS[job.kind](JobContext(claim))
    job_succeed(claim=claim, result=result or {})
    return result or {}


def simulated_answer(pair) -> str:
    """What an annotator who sees exactly what the renderer drew answers: does each image follow the perfect
    prompt? (The renderer's ground truth, stored by the generation job in the pair's meta.)"""
    from spatiallab.verification.models import Answer

    truth = pair.meta["ground_truth"]
    winner, loser = truth["winner"]["follows"], truth["loser"]["follows"]
    if winner and not loser:
        return Answer.WINNER
    if loser and not winner:
        return Answer.LOSER
    return Answer.BOTH if winner else Answer.NEITHER


CHOICES = {"winner": ("left", "right"), "loser": ("right", "left"), "both": ("both", "both"),
           "neither": ("neither", "neither"), "unsure": ("unsure", "unsure")}


def make_dataset(args, out: Path) -> tuple[Path, dict]:
    """Makes the pairs through the platform and writes the version's Parquet export; returns (path, figures)."""
    from django.db.models import Count
    from tqdm import tqdm

    from spatiallab.accounts.roles import Role
    from spatiallab.accounts.services import user_create_with_role
    from spatiallab.datasets.exports import write_export
    from spatiallab.datasets.models import DatasetVersion, VersionStatus
    from spatiallab.datasets.services import version_create
    from spatiallab.generation.models import Pair
    from spatiallab.generation.services import generator_create
    from spatiallab.jobs.services import job_create
    from spatiallab.prompts.defaults import ensure_default_rules
    from spatiallab.prompts.models import PerturbationRule, PerturbedPrompt
    from spatiallab.prompts.services import GeneratorSettings, prompt_set_generate
    from spatiallab.verification.models import VerificationQueue
    from spatiallab.verification.services import item_claim, queue_create, verdict_submit

    figures: dict = {}
    started = time.perf_counter()
    tag = f"{time.time():.0f}"

    # 1. Prompts from the platform's generator.
    settings = GeneratorSettings(count=args.prompts, seed=args.seed, min_objects=args.min_objects,
                                 max_objects=args.max_objects, min_relations=args.min_relations,
                                 max_relations=args.max_relations, style=args.style,
                                 categories=tuple(args.categories), colours=args.colours, axes=tuple(args.axes))
    prompt_set = prompt_set_generate(name=f"reward-learning prompts {tag}", settings=settings).prompt_set
    figures["prompts"] = prompt_set.prompts.count()
    print(f"prompt set {prompt_set.pk}: {figures['prompts']} generated prompts ({args.style}, "
          f"{args.min_objects}-{args.max_objects} objects, {args.min_relations}-{args.max_relations} relations, "
          f"colour words: {args.colours}, axes: {' '.join(args.axes)})")

    # 2. Perturbations with the platform's default rules: the paper's two subsets.
    ensure_default_rules(PerturbationRule)
    rules = sorted(PerturbationRule.objects.filter(enabled=True).values_list("pk", flat=True))
    for edits, seed in (("1", args.seed), ("2-3", args.seed + 1)):
        if edits == "2-3" and not args.two_three:
            continue
        job = job_create(kind="perturb_prompt_set", params={"prompt_set": prompt_set.pk, "rules": rules,
                                                            "edits": edits, "seed": seed})
        result = run_job_inline(job)
        print(f"perturb_prompt_set ({edits} edit(s)): {result['created']} perturbed prompts, "
              f"{result['rejected']} prompts without an applicable edit")
    figures["perturbed_prompts"] = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()

    # 3. Pairs from the scene renderer (same seed for both images of a pair).
    generator = generator_create(name=f"reward-learning renderer {tag}", backend="scene-renderer",
                                 settings={"width": args.image_size, "height": args.image_size,
                                           "break_fraction": args.break_fraction, "labels": args.labels,
                                           **renderer_style(args), "batch_size": 64, "image_format": "png"})
    job = job_create(kind="generate_pairs", params={"prompt_set": prompt_set.pk, "generators": [generator.pk],
                                                    "seeds": args.seeds, "seed": args.seed})
    total = figures["perturbed_prompts"] * args.seeds
    t0 = time.perf_counter()
    with tqdm(total=total, desc="generate_pairs", unit="pair") as bar:
        # The job reports progress through its row; follow it from the handler's progress calls.
        from workers import runner

        original = runner.JobContext.progress

        def progress(self, done, total=None, message="", checkpoint=None):
            bar.n = done
            bar.refresh()
            return original(self, done, total=total, message=message, checkpoint=checkpoint)

        runner.JobContext.progress = progress
        try:
            result = run_job_inline(job)
        finally:
            runner.JobContext.progress = original
    figures["pairs_generated"] = result["pairs"]
    figures["generate_seconds"] = round(time.perf_counter() - t0, 1)
    good = Pair.objects.filter(generator=generator, ground_truth_ok=True).count()
    print(f"generate_pairs: {result['pairs']} pairs at {args.image_size} px in {figures['generate_seconds']} s; "
          f"renderer ground truth: {good} valid, {result['pairs'] - good} not")

    # 4. Verification by simulated annotators who answer from the renderer's ground truth.
    t0 = time.perf_counter()
    build = queue_create(name=f"reward-learning queue {tag}", overlap=args.overlap, quorum=args.quorum,
                         selection={"generator": generator.pk})
    queue = build.queue
    if queue.build_job_id:
        run_job_inline(queue.build_job)
        queue = VerificationQueue.objects.get(pk=queue.pk)
    annotators = [user_create_with_role(username=f"annotator-{tag}-{i}", password=f"pw-{tag}-{i}",
                                        role=Role.ANNOTATOR) for i in range(args.overlap)]
    answers = {pk: simulated_answer(pair) for pk, pair in
               ((pair.pk, pair) for pair in Pair.objects.filter(generator=generator).only("pk", "meta"))}
    with tqdm(total=build.items * args.overlap, desc="verification", unit="verdict") as bar:
        for user in annotators:
            while (lease := item_claim(queue=queue, user=user)) is not None:
                answer = answers[lease.pair_id]
                verdict_submit(user=user, assignment_id=lease.assignment_id,
                               choice=CHOICES[answer][0 if lease.winner_left else 1])
                bar.update()
    figures["verification_seconds"] = round(time.perf_counter() - t0, 1)
    counts = dict(queue.items.values("status").annotate(n=Count("pk")).values_list("status", "n"))
    figures["queue_items"] = counts
    print(f"verification: {build.items} items x {args.overlap} simulated annotators in "
          f"{figures['verification_seconds']} s: {counts}")

    # 5. A frozen version (split by prompt) and its Parquet export.
    t0 = time.perf_counter()
    version = version_create(name=f"reward-learning {tag}", criteria={"queues": [queue.pk]})
    run_job_inline(version.build_job)
    version = DatasetVersion.objects.get(pk=version.pk)
    if version.status != VersionStatus.FROZEN:
        raise RuntimeError(f"version {version.pk} is {version.status}: {version.error}")
    path = out / "pairs.parquet"
    with open(path, "wb") as handle:
        size, sha256 = write_export(version, "parquet", "", handle)
    figures["version"] = {"id": version.pk, "entries": version.entry_count, "content_hash": version.content_hash}
    figures["export"] = {"path": str(path), "bytes": size, "sha256": sha256}
    figures["build_export_seconds"] = round(time.perf_counter() - t0, 1)
    figures["make_seconds"] = round(time.perf_counter() - started, 1)
    figures["splits"] = split_counts(path)
    print(f"dataset version {version.pk}: {version.entry_count} verified pairs, frozen (content hash "
          f"{version.content_hash[:12]}...); Parquet export {size / 1e6:.1f} MB at {path}")
    print(f"splits: {figures['splits']}; made in {figures['make_seconds']} s")
    return path, figures


def split_counts(path: Path) -> dict:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["split", "n_edits", "prompt"])
    counts: dict = {}
    for split, n_edits, prompt in zip(*(table.column(c).to_pylist() for c in ("split", "n_edits", "prompt")),
                                      strict=True):
        cell = counts.setdefault(split, {"pairs": 0, "1 edit": 0, "2-3 edits": 0, "prompts": set()})
        cell["pairs"] += 1
        cell["1 edit" if n_edits <= 1 else "2-3 edits"] += 1
        cell["prompts"].add(prompt)
    return {split: {**cell, "prompts": len(cell["prompts"])} for split, cell in sorted(counts.items())}


# --- Diagnostic data: the smallest spatial questions, drawn directly (not platform data) -------------------------

BLOCK_COLOURS = {"red": (204, 46, 46), "blue": (48, 96, 204), "green": (58, 158, 72), "yellow": (232, 200, 40),
                 "purple": (132, 70, 172), "orange": (236, 130, 34)}


def _blocks_png(blocks: list[tuple[int, int, str]], size: int = 112, block: int = 21) -> bytes:
    """Sky, floor (the renderer's colours and horizon) and `block` px square blocks centred at (x, y)."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (221, 232, 243))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, int(size * 0.42), size, size], fill=(236, 228, 211))
    for x, y, colour in blocks:
        half = block // 2
        draw.rectangle([x - half, y - half, x - half + block - 1, y - half + block - 1], fill=BLOCK_COLOURS[colour])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def renderer_style(args) -> dict:
    """The scene renderer's picture settings the benchmark's options choose (as the generator's settings name them)."""
    return {"object_scale": args.object_scale, "back_scale": args.back_scale, "shapes": args.shapes,
            "exact_colours": args.exact_colours}


def _rendered_png(prompt: str, seed: int, style: dict) -> bytes:
    """The prompt drawn by the platform's scene renderer (112 px, no labels; `style`: renderer_style's settings),
    PNG-encoded."""
    import io

    from ml.render.scene import render_scene
    from ml.spatial.parser import parse

    buffer = io.BytesIO()
    render_scene(parse(prompt), seed=seed, width=112, height=112, labels=False, **style).image.save(buffer,
                                                                                                  format="PNG")
    return buffer.getvalue()


def diagnostic_dataset(kind: str, path: Path, *, train: int = 6000, held_out: int = 400, seed: int = 0,
                       block: int = 21, style: dict | None = None) -> Path:
    """Pairs in the export's Parquet layout for the diagnostic questions (docs/reward_learning.md):

    one-object: "A red block is on the left." One block; the loser shows it on the other side. A score has to read
        where the object is and tie it to the word left/right (no object identity needed).
    colour-side: the same prompts, with a block of another colour on the other side; the loser swaps the two
        blocks. A score has to find the named colour and read where it is: identity and position together.
    two-objects: "A red block is left of a blue block." (or right of). The loser swaps the two blocks' places. A
        score has to find each named colour and compare their places: identity (by colour, not shape) and position.
    mixed: half colour-side, half two-objects (colour-side's relations reported as side_left / side_right).
    two-objects-nouns: two-objects with the blocks called by the kitchen's 14 object names ("A red mug is left of a
        blue kettle."): the same pictures, 11,760 prompts instead of 60.
    two-objects-rendered: two-objects-nouns' prompts drawn by the scene renderer (its shapes, sizes, depths and
        colour jitter, or what `style` sets: renderer_style's settings); the loser is the renderer's picture of the
        prompt with the objects swapped ("A blue kettle is left of a red mug."), with the same seed, as the
        platform makes its pairs.
    """
    import random

    from ml.spatial import lexicon as lx
    from ml.spatial.generator import indefinite_article
    from tests.ml.reward_data import write_pairs  # the export's Parquet schema, as the ml tests write it

    colours = sorted(BLOCK_COLOURS)
    nouns = [name for name, _ in lx.SCENES["kitchen"]]

    def rows(n: int, split: str, rng: random.Random, start: int) -> list[dict]:
        out = []
        for i in range(n):
            # "mixed": half colour-side, half two-objects (does the easier question lift the harder one?)
            question = kind if kind != "mixed" else rng.choice(["colour-side", "two-objects"])
            if question in ("one-object", "colour-side"):
                colour, side = rng.choice(colours), rng.choice(["left", "right"])
                left, right, y = rng.randrange(12, 44), rng.randrange(68, 100), rng.randrange(60, 100)
                places = (left, right) if side == "left" else (right, left)
                prompt, relation = f"A {colour} block is on the {side}.", f"{side}_of"
                if kind == "mixed":
                    relation = f"side_{side}"  # told apart from two-objects' left_of/right_of in the report
                if question == "one-object":
                    chosen, rejected = (_blocks_png([(x, y, colour)], block=block) for x in places)
                else:  # a block of another colour stands on the other side
                    other, y2 = rng.choice([c for c in colours if c != colour]), rng.randrange(60, 100)
                    chosen, rejected = (_blocks_png([(x, y, colour), (x_other, y2, other)], block=block)
                                        for x, x_other in (places, places[::-1]))
            else:
                a, b = rng.sample(colours, 2)
                noun_a, noun_b = rng.sample(nouns, 2) if question != "two-objects" else ("block", "block")
                relation = rng.choice(["left_of", "right_of"])
                xs = sorted(rng.sample(range(14, 98, 4), 2))
                while xs[1] - xs[0] < 24:
                    xs = sorted(rng.sample(range(14, 98, 4), 2))
                xa, xb = xs if relation == "left_of" else xs[::-1]
                ya, yb = rng.randrange(60, 100), rng.randrange(60, 100)
                words = relation.replace("_", " ")
                if question != "two-objects":
                    prompt = (f"{indefinite_article(a).capitalize()} {a} {noun_a} is {words} "
                              f"{indefinite_article(b)} {b} {noun_b}.")
                else:  # "A orange block" kept as it was, so earlier runs' data stays the same
                    prompt = f"A {a} block is {words} a {b} block."
                if question == "two-objects-rendered":
                    swapped = (f"{indefinite_article(b).capitalize()} {b} {noun_b} is {words} "
                               f"{indefinite_article(a)} {a} {noun_a}.")
                    chosen, rejected = (_rendered_png(text, start + i, style or {})
                                         for text in (prompt, swapped))
                else:
                    chosen = _blocks_png([(xa, ya, a), (xb, yb, b)], block=block)
                    rejected = _blocks_png([(xb, ya, a), (xa, yb, b)], block=block)
            pair_id = start + i
            out.append({"prompt": prompt, "chosen": {"bytes": chosen, "path": f"images/{pair_id}-w.png"},
                        "rejected": {"bytes": rejected, "path": f"images/{pair_id}-l.png"},
                        "perturbed_prompt": "", "pair_id": pair_id, "split": split, "n_edits": 1, "edits": "[]",
                        "relation_kinds": [relation], "category": "diagnostic", "generator": f"diagnostic {kind}",
                        "seed": i, "width": 112, "height": 112, "agreement": 1.0, "decision": "confirmed"})
        return out

    rng = random.Random(seed)
    data = (rows(train, "train", rng, 1) + rows(held_out, "validation", rng, 1_000_001)
            + rows(held_out, "test", rng, 2_000_001))
    return write_pairs(path, data, row_group=64)


# --- Training and evaluation ----------------------------------------------------------------------------------


def model_settings(args, data: Path, out: Path):
    """Builds the tiny backbone under out/backbone and returns the ModelConfig the benchmark trains with it."""
    from ml.reward.config import ModelConfig
    from ml.reward.tiny import build_tiny_backbone

    corpus = None
    if args.tokenizer == "corpus":  # the training split's texts only: nothing of the test split leaks into it
        import pyarrow.parquet as pq

        rows = pq.read_table(data, columns=["split", "prompt", "perturbed_prompt"]).to_pylist()
        corpus = [row[key] for row in rows if row["split"] == "train" for key in ("prompt", "perturbed_prompt")]
    backbone = build_tiny_backbone(out / "backbone", size=args.size, seed=args.seed, corpus=corpus,
                                   rope_theta=args.rope_theta, init_std=args.init_std)
    model_config = ModelConfig(backbone=str(backbone), lora_rank=args.lora_rank, lora_alpha=args.lora_alpha,
                               lora_dropout=args.lora_dropout, head_dropout=args.head_dropout,
                               head_hidden=args.head_hidden,
                               min_pixels=args.pixels ** 2, max_pixels=args.pixels ** 2,
                               train_vision=args.train_vision)
    return model_config


def init_probe(args, data: Path, out: Path, pairs: int = 96) -> dict:
    """How much the untrained score depends on the image: mean |mu| differences, under each training pair's own
    prompt, between its winner and loser, and between its winner and the next pair's winner (the mismatch term's
    question); and between two prompts on the same image. A plateau starts where the first two are tiny."""
    import torch

    from ml.reward.data import PreferencePairs
    from ml.reward.model import SpatialScore
    from ml.reward.train import seed_all

    torch.set_num_threads(args.threads)
    model_config = model_settings(args, data, out)
    seed_all(args.seed)
    model = SpatialScore.from_pretrained(model_config.backbone, model_config, device=torch.device("cpu"))
    dataset = PreferencePairs(data, "train", limit=pairs)
    items = [dataset[i] for i in range(len(dataset))]
    others = items[1:] + items[:1]
    prompts = [item.prompt for item in items]
    mu = model.score(prompts * 3 + [other.prompt for other in others],
                     [i.chosen for i in items] + [i.rejected for i in items] + [o.chosen for o in others]
                     + [i.chosen for i in items], batch_size=32).reshape(4, -1)
    figures = {"pairs": len(items), "winner_vs_loser": (mu[0] - mu[1]).abs().mean().item(),
               "winner_vs_other_image": (mu[0] - mu[2]).abs().mean().item(),
               "other_prompt_same_image": (mu[0] - mu[3]).abs().mean().item(), "score_std": mu.std().item()}
    print("untrained score, mean |difference|: " + ", ".join(f"{k} {v:.5f}" for k, v in figures.items()
                                                              if k != "pairs") + f" ({len(items)} pairs)")
    return figures


def train_and_evaluate(args, data: Path, out: Path) -> dict:
    import torch

    from ml.reward.config import TrainConfig, to_dict
    from ml.reward.evaluate import evaluate_checkpoint
    from ml.reward.train import train

    torch.set_num_threads(args.threads)
    model_config = model_settings(args, data, out)
    train_config = TrainConfig(data=str(data), output_dir=str(out / "run"), loss=args.loss, lr=args.lr,
                               warmup_steps=args.warmup, schedule=args.schedule, min_lr_ratio=args.min_lr_ratio,
                               weight_decay=args.weight_decay, batch_size=args.batch_size,
                               max_steps=args.max_steps, max_seconds=args.minutes * 60, eval_every=args.eval_every,
                               eval_batch_size=32, max_eval_pairs=args.max_eval_pairs, save_every=0, keep_last=1,
                               log_every=args.log_every, seed=args.seed, device="cpu",
                               mismatch_weight=args.mismatch_weight)
    print(f"model: {json.dumps(to_dict(model_config))}")
    print(f"training: {json.dumps(to_dict(train_config))}")

    from tqdm import tqdm

    curve: list[dict] = []
    last_train: dict = {}
    bar = tqdm(total=args.max_steps, desc="training", unit="step")

    def on_metrics(metrics: dict) -> None:
        if metrics["kind"] == "train":
            last_train.update(metrics)
            bar.n = metrics["step"]
            bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.2f}")
            bar.refresh()
        elif metrics["kind"] == "eval":
            row = {"step": metrics["step"], "elapsed_s": round(last_train.get("elapsed_s", 0.0), 1),
                   "train_loss": round(last_train.get("window_loss", float("nan")), 4),
                   "train_accuracy": round(last_train.get("window_accuracy", float("nan")), 4),
                   "validation_loss": round(metrics["loss"], 4), "validation_accuracy": round(metrics["accuracy"], 4)}
            if "window_mismatch_loss" in last_train:
                row["train_mismatch_loss"] = round(last_train["window_mismatch_loss"], 4)
            curve.append(row)
            bar.write(f"step {row['step']:>5}  {row['elapsed_s']:>7.1f} s  train loss {row['train_loss']:.3f} "
                      f"acc {row['train_accuracy']:.3f}  |  validation loss {row['validation_loss']:.3f} "
                      f"acc {row['validation_accuracy']:.3f} ({metrics['pairs']} pairs)"
                      + (f"  |  mismatch loss {row['train_mismatch_loss']:.3f}" if "train_mismatch_loss" in row
                         else ""))

    # The train accuracy in the curve is the mean over the steps since the previous evaluation.
    window: list[dict] = []

    def on_train(metrics: dict) -> None:
        if metrics["kind"] == "train":
            window.append(metrics)
            metrics = {**metrics, "window_loss": sum(m["loss"] for m in window) / len(window),
                       "window_accuracy": sum(m["accuracy"] for m in window) / len(window)}
            if "mismatch_loss" in metrics:
                metrics["window_mismatch_loss"] = sum(m["mismatch_loss"] for m in window) / len(window)
        elif metrics["kind"] == "eval":
            window.clear()
        on_metrics(metrics)

    t0 = time.perf_counter()
    summary = train(model_config, train_config, on_metrics=on_train)
    train_seconds = time.perf_counter() - t0
    bar.close()
    history = summary["history"]
    print(f"trained {summary['step']} steps ({summary['step'] * args.batch_size} pairs seen) in "
          f"{history[-1]['elapsed_s']:.1f} s of training loop (validation included), {train_seconds:.1f} s with model "
          f"building, data indexing and the final checkpoint")

    t0 = time.perf_counter()
    report = evaluate_checkpoint(summary["checkpoint"], data, split="test", batch_size=32, device="cpu")
    eval_seconds = time.perf_counter() - t0
    return {"model_config": to_dict(model_config), "train_config": to_dict(train_config),
            "steps": summary["step"], "train_loop_seconds": round(history[-1]["elapsed_s"], 1),
            "train_seconds": round(train_seconds, 1), "test_eval_seconds": round(eval_seconds, 1),
            "curve": curve, "test": report, "checkpoint": summary["checkpoint"],
            "train_history": [{k: m[k] for k in ("step", "loss", "accuracy", "lr", "elapsed_s")} for m in history]}


def write_outputs(out: Path, result: dict) -> None:
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str))
    with open(out / "curve.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(result["training"]["curve"][0]))
        writer.writeheader()
        writer.writerows(result["training"]["curve"])
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: the curve is in {out / 'curve.csv'} only")
        return
    curve = result["training"]["curve"]
    fig, ax = plt.subplots(figsize=(7, 4))
    minutes = [row["elapsed_s"] / 60 for row in curve]
    ax.plot(minutes, [row["train_accuracy"] for row in curve], label="train (mean since last eval)")
    ax.plot(minutes, [row["validation_accuracy"] for row in curve], label="validation")
    ax.axhline(0.9, color="grey", linestyle=":", label="goal 0.90")
    ax.set_xlabel("training time (min)")
    ax.set_ylabel("pairwise accuracy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=120)


def plot_runs(results: list[Path], path: Path) -> None:
    """Validation accuracy against training step for several runs' result.json, one line each (docs figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    for result_path in results:
        result = json.loads(Path(result_path).read_text())
        curve = result["training"]["curve"]
        run = result["args"]
        label = result["dataset"].get("diagnostic") or (f"platform data ({Path(run['data']).parent.name})"
                                                        if run.get("data") else "platform data")
        if result["dataset"].get("diagnostic") and run.get("block", 21) != 21:
            label += f", {run['block']} px blocks"
        if run.get("mismatch_weight"):
            label += f", mismatch {run['mismatch_weight']:g}"
        label += f", seed {run.get('seed', 0)}"
        test = result["training"]["test"]["overall"]["accuracy"]
        ax.plot([row["step"] for row in curve], [row["validation_accuracy"] for row in curve], marker=".",
                label=f"{label} (lr {run['lr']:g}, {result['training']['steps']} steps; test {test:.3f})")
    ax.axhline(0.9, color="grey", linestyle=":", label="goal 0.90")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8, label="chance")
    ax.set_xlabel("training step (8 pairs)")
    ax.set_ylabel("validation pairwise accuracy")
    ax.set_ylim(0.35, 1.02)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)  # below: no line hidden
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    print(f"plot: {path}")


def report(result: dict) -> None:
    test = result["training"]["test"]

    def cell(c):
        return f"{c['accuracy']:.3f} [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}] (n={c['n']})"

    print("\n=== held-out test split ===")
    print(f"pairwise accuracy overall: {cell(test['overall'])}")
    print(f"  1 edit:    {cell(test['1 edit'])}")
    print(f"  2-3 edits: {cell(test['2-3 edits'])}")
    for kind, c in test["by_relation"].items():
        print(f"  {kind:<12} {cell(c)}")
    print(f"mean score margin (winner - loser): {test['mean_margin']:.3f}")
    print(f"training: {result['training']['steps']} steps, {result['training']['train_loop_seconds']:.0f} s in the "
          f"training loop, validation included ({result['training']['train_seconds']:.0f} s with model loading and the "
          f"final checkpoint)")
    if "diagnostic" in result["dataset"]:
        print(f"diagnostic data ({result['dataset']['diagnostic']}): the goal is for platform-made data only")
        return
    goal = test["overall"]["accuracy"] >= 0.9
    print(f"goal: >= 0.90 test pairwise accuracy within 20 minutes of training: {'MET' if goal else 'MISSED'}")


def main() -> None:
    from ml.render.scene import BACK_SCALE, SHAPE_STYLES
    from ml.spatial.generator import AXES, STYLES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("dataset")
    data.add_argument("--out", default="/tmp/reward-learning", help="Folder for the export, the run and results.")
    data.add_argument("--data", default="", help="Reuse this Parquet export instead of making a new dataset.")
    data.add_argument("--make-only", action="store_true", help="Make the dataset and stop.")
    data.add_argument("--init-probe", action="store_true",
                      help="Instead of training, print how much the untrained score depends on the image.")
    data.add_argument("--diagnostic", choices=["one-object", "colour-side", "two-objects", "mixed",
                                                      "two-objects-nouns", "two-objects-rendered"], default="",
                      help="Instead of platform data, train on a diagnostic question drawn directly (see "
                           "diagnostic_dataset): where one block is, where the block of a named colour is, or "
                           "which of two coloured blocks is left of the other.")
    data.add_argument("--block", type=int, default=21, help="Side of the diagnostic questions' blocks (px).")
    data.add_argument("--prompts", type=int, default=6000, help="Generated prompts.")
    data.add_argument("--seeds", type=int, default=2, help="Pairs per perturbed prompt (renderer seeds).")
    data.add_argument("--style", default="short", choices=STYLES, help="The prompt generator's wording.")
    data.add_argument("--colours", default="some", choices=["some", "every"],
                      help="The generator's colour words: some objects (as people write) or every object.")
    data.add_argument("--axes", nargs="+", default=list(AXES), choices=AXES,
                      help="Directions the generated relations use.")
    data.add_argument("--object-scale", type=float, default=1.0, help="The scene renderer's object size factor.")
    data.add_argument("--back-scale", type=float, default=BACK_SCALE,
                      help="The scene renderer's perspective: drawn size at the back relative to the front.")
    data.add_argument("--shapes", default="varied", choices=SHAPE_STYLES,
                      help="The scene renderer's shapes: a shape per noun, or plain rectangles.")
    data.add_argument("--exact-colours", action=argparse.BooleanOptionalAction, default=False,
                      help="The scene renderer draws colour words in their exact shades (no jitter).")
    data.add_argument("--min-objects", type=int, default=2)
    data.add_argument("--max-objects", type=int, default=3)
    data.add_argument("--min-relations", type=int, default=1)
    data.add_argument("--max-relations", type=int, default=2)
    data.add_argument("--categories", nargs="*", default=["kitchen"],
                      help="Scene categories (default: kitchen: 14 object names, so each is seen often).")
    data.add_argument("--two-three", action=argparse.BooleanOptionalAction, default=True,
                      help="Also perturb with 2-3 edits (a second perturb_prompt_set run).")
    data.add_argument("--image-size", type=int, default=112, help="Rendered image width and height (px).")
    data.add_argument("--break-fraction", type=float, default=0.0)
    data.add_argument("--labels", action=argparse.BooleanOptionalAction, default=False,
                      help="Write object names on the rendered objects.")
    data.add_argument("--overlap", type=int, default=3, help="Simulated annotators per item.")
    data.add_argument("--quorum", type=int, default=2)
    data.add_argument("--seed", type=int, default=0)
    model = parser.add_argument_group("model and training")
    model.add_argument("--size", default="bench", help="Tiny backbone preset of ml/reward/tiny.py.")
    model.add_argument("--tokenizer", default="corpus", choices=["corpus", "bytes"],
                       help="corpus: a byte-level BPE trained on the training split's prompts (a word is one token, "
                            "as with Qwen's real vocabulary); bytes: one token per UTF-8 byte.")
    model.add_argument("--rope-theta", type=float, default=None,
                       help="The language model's rotary base (default: the preset's).")
    model.add_argument("--init-std", type=float, default=None,
                       help="Standard deviation of the backbone's random weights (default: the preset's).")
    model.add_argument("--pixels", type=int, default=112, help="The model's image side: min = max pixels = side^2.")
    model.add_argument("--lora-rank", type=int, default=32)
    model.add_argument("--lora-alpha", type=float, default=64.0)
    model.add_argument("--lora-dropout", type=float, default=0.0)
    model.add_argument("--head-dropout", type=float, default=0.0)
    model.add_argument("--head-hidden", type=int, default=64, help="Hidden width of the reward head (paper: 16).")
    model.add_argument("--train-vision", action=argparse.BooleanOptionalAction, default=True,
                       help="ModelConfig.train_vision: also train the (random, tiny) vision tower.")
    model.add_argument("--loss", default="bt", choices=["bt", "uncertainty"])
    model.add_argument("--mismatch-weight", type=float, default=0.0,
                       help="TrainConfig.mismatch_weight: the in-batch term (each prompt's winner image above "
                            "another pair's winner image).")
    model.add_argument("--lr", type=float, default=3e-4)
    model.add_argument("--warmup", type=int, default=50)
    model.add_argument("--schedule", default="cosine", choices=["cosine", "constant"])
    model.add_argument("--min-lr-ratio", type=float, default=0.1)
    model.add_argument("--weight-decay", type=float, default=0.0)
    model.add_argument("--batch-size", type=int, default=8, help="Pairs per step.")
    model.add_argument("--max-steps", type=int, default=8000,
                       help="Optimizer steps (the cosine schedule's length); --minutes stops earlier if reached.")
    model.add_argument("--minutes", type=float, default=20.0, help="Wall-clock budget of the training loop.")
    model.add_argument("--eval-every", type=int, default=500)
    model.add_argument("--max-eval-pairs", type=int, default=300,
                       help="Validation pairs per evaluation, counted in the time budget (0: all).")
    model.add_argument("--log-every", type=int, default=10)
    model.add_argument("--threads", type=int, default=1,
                       help="torch CPU threads. One: on 2 cores shared with other jobs, two threads were 3-5x slower "
                            "per step than one (they wait for each other whenever the other job takes a core).")
    parser.add_argument("--plot-runs", nargs="+", default=[], metavar="RESULT_JSON",
                        help="Only draw the validation curves of these runs' result.json into --out/runs.png.")
    args = parser.parse_args()

    out = Path(args.out)
    if args.plot_runs:
        out.mkdir(parents=True, exist_ok=True)
        plot_runs([Path(p) for p in args.plot_runs], out / "runs.png")
        return
    out.mkdir(parents=True, exist_ok=True)
    import torch  # noqa: F401 - imported before Django's set-up only to report its version below

    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
          f"torch {torch.__version__}, {args.threads} torch threads")
    result: dict = {"args": vars(args), "machine": {"arch": platform.machine(), "cpus": os.cpu_count(),
                                                      "python": platform.python_version(),
                                                      "torch": torch.__version__}}
    if args.diagnostic:
        data_path = diagnostic_dataset(args.diagnostic, out / f"diagnostic-{args.diagnostic}.parquet", seed=args.seed,
                                       block=args.block, style=renderer_style(args))
        result["dataset"] = {"diagnostic": args.diagnostic, "export": {"path": str(data_path)},
                             "splits": split_counts(data_path)}
        print(f"diagnostic data ({args.diagnostic}, drawn directly, not made by the platform): "
              f"{result['dataset']['splits']}")
    elif args.data:
        data_path = Path(args.data)
        result["dataset"] = {"export": {"path": str(data_path)}, "splits": split_counts(data_path)}
        print(f"reusing {data_path}: {result['dataset']['splits']}")
    else:
        var_dir = Path(os.environ.get("VAR_DIR") or tempfile.mkdtemp(prefix="reward-learning-var-"))
        setup_django(var_dir)
        from django.db import connection

        print(f"database: {connection.vendor} ({connection.settings_dict['NAME']}); VAR_DIR {var_dir}")
        data_path, result["dataset"] = make_dataset(args, out)
    if args.make_only:
        (out / "dataset.json").write_text(json.dumps(result, indent=1, default=str))
        return
    if args.init_probe:
        result["init_probe"] = init_probe(args, data_path, out)
        (out / "init_probe.json").write_text(json.dumps(result, indent=1, default=str))
        return
    result["training"] = train_and_evaluate(args, data_path, out)
    write_outputs(out, result)
    report(result)
    print(f"results: {out / 'result.json'}, {out / 'curve.csv'}")


if __name__ == "__main__":
    main()
