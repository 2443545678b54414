"""Benchmarks of the prompt pipeline (issue: parse + perturb >= 5,000 prompts/s on one core for 60-word
prompts; importing 100,000 prompts into PostgreSQL in under 30 s).

    python benchmarks/prompts.py throughput [--prompts 5000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spatiallab_bench \
        python benchmarks/prompts.py import [--prompts 100000]

`throughput` needs no database. `import` migrates the database DATABASE_URL names, stores one prompt set of
generated prompts through the same service the upload uses (parse + bulk insert, one transaction), prints the
time, and deletes the set again. Figures are recorded in docs/benchmarks.md.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]


def sixty_word_prompts(count: int, seed: int = 7) -> list[str]:
    """Generated long prompts of 55-65 words (the paper's peak is about 60)."""
    from ml.spatial.generator import generate_prompt

    prompts, attempt = [], 0
    while len(prompts) < count:
        attempt += 1
        p = generate_prompt(seed=seed * 1_000_003 + attempt, n_objects=5, n_relations=5, style="long")
        if 55 <= len(p.text.split()) <= 65:
            prompts.append(p.text)
    return prompts


def throughput(count: int) -> None:
    from ml.spatial.parser import parse
    from ml.spatial.perturb import PerturbationError, Rule, RuleKind, perturb

    texts = sixty_word_prompts(count)
    words = sum(len(t.split()) for t in texts) / len(texts)
    rules = [Rule(kind=RuleKind.FLIP_DIRECTION, weight=3.0), Rule(kind=RuleKind.SWAP_OBJECTS, weight=2.0),
             Rule(kind=RuleKind.MOVE_ANCHOR)]
    from ml.spatial import parser as parser_module

    def clear_cache():
        parser_module._SENTENCE_CACHE.clear()

    def run(with_perturb: bool, cold: bool) -> tuple[float, int]:
        """Seconds for all texts, and how many had no applicable edit. Cold: the parser's sentence cache is
        cleared before every prompt (no sentence seen before, the worst case); warm: the cache persists as in
        a long run where prompts share sentences."""
        clear_cache()
        rejected = 0
        start = time.perf_counter()
        for i, text in enumerate(texts):
            if cold:
                clear_cache()
            graph = parse(text)
            if with_perturb:
                try:
                    perturb(text, rules=rules, n_edits=1, seed=i, graph=graph)  # edits, re-parses to verify
                except PerturbationError:
                    rejected += 1
        return time.perf_counter() - start, rejected

    for text in texts[:200]:  # warm-up of the interpreter, not of the measured cache
        parse(text)
    parse_s, _ = run(with_perturb=False, cold=True)
    both_s, rejected = run(with_perturb=True, cold=True)
    warm_s, _ = run(with_perturb=True, cold=False)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, one process")
    print(f"prompts: {len(texts)}, mean {words:.1f} words")
    n = len(texts)
    print(f"parse only, cold cache:              {n / parse_s:8,.0f} prompts/s  ({parse_s / n * 1e6:.0f} us each)")
    print(f"parse + perturb + verify, cold:      {n / both_s:8,.0f} prompts/s  ({both_s / n * 1e6:.0f} us each)"
          f"  [{rejected} without an applicable edit]")
    print(f"parse + perturb + verify, warm:      {n / warm_s:8,.0f} prompts/s  ({warm_s / n * 1e6:.0f} us each)")
    print(f"goal: >= 5,000 prompts/s (cold) -> {'met' if n / both_s >= 5000 else 'MISSED'}")


def import_prompts(count: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spatiallab.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from spatiallab.prompts.models import PromptSet
    from spatiallab.prompts.services import GeneratorSettings, generated_prompts, prompt_set_create_from_file

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    start = time.perf_counter()
    incoming = list(generated_prompts(GeneratorSettings(count=count, seed=11, min_objects=3, max_objects=10,
                                                        min_relations=2, max_relations=9)))
    print(f"generated {len(incoming):,} prompts in {time.perf_counter() - start:.1f} s (not counted)")
    data = "\n".join(json.dumps({"text": p.text, "category": p.category}) for p in incoming).encode()
    print(f"as one JSONL file of {len(data) / 1e6:.1f} MB")
    name = f"benchmark import {time.time():.0f}"
    start = time.perf_counter()
    # The upload path: read and validate the file, parse every prompt, insert, one transaction.
    created = prompt_set_create_from_file(name=name, data=data, filename="benchmark.jsonl")
    elapsed = time.perf_counter() - start
    print(f"imported {created.created:,} prompts ({created.duplicates} duplicates skipped) in {elapsed:.1f} s: "
          f"{created.created / elapsed:,.0f} prompts/s (read + validate + parse + insert, one transaction)")
    print(f"goal: 100,000 in < 30 s -> {'met' if elapsed * 100_000 / max(count, 1) < 30 else 'MISSED'}")
    PromptSet.objects.filter(name=name).delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["throughput", "import"])
    parser.add_argument("--prompts", type=int, default=None)
    args = parser.parse_args()
    if args.what == "throughput":
        throughput(args.prompts or 5000)
    else:
        import_prompts(args.prompts or 100_000)


if __name__ == "__main__":
    main()
