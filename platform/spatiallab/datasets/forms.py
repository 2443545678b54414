"""Forms of the researcher's dataset pages. They check shapes; version_create / criteria_clean look again, and
their ValidationErrors are put back on the fields (prompts.forms.add_service_errors): the service's keys
(queues, generators, rules, n_edits, min_agreement, include_adjudicated, name, parent, ratios) are field names
here on purpose."""

from django import forms
from django.core.exceptions import ValidationError

from spatiallab.datasets.canonical import DEFAULT_RATIOS, SPLITS, check_ratios
from spatiallab.datasets.models import DatasetVersion, ExportFormat, Split, VersionStatus
from spatiallab.generation.models import Generator
from spatiallab.prompts.models import PerturbationRule
from spatiallab.verification.models import VerificationQueue

N_EDITS_CHOICES = [("", "all"), ("1", "1 edit"), ("2-3", "2–3 edits")]
CRITERIA_FIELDS = ("queues", "generators", "rules", "n_edits", "min_agreement", "include_adjudicated")


class QueueChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: VerificationQueue) -> str:
        return f"{obj.name} ({obj.get_status_display().lower()})"


class RuleChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: PerturbationRule) -> str:
        return f"{obj.name} ({obj.kind})"


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: DatasetVersion) -> str:
        return f"{obj.name} ({obj.entry_count:,} pairs, {obj.content_hash[:12]})"


class RatiosWidget(forms.MultiWidget):
    """Three number inputs named ratios_train, ratios_validation and ratios_test (the page labels each)."""

    def __init__(self, attrs=None):
        number = {"step": "0.01", "min": "0", "max": "1"}
        super().__init__({split: forms.NumberInput(attrs=number) for split in SPLITS}, attrs)

    def decompress(self, value):
        if isinstance(value, dict):
            return [value.get(split) for split in SPLITS]
        return [None] * len(SPLITS)


class RatiosField(forms.MultiValueField):
    """Share of prompts per split; cleans to {"train": ..., "validation": ..., "test": ...} adding up to 1."""

    widget = RatiosWidget

    def __init__(self, **kwargs):
        fields = [forms.FloatField(min_value=0, max_value=1) for _ in SPLITS]
        super().__init__(fields=fields, require_all_fields=True,
                         error_messages={"required": "Give the share of each split (train, validation, test).",
                                         "incomplete": "Give the share of each split (train, validation, test)."},
                         **kwargs)

    def compress(self, data_list):
        if not data_list:
            return None
        try:
            return check_ratios(dict(zip(SPLITS, data_list, strict=True)))
        except ValueError as exc:
            raise ValidationError(str(exc).capitalize() + ".") from None


class CriteriaForm(forms.Form):
    """Which verified pairs a version takes (services.CRITERIA_FIELDS); also the live count's input."""

    queues = QueueChoiceField(queryset=VerificationQueue.objects.order_by("name"),
                              label="Verification queues", widget=forms.SelectMultiple(attrs={"size": 6}),
                              error_messages={"required": "Pick at least one verification queue."},
                              help_text="Their verified pairs are taken (gold pairs never are).")
    generators = forms.ModelMultipleChoiceField(queryset=Generator.objects.order_by("name"), required=False,
                                                widget=forms.SelectMultiple(attrs={"size": 4}),
                                                help_text="None selected: every generator.")
    rules = RuleChoiceField(queryset=PerturbationRule.objects.order_by("name"), required=False,
                            label="Perturbation rules", widget=forms.SelectMultiple(attrs={"size": 4}),
                            help_text="Only pairs with an edit by one of these rules; none selected: all.")
    n_edits = forms.ChoiceField(label="Number of edits", choices=N_EDITS_CHOICES, required=False, initial="",
                                widget=forms.RadioSelect)
    min_agreement = forms.FloatField(min_value=0, max_value=1, initial=0.0, required=False,
                                     widget=forms.NumberInput(attrs={"step": "0.05"}), label="Minimum agreement",
                                     help_text="Share of answers saying only the perfect prompt's image follows "
                                               "(0 to 1; adjudicated pairs are exempt).")
    include_adjudicated = forms.BooleanField(required=False, initial=True, label="Include adjudicated pairs")

    def __init__(self, *args, queues=None, generators=None, rules=None, **kwargs):
        super().__init__(*args, **kwargs)
        # What the user may see (the selectors decide), not every row.
        if queues is not None:
            self.fields["queues"].queryset = queues.order_by("name")
        if generators is not None:
            self.fields["generators"].queryset = generators.order_by("name")
        if rules is not None:
            self.fields["rules"].queryset = rules.order_by("name")

    @property
    def criteria_fields(self) -> list:
        return [self[name] for name in CRITERIA_FIELDS]

    def criteria(self) -> dict:
        data = self.cleaned_data
        min_agreement = data.get("min_agreement")
        return {
            "queues": sorted(queue.pk for queue in data["queues"]),
            "generators": sorted(generator.pk for generator in data.get("generators") or []),
            "rules": sorted(rule.pk for rule in data.get("rules") or []),
            "n_edits": data.get("n_edits") or "",
            "min_agreement": 0.0 if min_agreement is None else min_agreement,
            "include_adjudicated": bool(data.get("include_adjudicated")),
        }


