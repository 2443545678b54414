"""Shared by the hypothesis tests of the generator and the perturbation engine."""

from hypothesis import reject

from ml.spatial.generator import GeneratedPrompt, generate_prompt


def feasible_prompt(*, seed: int, n_objects: int, n_relations: int, **kwargs) -> GeneratedPrompt:
    """generate_prompt, with the generator's one documented limit taken out of the search space: 10-11
    relations about objects with long names may not fit in a long prompt's 120 words (about 1 draw in 240 at
    11 relations; callers then ask for fewer). Any other error is a bug and is raised."""
    try:
        return generate_prompt(seed=seed, n_objects=n_objects, n_relations=n_relations, **kwargs)
    except ValueError as exc:
        if n_relations >= 10 and "cannot write" in str(exc):
            reject()
        raise
