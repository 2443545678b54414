"""Prompt-set services: uploads parsed and stored whole or not at all, the generator, rules, and the
perturbation run as a real job on a real Celery worker (re-running with the same seed adds nothing)."""

import json

import pytest
from django.core.exceptions import ValidationError

from spatiallab.jobs.models import Job, JobStatus
from spatiallab.jobs.services import job_create
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule, PerturbedPrompt, Prompt, PromptSet
from spatiallab.prompts.services import (
    GeneratorSettings,
    edit_count,
    perturb_text,
    perturbation_rule_create,
    perturbation_rule_update,
    perturbed_prompts_store,
    prompt_set_create,
    prompt_set_create_from_file,
    prompt_set_generate,
    rules_selected,
)
from tests.worker_procs import wait_for

PROMPTS = [
    "The red mug is to the left of the laptop. A lamp stands behind the laptop.",
    "A wooden chair is in front of the desk, and a globe is on top of the desk.",
    "Three books are next to the lamp. The plant is above the sofa.",
]


@pytest.mark.django_db
class TestPromptSets:
    def test_upload_stores_every_prompt_with_its_parsed_graph_and_stats(self, researcher):
        data = "\n".join(json.dumps({"text": t, "category": "office desk"}) for t in PROMPTS).encode()
        result = prompt_set_create_from_file(name="desk", data=data, filename="desk.jsonl", created_by=researcher)
        assert (result.created, result.duplicates) == (3, 0)
        first = Prompt.objects.get(prompt_set=result.prompt_set, position=0)
        assert first.source_line == 1 and first.category == "office desk"
        assert first.relation_count == 2 and first.object_count == 3
        assert first.relation_kinds == {"left_of": 1, "behind": 1}
        assert first.unparsed_count == 0 and first.word_count == 16
        assert {o["name"] for o in first.graph["objects"]} == {"mug", "laptop", "lamp"}
        assert result.prompt_set.source == "upload: desk.jsonl"
        assert result.prompt_set.source_info["prompts"] == 3

    def test_duplicates_by_normalised_text_are_counted_and_skipped(self):
        result = prompt_set_create(name="dups", prompts=[PROMPTS[0], PROMPTS[0].upper(), "  " + PROMPTS[1], PROMPTS[1]])
        assert (result.created, result.duplicates) == (2, 2)
        assert list(result.prompt_set.prompts.values_list("position", flat=True)) == [0, 1]

    def test_a_bad_line_stores_nothing_and_names_the_line(self):
        data = f'{json.dumps({"text": PROMPTS[0]})}\n{{"text": 3}}\n'.encode()
        with pytest.raises(ValidationError) as info:
            prompt_set_create_from_file(name="bad", data=data, filename="bad.jsonl")
        assert info.value.message_dict["file"] == ["line 2: the prompt must be a string, not int"]
        assert PromptSet.objects.count() == 0 and Prompt.objects.count() == 0

    def test_names_are_unique_and_required(self):
        prompt_set_create(name="taken", prompts=PROMPTS[:1])
        with pytest.raises(ValidationError) as info:
            prompt_set_create(name="taken", prompts=PROMPTS[1:])
        assert "already exists" in info.value.message_dict["name"][0]
        with pytest.raises(ValidationError):
            prompt_set_create(name="  ", prompts=PROMPTS)
        assert PromptSet.objects.count() == 1

    def test_generator_is_deterministic_and_its_prompts_parse_completely(self):
        settings = GeneratorSettings(count=25, seed=3, min_objects=3, max_objects=6, min_relations=2,
                                     max_relations=5, categories=("kitchen", "garden"))
        a = prompt_set_generate(name="gen a", settings=settings)
        b = prompt_set_generate(name="gen b", settings=settings)
        texts_a = list(a.prompt_set.prompts.values_list("text", flat=True))
        assert texts_a == list(b.prompt_set.prompts.values_list("text", flat=True))
        assert a.created + a.duplicates == 25
        prompts = list(a.prompt_set.prompts.all())
        assert all(p.category in ("kitchen", "garden") for p in prompts)
        assert all(p.unparsed_count == 0 and p.relation_count >= 2 for p in prompts)

    def test_generator_settings_are_validated_field_by_field(self):
        with pytest.raises(ValidationError) as info:
            GeneratorSettings(count=0, min_objects=5, max_objects=3, categories=("moon",), style="epic",
                              colours="rainbow", axes=("sideways",)).validate()
        assert set(info.value.message_dict) == {"count", "max_objects", "categories", "style", "colours", "axes"}
        assert info.value.message_dict["colours"] == ["must be one of 'some', 'every'."]
        assert info.value.message_dict["style"] == ["must be one of 'short', 'long', 'plain'."]
        assert info.value.message_dict["axes"] == [
            "must be a non-empty list drawn from horizontal, depth, vertical; got ('sideways',)."]
        with pytest.raises(ValidationError) as info:
            GeneratorSettings(count=1, axes=()).validate()
        assert set(info.value.message_dict) == {"axes"}


