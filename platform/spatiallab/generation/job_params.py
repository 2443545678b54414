"""Parameters of the pair-generation job (validated by the shared job service before a job is stored)."""

from rest_framework import serializers

MAX_SEEDS = 64
# The keyword filters of selectors.pairs_filtered (the gallery's filters), as a job's stored selection names them.
PAIR_SELECTION_KEYS = ("job", "generator", "rule", "n_edits", "prompt_set", "ground_truth")


class GeneratePairsParams(serializers.Serializer):
    prompt_set = serializers.IntegerField(help_text="Id of the prompt set whose perturbed prompts are rendered.")
    generators = serializers.ListField(
        child=serializers.IntegerField(), min_length=1, max_length=10,
        help_text="Generator ids; every pair is made by each of them (the paper used three).",
    )
    seeds = serializers.IntegerField(min_value=1, max_value=MAX_SEEDS, default=1,
                                     help_text="Images per prompt pair: seeds seed, seed+1, ...")
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0, help_text="First seed.")
    rules = serializers.ListField(child=serializers.IntegerField(), default=list,
                                  help_text="Only perturbed prompts with an edit by one of these rules (empty: all).")
    n_edits = serializers.ChoiceField(choices=["", "1", "2-3"], default="", allow_blank=True,
                                      help_text="Only perturbed prompts with 1 edit, or with 2-3 (empty: both).")
    limit = serializers.IntegerField(min_value=0, default=0,
                                     help_text="At most this many perturbed prompts, in order (0: all).")

    def validate_prompt_set(self, value: int) -> int:
        from spatiallab.prompts.models import PromptSet

        if not PromptSet.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"No prompt set with id {value}.")
        return value

    def validate_generators(self, value: list[int]) -> list[int]:
        from spatiallab.generation.models import Generator

        ids = list(dict.fromkeys(value))
        found = dict(Generator.objects.filter(pk__in=ids).values_list("pk", "enabled"))
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise serializers.ValidationError(f"No generator with id {', '.join(missing)}.")
        disabled = [str(i) for i in ids if not found[i]]
        if disabled:
            raise serializers.ValidationError(f"Generator {', '.join(disabled)} is disabled.")
        return ids

    def validate_rules(self, value: list[int]) -> list[int]:
        from spatiallab.prompts.models import PerturbationRule

        ids = sorted(set(value))
        found = set(PerturbationRule.objects.filter(pk__in=ids).values_list("pk", flat=True))
        missing = [str(i) for i in ids if i not in found]
        if missing:
            raise serializers.ValidationError(f"No perturbation rule with id {', '.join(missing)}.")
        return ids

    def validate(self, attrs):
        from spatiallab.generation.selectors import generation_work

        if not generation_work(attrs).exists():
            raise serializers.ValidationError(
                {"prompt_set": "No perturbed prompts match: run a perturbation job on this set first, or widen "
                               "the rule / edit filters."})
        return attrs
