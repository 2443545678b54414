"""The launch form: the run's name, a frozen dataset version, the backbone folder, and the settings researchers
change most, each pre-filled with the paper's default (everything else keeps its default; the API takes all)."""

from django import forms

from spatiallab.datasets.models import DatasetVersion, VersionStatus
from spatiallab.rewards.defaults import CHOICES, MODEL_DEFAULTS, TRAIN_DEFAULTS

# (section, setting, label, help): the settings on the form.
FORM_SETTINGS = (
    ("train", "lr", "Learning rate", "Peak learning rate (paper: 2e-6 for the 7B backbone at batch 32)."),
    ("train", "batch_size", "Batch size", "Preference pairs per micro-step."),
    ("train", "grad_accum", "Gradient accumulation", "Micro-steps per optimizer step."),
    ("train", "max_steps", "Max steps", "Optimizer steps (0: epochs decide)."),
    ("train", "epochs", "Epochs", "Passes over the training split when max steps is 0."),
    ("train", "warmup_steps", "Warm-up steps", "Linear warm-up from 0 to the learning rate."),
    ("train", "loss", "Loss", "bt: Bradley-Terry (the paper); uncertainty: HPSv3's Gaussian loss."),
    ("train", "eval_every", "Evaluate every", "Optimizer steps between evaluations (0: only at the end)."),
    ("train", "save_every", "Checkpoint every", "Optimizer steps between checkpoints (and at the end)."),
    ("train", "seed", "Seed", "Seeds the new weights, the data order and dropout."),
    ("model", "lora_rank", "LoRA rank", "Rank of the adapters on the language model's linear layers."),
    ("model", "lora_alpha", "LoRA alpha", "The adapter's scale is alpha / rank."),
)


class RunCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    dataset_version = forms.ModelChoiceField(queryset=DatasetVersion.objects.none(),
                                             help_text="Frozen versions only.")
    base_model = forms.CharField(max_length=1000, help_text="Local folder of the backbone (absolute, or relative to "
                                                            "the models volume), as written by save_pretrained.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset_version"].queryset = DatasetVersion.objects.filter(
            status=VersionStatus.FROZEN).order_by("-created_at")
        for section, key, label, help_text in FORM_SETTINGS:
            default = (MODEL_DEFAULTS if section == "model" else TRAIN_DEFAULTS)[key]
            help_text = f"{help_text} Default: {default}."
            if key in CHOICES:
                field = forms.ChoiceField(choices=[(c, c) for c in CHOICES[key]], initial=default)
            elif isinstance(default, float):
                field = forms.FloatField(initial=default)
            else:
                field = forms.IntegerField(initial=default)
            field.label, field.help_text = label, help_text
            self.fields[key] = field

    def about_fields(self):
        return [self[name] for name in ("name", "dataset_version", "base_model")]

    def setting_fields(self):
        return [self[key] for _, key, _, _ in FORM_SETTINGS]

    def configs(self) -> tuple[dict, dict]:
        model, train = {}, {}
        for section, key, _, _ in FORM_SETTINGS:
            (model if section == "model" else train)[key] = self.cleaned_data[key]
        return model, train


SPLIT_CHOICES = [("test", "test"), ("validation", "validation"), ("train", "train"), ("", "every entry")]


class EvaluationForm(forms.Form):
    """Evaluate one of a run's checkpoints on a split of a frozen dataset version."""

    checkpoint = forms.ModelChoiceField(queryset=None, empty_label=None)
    dataset_version = forms.ModelChoiceField(queryset=DatasetVersion.objects.none(), empty_label=None,
                                             help_text="Frozen versions only.")
    split = forms.ChoiceField(choices=SPLIT_CHOICES, initial="test", required=False)

    def __init__(self, *args, run, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["checkpoint"].queryset = run.checkpoints.order_by("-step")
        self.fields["checkpoint"].label_from_instance = lambda checkpoint: f"step {checkpoint.step}"
        self.fields["dataset_version"].queryset = (DatasetVersion.objects.filter(status=VersionStatus.FROZEN)
                                                   .order_by("-created_at", "-id"))
        self.fields["dataset_version"].initial = run.dataset_version_id


def checkpoint_label(checkpoint) -> str:
    return f"{checkpoint.run.name} (run {checkpoint.run_id}) · step {checkpoint.step}"


def checkpoint_choices():
    from spatiallab.rewards.models import RewardCheckpoint

    return RewardCheckpoint.objects.select_related("run").order_by("-run_id", "-step")


class QueueOrderForm(forms.Form):
    """Serve a verification queue's open items by a checkpoint's uncertainty."""

    checkpoint = forms.ModelChoiceField(queryset=None, empty_label=None, help_text="The reward checkpoint that scores "
                                        "the queue's undecided pairs.")
    order_by = forms.ChoiceField(label="Order", choices=[("sigma", "Most uncertain first (largest sigma)"),
                                                         ("margin", "Closest call first (smallest margin)")])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["checkpoint"].queryset = checkpoint_choices()
        self.fields["checkpoint"].label_from_instance = checkpoint_label


class ScorePairsForm(forms.Form):
    """Score the pairs the gallery shows with a checkpoint (a score_pairs job)."""

    checkpoint = forms.ModelChoiceField(queryset=None, empty_label=None)
    limit = forms.IntegerField(min_value=1, max_value=100_000, initial=2_000,
                               help_text="At most this many pairs, newest first.")
    selection = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["checkpoint"].queryset = checkpoint_choices()
        self.fields["checkpoint"].label_from_instance = checkpoint_label
