"""Forms of the prompt-set pages. They check shapes and ranges; the services check everything again and their
ValidationErrors are put back on the form's fields by `add_service_errors`."""

import json

from django import forms
from django.core.exceptions import ValidationError

from ml.spatial.generator import AXES, CATEGORIES, COLOUR_MODES, STYLES
from ml.spatial.graph import RelationKind
from spatiallab.prompts.importers import FORMATS, MAX_PROMPT_CHARS
from spatiallab.prompts.models import PerturbationRule, RuleKind
from spatiallab.prompts.services import AXES_HELP, COLOURS_HELP, EDIT_SUBSETS, STYLE_HELP, GeneratorSettings

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# The browser waits for the generator: bigger sets belong in a job or the command line.
WEB_MAX_GENERATED = 20_000
MAX_SEED = 2**31 - 1
RELATION_KIND_CHOICES = [("", "any relation")] + [(k.value, k.value.replace("_", " ")) for k in RelationKind]
EDIT_CHOICES = [(key, f"{key} edit" if key == "1" else f"{key} edits") for key in EDIT_SUBSETS]


def _category_choices():
    return [(str(c), str(c).replace("_", " ")) for c in CATEGORIES]


def add_service_errors(form: forms.Form, exc: ValidationError, *, aliases: dict[str, str] | None = None) -> None:
    """Puts a service's ValidationError on the form: each key on the field of that name (or its alias), messages
    of the form "field: message" under "params" (the job service's shape) on that field, the rest on the form."""
    aliases = aliases or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for key, errors in exc.message_dict.items():
        key = aliases.get(key, key)
        for message in errors:
            name, _, rest = message.partition(": ")
            if key == "params" and name in form.fields and rest:
                form.add_error(name, rest)
            elif key in form.fields:
                form.add_error(key, message)
            else:
                form.add_error(None, f"{key}: {message}" if key != "__all__" else message)


class PromptSetUploadForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    file = forms.FileField(help_text="JSONL (one {\"text\": ...} per line), CSV with a text column, or plain text "
                                     "with one prompt per line.")
    file_format = forms.ChoiceField(
        label="Format", required=False, choices=[("", "from the file name")] + [(f, f) for f in FORMATS]
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(f"The file has {upload.size} bytes; the limit is {MAX_UPLOAD_BYTES} bytes.")
        return upload


class PromptSetGenerateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    count = forms.IntegerField(min_value=1, max_value=WEB_MAX_GENERATED, initial=100)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=0)
    min_objects = forms.IntegerField(min_value=2, max_value=12, initial=3)
    max_objects = forms.IntegerField(min_value=2, max_value=12, initial=8)
    min_relations = forms.IntegerField(min_value=1, max_value=11, initial=2)
    max_relations = forms.IntegerField(min_value=1, max_value=11, initial=7)
    categories = forms.MultipleChoiceField(
        required=False, choices=_category_choices, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all categories.",
    )
    style = forms.ChoiceField(choices=[(style, style) for style in sorted(STYLES)], initial="long",
                              help_text=STYLE_HELP)
    colours = forms.ChoiceField(choices=[(mode, mode) for mode in COLOUR_MODES], initial="some", required=False,
                                help_text=COLOURS_HELP)
    axes = forms.MultipleChoiceField(required=False, choices=[(axis, axis) for axis in AXES],
                                     widget=forms.CheckboxSelectMultiple, help_text=AXES_HELP)

    def settings(self) -> GeneratorSettings:
        data = self.cleaned_data
        return GeneratorSettings(
            count=data["count"], seed=data["seed"], min_objects=data["min_objects"],
            max_objects=data["max_objects"], min_relations=data["min_relations"],
            max_relations=data["max_relations"], categories=tuple(data["categories"]), style=data["style"],
            colours=data["colours"] or "some", axes=tuple(data["axes"]) or AXES,
        )


class RuleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: PerturbationRule) -> str:
        return f"{obj.name} ({obj.kind}, weight {obj.weight:g})"


def _enabled_rules():
    return RuleChoiceField(
        queryset=PerturbationRule.objects.filter(enabled=True).order_by("name"), required=False,
        widget=forms.CheckboxSelectMultiple, help_text="None ticked: every enabled rule.",
    )


class PerturbationRunForm(forms.Form):
    rules = _enabled_rules()
    edits = forms.ChoiceField(choices=EDIT_CHOICES, initial="1", widget=forms.RadioSelect)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=0)
    variants = forms.IntegerField(min_value=1, max_value=10, initial=1,
                                  help_text="Perturbed prompts to try per prompt.")

    def job_params(self, prompt_set_id: int) -> dict:
        data = self.cleaned_data
        return {"prompt_set": prompt_set_id, "rules": sorted(rule.pk for rule in data["rules"]),
                "edits": data["edits"], "seed": data["seed"], "variants": data["variants"]}


class PerturbationPreviewForm(forms.Form):
    prompt = forms.IntegerField(required=False, widget=forms.HiddenInput)
    text = forms.CharField(required=False, max_length=MAX_PROMPT_CHARS,
                           widget=forms.Textarea(attrs={"rows": 3}),
                           help_text="Paste a prompt, or pick one from the list with its Perturb button.")
    rules = _enabled_rules()
    edits = forms.ChoiceField(choices=EDIT_CHOICES, initial="1", widget=forms.RadioSelect)
    seed = forms.IntegerField(min_value=0, max_value=MAX_SEED, initial=0)

    def clean_text(self):
        return " ".join(self.cleaned_data["text"].split())

    def clean(self):
        data = super().clean()
        if not data.get("text") and not data.get("prompt") and "text" not in self.errors:
            self.add_error("text", "Paste a prompt or pick one from the list.")
        return data


class PromptSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    relation_kind = forms.ChoiceField(required=False, choices=RELATION_KIND_CHOICES, label="Relation")
    page = forms.IntegerField(required=False, min_value=1)


class PerturbedFilterForm(forms.Form):
    rule = forms.ModelChoiceField(queryset=PerturbationRule.objects.order_by("name"), required=False,
                                  empty_label="any rule")
    n_edits = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Edits",
                                     choices=[("", "any number"), ("1", "1"), ("2", "2"), ("3", "3")])
    relation_kind = forms.ChoiceField(required=False, choices=RELATION_KIND_CHOICES, label="Relation")
    page = forms.IntegerField(required=False, min_value=1)


class PerturbationRuleForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=RuleKind.choices)
    params = forms.CharField(
        label="Parameters (JSON)", required=False, initial="{}",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text='A JSON object, e.g. {"steps": 1}; {} for none.',
    )
    weight = forms.FloatField(initial=1.0, help_text="Relative chance of this rule being picked; above 0.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    enabled = forms.BooleanField(required=False, initial=True)

    def clean_params(self) -> dict:
        raw = (self.cleaned_data["params"] or "").strip() or "{}"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
        if not isinstance(value, dict):
            raise ValidationError("Must be a JSON object such as {} or {\"steps\": 1}.")
        return value

    def clean_weight(self) -> float:
        weight = self.cleaned_data["weight"]
        if not weight > 0:
            raise ValidationError("The weight must be greater than 0.")
        return weight