@pytest.mark.django_db
class TestRules:
    def test_default_rules_exist_one_per_kind(self):
        assert set(PerturbationRule.objects.values_list("kind", flat=True)) == {
            "flip_direction", "swap_objects", "reverse_sequence", "rotate_sequence", "move_anchor"}

    def test_bad_rules_are_refused_naming_the_field(self):
        with pytest.raises(ValidationError) as info:
            perturbation_rule_create(name="x", kind="teleport")
        assert "kind" in info.value.message_dict
        with pytest.raises(ValidationError) as info:
            perturbation_rule_create(name="x", kind="flip_direction", weight=0)
        assert "weight" in info.value.message_dict
        with pytest.raises(ValidationError) as info:
            perturbation_rule_create(name="x", kind="flip_direction", params={"axes": ["sideways"]})
        assert "params" in info.value.message_dict
        rule = perturbation_rule_create(name="only left-right", kind="flip_direction", params={"axes": ["horizontal"]})
        with pytest.raises(ValidationError):
            perturbation_rule_update(rule=rule, weight=-1)
        rule.refresh_from_db()
        assert rule.weight == 1.0

    def test_rule_selection(self):
        assert len(rules_selected([])) == 5
        rule = PerturbationRule.objects.get(name="Swap objects")
        perturbation_rule_update(rule=rule, enabled=False)
        assert len(rules_selected([])) == 4
        with pytest.raises(ValidationError, match="Disabled rules: Swap objects"):
            rules_selected([rule.pk])
        with pytest.raises(ValidationError, match="Unknown rule ids: 999"):
            rules_selected([999])

    def test_edit_subsets(self):
        assert {edit_count("1", seed) for seed in range(20)} == {1}
        assert {edit_count("2-3", s) for s in range(50)} == {2, 3}
        with pytest.raises(ValidationError):
            edit_count("4", 0)

    def test_perturb_text_flips_a_direction_and_reports_spans(self):
        rule = PerturbationRule.objects.get(name="Flip direction")
        result = perturb_text(text="The red mug is to the left of the laptop.", rules=[rule], seed=1)
        assert result.perturbed == "The red mug is to the right of the laptop."
        [edit] = result.edits
        assert result.original[edit.span_before.start:edit.span_before.end].endswith("left of")
        assert result.perturbed[edit.span_after.start:edit.span_after.end].endswith("right of")

    def test_perturb_text_without_relations_names_the_text_field(self):
        with pytest.raises(ValidationError) as info:
            perturb_text(text="A quiet sunny morning.", rules=list(PerturbationRule.objects.all()))
        assert "text" in info.value.message_dict

    def test_storing_the_same_perturbations_twice_adds_nothing(self):
        prompt_set = prompt_set_create(name="s", prompts=PROMPTS).prompt_set
        rules = list(PerturbationRule.objects.filter(kind="flip_direction"))
        items = [(p, perturb_text(text=p.text, rules=rules, seed=5)) for p in prompt_set.prompts.all()]
        by_name = {r.name: r for r in rules}
        assert perturbed_prompts_store(items=items, rules_by_name=by_name) == 3
        assert perturbed_prompts_store(items=items, rules_by_name=by_name) == 0
        assert PerturbedPrompt.objects.count() == 3 and PerturbationEdit.objects.count() == 3
        edit = PerturbationEdit.objects.select_related("rule").first()
        assert edit.rule.name == "Flip direction" and edit.rule_kind == "flip_direction"
        assert edit.relation_kind in {"left_of", "in_front_of", "next_to", "on_top_of", "above", "behind"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_stores_of_the_same_perturbations_keep_one_copy():
    """Two runs (or a redelivered job beside the first) storing the same results at the same moment."""
    import contextlib
    import threading

    from django.db import connection

    from spatiallab.prompts.defaults import ensure_default_rules

    ensure_default_rules(PerturbationRule)
    prompt_set = prompt_set_generate(name="race", settings=GeneratorSettings(count=30, seed=2)).prompt_set
    rules = list(PerturbationRule.objects.filter(kind="flip_direction"))
    items = []
    for prompt in prompt_set.prompts.all():
        with contextlib.suppress(ValidationError):  # a prompt without a flippable relation
            items.append((prompt, perturb_text(text=prompt.text, rules=rules, seed=1)))
    barrier, created, errors = threading.Barrier(3), [], []

    def store():
        try:
            barrier.wait()
            created.append(perturbed_prompts_store(items=items, rules_by_name={r.name: r for r in rules}))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=store) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(created) == len(items) == PerturbedPrompt.objects.count() > 20
    assert PerturbationEdit.objects.count() == len(items)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_perturbation_run_job_on_a_real_worker_is_idempotent_for_the_same_seed(workers, researcher):
    from spatiallab.prompts.defaults import ensure_default_rules

    ensure_default_rules(PerturbationRule)  # transactional tests flush the rows the data migration made
    prompt_set = prompt_set_generate(name="run", settings=GeneratorSettings(count=40, seed=9)).prompt_set
    rules = [r.pk for r in PerturbationRule.objects.filter(kind__in=["flip_direction", "swap_objects"])]
    workers.start()
    params = {"prompt_set": prompt_set.pk, "rules": rules, "edits": "2-3", "seed": 4, "variants": 2}

    first = job_create(kind="perturb_prompt_set", params=params, created_by=researcher)
    wait_for(lambda: Job.objects.get(pk=first.pk).status == JobStatus.SUCCEEDED, timeout=60, message="first run")
    first.refresh_from_db()
    stored = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()
    assert first.result["created"] == stored > 40
    assert first.progress_done == first.progress_total == 40
    assert set(PerturbedPrompt.objects.values_list("n_edits", flat=True)) <= {2, 3}
    for perturbed in PerturbedPrompt.objects.prefetch_related("edits").select_related("prompt")[:20]:
        assert perturbed.text != perturbed.prompt.text
        assert perturbed.edits.count() == perturbed.n_edits

    second = job_create(kind="perturb_prompt_set", params=params, created_by=researcher)
    wait_for(lambda: Job.objects.get(pk=second.pk).status == JobStatus.SUCCEEDED, timeout=60, message="re-run")
    second.refresh_from_db()
    assert second.result["created"] == 0
    assert PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count() == stored


@pytest.mark.django_db
def test_perturbation_job_params_are_checked_before_anything_is_stored(researcher):
    with pytest.raises(ValidationError) as info:
        job_create(kind="perturb_prompt_set", params={"prompt_set": 12345, "edits": "4"}, created_by=researcher)
    messages = " ".join(info.value.message_dict["params"])
    assert "prompt_set: No prompt set with id 12345." in messages and "edits:" in messages
    assert Job.objects.count() == 0
