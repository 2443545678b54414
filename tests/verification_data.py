"""Test data for verification: pairs stored through the real services (small solid-colour images, so that
tests and browsers load real files fast) and queues built over them."""

from PIL import Image

from spatiallab.generation.models import Pair
from spatiallab.generation.services import GeneratedPair, pairs_store
from spatiallab.prompts.models import PerturbedPrompt
from spatiallab.verification.services import queue_create
from tests.factories import GeneratorFactory
from tests.generation_data import perturbed_prompt_set


def make_pairs(count: int, *, seeds_per_prompt: int = 1, ground_truth: bool | None = True, generator=None,
               size: int = 32, name: str | None = None) -> list[Pair]:
    """`count` pairs from a generated, perturbed prompt set; winner images red, loser images blue."""
    prompt_set = perturbed_prompt_set(count=max(4, count // seeds_per_prompt * 2 + 2), name=name)
    generator = generator or GeneratorFactory()
    perturbed = list(PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).order_by("pk"))
    items = []
    for p in perturbed:
        for seed in range(seeds_per_prompt):
            if len(items) == count:
                break
            items.append(GeneratedPair(perturbed_id=p.pk, prompt_id=p.prompt_id, n_edits=p.n_edits, seed=seed,
                                       winner=Image.new("RGB", (size, size), "red"),
                                       loser=Image.new("RGB", (size, size), "blue"),
                                       meta={"seed": seed}, ground_truth_ok=ground_truth))
    assert len(items) == count, f"only {len(items)} perturbed prompts for {count} pairs"
    pairs_store(job=None, generator=generator, pairs=items)
    return list(Pair.objects.filter(generator=generator).order_by("pk"))


def make_queue(pairs, *, name: str = "queue", overlap: int = 3, **options):
    """A queue over every pair of these pairs' generator (make_pairs gives each call its own generator)."""
    generator_ids = {pair.generator_id for pair in pairs}
    assert len(generator_ids) == 1
    return queue_create(name=name, overlap=overlap, selection={"generator": generator_ids.pop()}, **options).queue
