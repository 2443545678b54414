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
