"""The launch form: the run's name, the base generator, the reward (a SpatialScore checkpoint or a programmatic
reward), the prompt sets, and the settings researchers change most, pre-filled with the paper's defaults
(everything else keeps its default; the API takes all)."""

from django import forms

from spatiallab.generation.models import Backend, Generator
from spatiallab.grpo.defaults import CHOICES, DEFAULTS, PROGRAMMATIC_REWARDS
from spatiallab.prompts.models import PromptSet
from spatiallab.rewards.models import RewardCheckpoint

# (setting, label, help): the settings on the form.
FORM_SETTINGS = (
    ("group_size", "Group size G", "Images sampled and scored per prompt (paper: 24)."),
    ("top_k", "Top-k", "Train on the k best and k worst of each group (paper: 6; G/2 or 0: no filtering)."),
    ("sample_steps", "Training denoising steps", "SDE steps when sampling for training (paper: 6)."),
    ("eval_steps", "Evaluation denoising steps", "ODE steps of the evaluation samples (paper: 28)."),
    ("lr", "Learning rate", "AdamW learning rate of the LoRA weights (paper: 3e-4)."),
    ("clip_range", "Clip range", "epsilon of the clipped probability ratio (paper: 1e-4)."),
    ("beta", "KL coefficient beta", "Weight of the KL to the base model (paper: 0.01)."),
    ("lora_rank", "LoRA rank", "Rank of the adapters on the transformer's attention (paper: 32)."),
    ("lora_alpha", "LoRA alpha", "The adapter's scale is alpha / rank."),
    ("prompts_per_step", "Prompts per step", "Groups sampled per GRPO step."),
    ("max_steps", "GRPO steps", "Steps of the run."),
    ("eval_every", "Evaluate every", "GRPO steps between evaluations (plus step 0 and the end; 0: only the end)."),
    ("eval_seeds", "Seeds per eval prompt", "Images per held-out prompt, the same seeds at every evaluation."),
    ("save_every", "Checkpoint every", "GRPO steps between checkpoints (and at the end)."),
    ("height", "Height", "Image height in pixels (a multiple of 16)."),
    ("width", "Width", "Image width in pixels (a multiple of 16)."),
    ("seed", "Seed", "Seeds the LoRA initialisation, prompt order and every sample's noise."),
)


class RunCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    generator = forms.ModelChoiceField(queryset=Generator.objects.none(), help_text="A diffusers generator (its "
                                       "pipeline folder is fine-tuned with LoRA).")
    reward_checkpoint = forms.ModelChoiceField(queryset=RewardCheckpoint.objects.none(), required=False,
                                               help_text="SpatialScore: a reward-model checkpoint.")
    reward = forms.ChoiceField(required=False, label="Or a programmatic reward",
                               choices=[("", "—")] + [(name, name) for name in PROGRAMMATIC_REWARDS])
    train_prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.none(), label="Training prompts")
    eval_prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.none(), label="Held-out evaluation prompts")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["generator"].queryset = Generator.objects.filter(backend=Backend.DIFFUSERS).order_by("name")
        checkpoints = self.fields["reward_checkpoint"]
        checkpoints.queryset = RewardCheckpoint.objects.select_related("run").order_by("-run_id", "-step")
        checkpoints.label_from_instance = lambda c: f"{c.run.name} (run {c.run_id}) · step {c.step}"
        for key in ("train_prompt_set", "eval_prompt_set"):
            self.fields[key].queryset = PromptSet.objects.order_by("-created_at", "-id")
        for key, label, help_text in FORM_SETTINGS:
            default = DEFAULTS[key]
            if key in CHOICES:
                field = forms.ChoiceField(choices=[(c, c) for c in CHOICES[key]], initial=default)
            elif isinstance(default, float):
                field = forms.FloatField(initial=default)
            else:
                field = forms.IntegerField(initial=default)
            field.label, field.help_text = label, f"{help_text} Default: {default}."
            self.fields[key] = field

    def about_fields(self):
        return [self[name] for name in ("name", "generator", "reward_checkpoint", "reward", "train_prompt_set",
                                        "eval_prompt_set")]

    def setting_fields(self):
        return [self[key] for key, _, _ in FORM_SETTINGS]

    def config(self) -> dict:
        return {key: self.cleaned_data[key] for key, _, _ in FORM_SETTINGS}
