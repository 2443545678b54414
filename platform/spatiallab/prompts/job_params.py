"""Parameters of the prompt jobs (validated by the shared job service before a job is stored)."""

from rest_framework import serializers


class PerturbPromptSetParams(serializers.Serializer):
    prompt_set = serializers.IntegerField(help_text="Id of the prompt set to perturb.")
    rules = serializers.ListField(
        child=serializers.IntegerField(), default=list, help_text="Rule ids; empty means every enabled rule."
    )
    edits = serializers.ChoiceField(choices=["1", "2-3"], default="1",
                                    help_text="Edits per perturbed prompt: the paper's two subsets.")
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    variants = serializers.IntegerField(min_value=1, max_value=10, default=1,
                                        help_text="Perturbed prompts to try per prompt.")

    def validate_prompt_set(self, value: int) -> int:
        from spatiallab.prompts.models import PromptSet

        if not PromptSet.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"No prompt set with id {value}.")
        return value

    def validate_rules(self, value: list[int]) -> list[int]:
        from django.core.exceptions import ValidationError

        from spatiallab.prompts.services import rules_selected

        try:
            rules = rules_selected(value)
        except ValidationError as exc:
            raise serializers.ValidationError(exc.message_dict["rules"]) from None
        return sorted(rule.pk for rule in rules)
