"""Forms of the generator and pair pages. They check shapes; the services and the job's parameter check look
again, and their ValidationErrors are put back on the fields (`add_service_errors`, `add_job_errors`)."""

import dataclasses
import json
from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse_lazy

from ml.generation.settings import BACKEND_LABELS, fields_of
from spatiallab.generation.job_params import MAX_SEEDS
from spatiallab.generation.models import Backend, Generator
from spatiallab.generation.selectors import generators_enabled
from spatiallab.prompts.forms import add_service_errors
from spatiallab.prompts.models import PerturbationRule, PromptSet

MAX_SEED = 2**31 - 1
N_EDITS_CHOICES = [("", "any number"), ("1", "1 edit"), ("2-3", "2–3 edits")]
GROUND_TRUTH = {"ok": True, "not-ok": False}


# --- Backend settings: defaults and the reference table -------------------------------------------------------


def _default(field: dataclasses.Field):
    return field.default if field.default is not dataclasses.MISSING else field.default_factory()


def backend_defaults(backend: str) -> dict:
    """Every setting of the backend at its default (validate_settings refuses some defaults, e.g. an empty
    diffusers model, so they are read from the fields, not from a validation)."""
    return {field.name: _default(field) for field in fields_of(backend)}


def settings_json(settings: dict) -> str:
    return json.dumps(settings, indent=2)


TYPE_NAMES = {bool: "true / false", int: "whole number", float: "number", str: "text", dict: "object"}


@dataclass(frozen=True)
class SettingRow:
    name: str
    type: str
    default: str
    help: str
    limits: str


@dataclass(frozen=True)
class BackendReference:
    backend: str
    label: str
    rows: list[SettingRow]


def _limits(meta) -> str:
    if meta.get("choices"):
        return "one of " + ", ".join(map(str, meta["choices"]))
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f"at least {low:g}"
    if high is not None:
        return f"at most {high:g}"
    return ""


def settings_reference() -> list[BackendReference]:
    """Each backend's settings as rows (name, type, default, help, limits), straight from ml's dataclasses."""
    return [
        BackendReference(backend, BACKEND_LABELS[backend], [
            SettingRow(field.name, TYPE_NAMES.get(type(_default(field)), ""), json.dumps(_default(field)),
                       field.metadata.get("help", ""), _limits(field.metadata))
            for field in fields_of(backend)
        ])
        for backend in Backend.values
    ]


# --- Generators ------------------------------------------------------------------------------------------------


def _settings_field(**kwargs) -> forms.CharField:
    return forms.CharField(
        label="Settings", required=False,
        widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
        help_text="A JSON object of the backend's settings (table below); a setting left out takes its default.",
        **kwargs,
    )


def _parse_settings(raw: str) -> dict:
    raw = (raw or "").strip() or "{}"
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}).") from None
    if not isinstance(value, dict):
        raise ValidationError('Must be a JSON object such as {"steps": 28}.')
    return value


class GeneratorForm(forms.Form):
    name = forms.CharField(max_length=100)
    # Changing the backend swaps in that backend's default settings (htmx GET of the defaults endpoint).
    backend = forms.ChoiceField(choices=Backend.choices, initial=Backend.DIFFUSERS, widget=forms.Select(attrs={
        "hx-get": reverse_lazy("generator-defaults"), "hx-trigger": "change", "hx-target": "#settings-field",
        "hx-swap": "outerHTML"}))
    settings = _settings_field()
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    enabled = forms.BooleanField(required=False, initial=True, help_text="Offered when launching generation.")

    def __init__(self, *args, backend: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            backend = backend if backend in Backend.values else Backend.DIFFUSERS
            self.initial.setdefault("backend", backend)
            self.initial.setdefault("settings", settings_json(backend_defaults(backend)))

    def clean_settings(self) -> dict:
        return _parse_settings(self.cleaned_data["settings"])


class GeneratorEditForm(forms.Form):
    settings = _settings_field()
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_settings(self) -> dict:
        return _parse_settings(self.cleaned_data["settings"])


class BackendForm(forms.Form):
    """The backend select of the register form, on its own: the defaults endpoint reads it."""

    backend = forms.ChoiceField(choices=Backend.choices)


# --- Launching generation ----------------------------------------------------------------------------------------


class GeneratorChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Generator) -> str:
        return f"{obj.name} ({obj.backend})"


class RuleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: PerturbationRule) -> str:
        return f"{obj.name} ({obj.kind})"


