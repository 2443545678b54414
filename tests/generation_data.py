"""Test data for pair generation: a generated prompt set whose prompts are perturbed in-process with the
default rules (the same services the perturbation job uses)."""

from ml.spatial.graph import SceneGraph
from ml.spatial.perturb import PerturbationError
from spatiallab.prompts.defaults import ensure_default_rules
from spatiallab.prompts.models import PerturbationRule, PerturbedPrompt, PromptSet
from spatiallab.prompts.services import (
    GeneratorSettings,
    perturb_for_subset,
    perturbed_prompts_store,
    prompt_set_generate,
    rule_to_ml,
)


def perturbed_prompt_set(*, count: int, seed: int = 1, edits: str = "1", max_objects: int = 5,
                         max_relations: int = 4, name: str | None = None) -> PromptSet:
    ensure_default_rules(PerturbationRule)  # transactional tests flush the rows the data migration made
    rules = list(PerturbationRule.objects.filter(enabled=True))
    prompt_set = prompt_set_generate(
        name=name or f"generated-{count}-{seed}",
        settings=GeneratorSettings(count=count, seed=seed, min_objects=3 if edits == "2-3" else 2,
                                   max_objects=max(max_objects, 4), min_relations=3 if edits == "2-3" else 1,
                                   max_relations=max(max_relations, 4)),
    ).prompt_set
    items = []
    for prompt in prompt_set.prompts.order_by("position"):
        try:
            items.append((prompt, perturb_for_subset(prompt.text, rules=[rule_to_ml(r) for r in rules], edits=edits,
                                                     seed=seed + prompt.position,
                                                     graph=SceneGraph.from_dict(prompt.graph, text=prompt.text))))
        except PerturbationError:
            continue
    perturbed_prompts_store(items=items, rules_by_name={r.name: r for r in rules})
    assert PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count() >= max(1, count // 2)
    return prompt_set