class VersionCreateForm(CriteriaForm):
    name = forms.CharField(max_length=200, help_text="Unique; a version's name never changes.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text="Opens the version's README.")
    parent = VersionChoiceField(queryset=DatasetVersion.objects.filter(status=VersionStatus.FROZEN), required=False,
                                empty_label="none (a new line of versions)", label="Parent version",
                                help_text="The frozen version this one revises: it is diffed against it and keeps "
                                          "its split salt, so every prompt stays in its split.")
    ratios = RatiosField(label="Split ratios", initial=[DEFAULT_RATIOS[split] for split in SPLITS],
                         help_text="Share of prompts per split, adding up to 1; all pairs of one prompt share a "
                                   "split.")

    field_order = ["name", "description", "parent", *CRITERIA_FIELDS, "ratios"]

    def __init__(self, *args, versions=None, **kwargs):
        super().__init__(*args, **kwargs)
        if versions is not None:
            self.fields["parent"].queryset = versions.filter(status=VersionStatus.FROZEN).order_by("-created_at",
                                                                                                     "-pk")
        self.order_fields(self.field_order)

    @property
    def about_fields(self) -> list:
        return [self[name] for name in ("name", "description", "parent")]

    @property
    def ratio_inputs(self) -> list[dict]:
        """The three inputs of the ratios, for the page to label one by one."""
        bound = self["ratios"]
        values = bound.value()
        if not isinstance(values, list | tuple):
            values = bound.field.widget.decompress(values)
        return [{"split": split, "label": Split(split).label, "name": f"{bound.html_name}_{split}",
                 "id": f"{bound.auto_id}_{split}", "value": "" if value is None else str(value)}
                for split, value in zip(SPLITS, values, strict=True)]

    @staticmethod
    def initial_from(version: DatasetVersion) -> dict:
        """The form's starting values for a child of `version`: its criteria and ratios, with it as the parent."""
        criteria = version.criteria
        return {
            "parent": version.pk,
            "queues": criteria.get("queues", []), "generators": criteria.get("generators", []),
            "rules": criteria.get("rules", []), "n_edits": criteria.get("n_edits") or "",
            "min_agreement": criteria.get("min_agreement", 0.0),
            "include_adjudicated": criteria.get("include_adjudicated", True),
            "ratios": [version.ratios.get(split, 0.0) for split in SPLITS],
        }

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {"name": data["name"], "description": data["description"], "parent": data["parent"],
                "criteria": self.criteria(), "ratios": data["ratios"]}


SPLIT_CHOICES = [("", "all splits"), *Split.choices]


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=ExportFormat.choices)
    split = forms.ChoiceField(choices=SPLIT_CHOICES, required=False)