def add_job_errors(form: forms.Form, exc: ValidationError) -> None:
    """job_create's errors: "field: message" under "params" goes on that field; a parameter the form has no
    field for (prompt_set: no perturbed prompts match) is shown above the form under its own name."""
    if hasattr(exc, "error_dict") and "params" in exc.message_dict:
        for message in exc.message_dict["params"]:
            name, _, rest = message.partition(": ")
            if name in form.fields and rest:
                form.add_error(name, rest)
            else:
                form.add_error(None, message)
        others = {key: errors for key, errors in exc.message_dict.items() if key != "params"}
        if others:
            add_service_errors(form, ValidationError(others))
        return
    add_service_errors(form, exc)


class GeneratePairsForm(forms.Form):
    generators = GeneratorChoiceField(
        queryset=generators_enabled().order_by("name"), widget=forms.CheckboxSelectMultiple,
        help_text="Each makes every pair (enabled generators only).",
    )
    seeds = forms.IntegerField(label="Images per prompt pair", min_value=1, max_value=MAX_SEEDS, initial=1,
                               help_text="Seeds: first seed, first seed + 1, ...")
    seed = forms.IntegerField(label="First seed", min_value=0, max_value=MAX_SEED, initial=0)
    n_edits = forms.ChoiceField(label="Edits", choices=N_EDITS_CHOICES, required=False, initial="",
                                widget=forms.RadioSelect)
    rules = RuleChoiceField(
        queryset=PerturbationRule.objects.order_by("name"), required=False,
        widget=forms.SelectMultiple(attrs={"size": 4}),
        help_text="Only perturbed prompts with an edit by one of these rules; none selected: all.",
    )
    limit = forms.IntegerField(min_value=0, initial=0, required=False,
                               help_text="At most this many perturbed prompts, in order; 0: all.")

    def job_params(self, prompt_set_id: int) -> dict:
        data = self.cleaned_data
        return {"prompt_set": prompt_set_id, "generators": [g.pk for g in data["generators"]],
                "seeds": data["seeds"], "seed": data["seed"], "n_edits": data["n_edits"] or "",
                "rules": sorted(rule.pk for rule in data["rules"]), "limit": data["limit"] or 0}


# --- The gallery's filters ---------------------------------------------------------------------------------------


VERDICT_CHOICES = [("", "any"), ("agrees", "prefers the winner"), ("disagrees", "prefers the loser"),
                   ("unscored", "not scored")]


class PairFilterForm(forms.Form):
    job = forms.IntegerField(required=False, min_value=1, widget=forms.NumberInput(attrs={"placeholder": "any"}))
    generator = forms.ModelChoiceField(queryset=Generator.objects.order_by("name"), required=False,
                                       empty_label="any generator")
    rule = forms.ModelChoiceField(queryset=PerturbationRule.objects.order_by("name"), required=False,
                                  empty_label="any rule")
    n_edits = forms.ChoiceField(label="Edits", choices=N_EDITS_CHOICES, required=False)
    prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.order_by("name"), required=False,
                                        empty_label="any prompt set")
    ground_truth = forms.ChoiceField(label="Ground truth", required=False,
                                     choices=[("", "any"), ("ok", "ok"), ("not-ok", "not ok")])
    # A reward checkpoint's verdict next to the humans' (its stored PairScores).
    checkpoint = forms.ModelChoiceField(queryset=None, required=False, label="Model",
                                        empty_label="no model verdict")
    verdict = forms.ChoiceField(label="Model verdict", required=False, choices=VERDICT_CHOICES)
    page = forms.IntegerField(required=False, min_value=1)

    def __init__(self, *args, generators=None, prompt_sets=None, **kwargs):
        super().__init__(*args, **kwargs)
        from spatiallab.rewards.forms import checkpoint_choices, checkpoint_label

        self.fields["checkpoint"].queryset = checkpoint_choices()
        self.fields["checkpoint"].label_from_instance = checkpoint_label
        # What the user may see, not every row (the selectors decide).
        if generators is not None:
            self.fields["generator"].queryset = generators.order_by("name")
        if prompt_sets is not None:
            self.fields["prompt_set"].queryset = prompt_sets.order_by("name")

    def filters(self) -> dict:
        data = self.cleaned_data
        return {"job": data["job"], "generator": data["generator"].pk if data["generator"] else None,
                "rule": data["rule"].pk if data["rule"] else None, "n_edits": data["n_edits"] or None,
                "prompt_set": data["prompt_set"].pk if data["prompt_set"] else None,
                "ground_truth": GROUND_TRUTH.get(data["ground_truth"])}

    def clean(self):
        data = super().clean()
        if data.get("verdict") and not data.get("checkpoint"):
            self.add_error("verdict", "Choose the model whose verdict filters.")
        return data
