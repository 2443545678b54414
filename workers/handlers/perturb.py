from collections import Counter

from ml.spatial.graph import SceneGraph
from ml.spatial.perturb import PerturbationError
from spatiallab.prompts.models import PerturbationRule, Prompt
from spatiallab.prompts.services import (
    perturb_for_subset,
    perturbation_seed,
    perturbed_prompts_store,
    rule_to_ml,
)

CHUNK = 500


def run_perturb_prompt_set(ctx) -> dict:
    """Applies the selected rules to every prompt of a set, chunk by chunk. The checkpoint is the next prompt
    position; the store skips perturbed prompts that already exist, so a resumed or repeated run adds nothing
    twice."""
    params = ctx.params
    rules = list(PerturbationRule.objects.filter(pk__in=params["rules"]))
    ml_rules = [rule_to_ml(rule) for rule in rules]
    by_name = {rule.name: rule for rule in rules}
    prompts = Prompt.objects.filter(prompt_set_id=params["prompt_set"]).order_by("position")
    total = prompts.count()
    state = {"next_position": 0, "created": 0, "rejected": 0, "reasons": {}, **ctx.checkpoint}
    reasons = Counter(state["reasons"])
    done = prompts.filter(position__lt=state["next_position"]).count()
    ctx.progress(done, total=total, message="resuming" if done else "starting")
    while True:
        chunk = list(prompts.filter(position__gte=state["next_position"])
                     .only("pk", "position", "text", "graph")[:CHUNK])
        if not chunk:
            break
        items = []
        for prompt in chunk:
            graph = SceneGraph.from_dict(prompt.graph, text=prompt.text) if prompt.graph else None
            for variant in range(params["variants"]):
                seed = perturbation_seed(params["seed"], prompt.position, variant)
                try:
                    result = perturb_for_subset(prompt.text, rules=ml_rules, edits=params["edits"], seed=seed,
                                                graph=graph)
                except PerturbationError as exc:
                    state["rejected"] += 1
                    reasons.update({r.reason.split(":")[0] for r in exc.reasons} or {"no applicable edit"})
                else:
                    items.append((prompt, result))
        state["created"] += perturbed_prompts_store(items=items, rules_by_name=by_name, job=ctx.claim.job)
        state["next_position"] = chunk[-1].position + 1
        state["reasons"] = dict(reasons.most_common(20))
        done += len(chunk)
        ctx.progress(done, message=f"{state['created']} perturbed prompts", checkpoint=state)
    return {"prompt_set": params["prompt_set"], "prompts": total, "created": state["created"],
            "rejected": state["rejected"], "rejection_reasons": state["reasons"]}
