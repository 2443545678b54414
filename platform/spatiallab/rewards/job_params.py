"""Parameters of the reward-model jobs (validated by the shared job service before a job is stored)."""

from rest_framework import serializers

from spatiallab.generation.job_params import PAIR_SELECTION_KEYS


def _exists(model_name: str, value: int, what: str) -> int:
    from django.apps import apps

    if not apps.get_model("rewards", model_name).objects.filter(pk=value).exists():
        raise serializers.ValidationError(f"No {what} {value}.")
    return value


class TrainRewardParams(serializers.Serializer):
    run = serializers.IntegerField(help_text="Id of the reward run to train.")
    resume = serializers.BooleanField(required=False, help_text="Continue from the run's last complete checkpoint.")

    def validate_run(self, value: int) -> int:
        return _exists("RewardRun", value, "reward run")


class EvaluateRewardParams(serializers.Serializer):
    evaluation = serializers.IntegerField(help_text="Id of the reward evaluation to compute.")

    def validate_evaluation(self, value: int) -> int:
        return _exists("RewardEvaluation", value, "reward evaluation")


class ScorePairsParams(serializers.Serializer):
    checkpoint = serializers.IntegerField(help_text="Id of the reward checkpoint that scores.")
    queue = serializers.IntegerField(required=False, help_text="Score the undecided regular items of this queue.")
    order_by = serializers.ChoiceField(choices=["sigma", "margin"], required=False,
                                       help_text="With queue: then serve its open items in this order.")
    selection = serializers.DictField(required=False, help_text=f"Else the pairs matching these gallery filters "
                                                                f"({', '.join(PAIR_SELECTION_KEYS)}), newest first.")
    limit = serializers.IntegerField(min_value=1, max_value=100_000, default=2_000,
                                     help_text="Score at most this many pairs (newest first).")

    def validate_checkpoint(self, value: int) -> int:
        return _exists("RewardCheckpoint", value, "reward checkpoint")

    def validate_queue(self, value: int) -> int:
        from spatiallab.verification.models import VerificationQueue

        if not VerificationQueue.objects.filter(pk=value).exists():
            raise serializers.ValidationError(f"No verification queue {value}.")
        return value

    def validate(self, attrs):
        if ("queue" in attrs) == ("selection" in attrs):
            raise serializers.ValidationError({"queue": "Give either queue or selection."})
        if "order_by" in attrs and "queue" not in attrs:
            raise serializers.ValidationError({"order_by": "Only a queue is ordered."})
        return attrs

    def validate_selection(self, value: dict) -> dict:
        unknown = set(value) - set(PAIR_SELECTION_KEYS)
        if unknown:
            raise serializers.ValidationError(f"Unknown filters: {', '.join(sorted(unknown))}.")
        clean = {}
        for key, item in value.items():
            if item in (None, ""):
                continue
            if key == "ground_truth":
                if not isinstance(item, bool):
                    raise serializers.ValidationError("ground_truth must be true or false.")
            elif key == "n_edits" and item in ("1", "2-3"):
                pass
            elif not (isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= 2**63 - 1):
                raise serializers.ValidationError(f"{key} must be a positive id" +
                                                  (" or '1' / '2-3'." if key == "n_edits" else "."))
            clean[key] = item
        return clean


class ScoreImagesParams(serializers.Serializer):
    request = serializers.IntegerField(help_text="Id of the score request to compute.")

    def validate_request(self, value: int) -> int:
        return _exists("ScoreRequest", value, "score request")
