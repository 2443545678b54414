"""Forms of the researcher's queue pages. They check shapes; queue_create / queue_update look again, and their
ValidationErrors are put back on the fields (prompts.forms.add_service_errors)."""

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from spatiallab.accounts.roles import Role
from spatiallab.generation.forms import N_EDITS_CHOICES
from spatiallab.generation.models import Generator
from spatiallab.jobs.models import Job
from spatiallab.prompts.models import PerturbationRule, PromptSet
from spatiallab.verification.models import ItemStatus, QueueStatus, VerificationQueue

GENERATE_JOB_KIND = "generate_pairs"
MAX_GOLD_LINES = 5000
# How a known answer may be written in the gold list: whether the pair is a valid preference pair.
GOLD_WORDS = {"verified": True, "yes": True, "ok": True, "true": True, "1": True,
              "rejected": False, "no": False, "not-ok": False, "false": False, "0": False}


def annotator_users():
    """Users holding the annotator role (the "who may work on it" choices)."""
    return get_user_model().objects.filter(groups__name=Role.ANNOTATOR).distinct().order_by("username")


# A researcher sets these; `building` belongs to the build job.
SETTABLE_STATUSES = [choice for choice in QueueStatus.choices if choice[0] != QueueStatus.BUILDING]


class AnnotatorsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.get_username()


class JobChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Job) -> str:
        return f"job {obj.pk} · {obj.get_status_display().lower()} · {obj.created_at:%Y-%m-%d %H:%M}"


def _annotators_field() -> AnnotatorsField:
    return AnnotatorsField(
        queryset=annotator_users(), required=False, label="Who may work on it",
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="Annotators allowed on this queue; none selected: every annotator.")


class SelectionForm(forms.Form):
    """Which generated pairs the queue is built from (generation.selectors.pairs_filtered's keys)."""

    prompt_set = forms.ModelChoiceField(queryset=PromptSet.objects.order_by("name"), required=False,
                                        empty_label="any prompt set")
    job = JobChoiceField(queryset=Job.objects.filter(kind=GENERATE_JOB_KIND).order_by("-pk"), required=False,
                         label="Generation job", empty_label="any job")
    generator = forms.ModelChoiceField(queryset=Generator.objects.order_by("name"), required=False,
                                       empty_label="any generator")
    rule = forms.ModelChoiceField(queryset=PerturbationRule.objects.order_by("name"), required=False,
                                  empty_label="any rule", label="Perturbation rule")
    n_edits = forms.ChoiceField(label="Number of edits", choices=N_EDITS_CHOICES, required=False)

    SELECTION_FIELDS = ("prompt_set", "job", "generator", "rule", "n_edits")

    def __init__(self, *args, prompt_sets=None, generators=None, jobs=None, **kwargs):
        super().__init__(*args, **kwargs)
        # What the user may see (the selectors decide), not every row.
        if prompt_sets is not None:
            self.fields["prompt_set"].queryset = prompt_sets.order_by("name")
        if generators is not None:
            self.fields["generator"].queryset = generators.order_by("name")
        if jobs is not None:
            self.fields["job"].queryset = jobs.filter(kind=GENERATE_JOB_KIND).order_by("-pk")

    def selection(self) -> dict:
        data = self.cleaned_data
        selection = {name: getattr(data.get(name), "pk", None) for name in ("prompt_set", "job", "generator", "rule")}
        selection["n_edits"] = data.get("n_edits") or None
        return {name: value for name, value in selection.items() if value is not None}


class QueueCreateForm(SelectionForm):
    name = forms.CharField(max_length=200)
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text="Shown to annotators above every item.")
    overlap = forms.IntegerField(min_value=1, max_value=20, initial=3, help_text="Annotators who answer each pair.")
    quorum = forms.IntegerField(min_value=1, max_value=20, required=False,
                                widget=forms.NumberInput(attrs={"placeholder": "majority"}),
                                help_text="Matching answers that decide a pair; empty: a majority of the overlap.")
    lease_minutes = forms.IntegerField(label="Lease time (minutes)", min_value=1, max_value=24 * 60, initial=10,
                                       help_text="An item not answered within this time goes back to the queue.")
    gold_share = forms.FloatField(min_value=0, max_value=0.5, initial=0, required=False,
                                  widget=forms.NumberInput(attrs={"step": "0.01"}),
                                  help_text="Share of served items that are gold pairs (0 to 0.5).")
    gold_count = forms.IntegerField(label="Number of gold pairs", min_value=0, initial=0, required=False,
                                    help_text="Drawn from the selected pairs whose renderer ground truth is known; "
                                              "that is their known answer.")
    gold_pairs = forms.CharField(
        label="Gold pairs with their answers", required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code", "placeholder": "1042 verified\n1043 rejected"}),
        help_text="Instead of drawing them: one pair per line, its id and the known answer (verified or rejected).")
    priority = forms.IntegerField(initial=0, help_text="Higher comes first on the annotator's list.")
    limit = forms.IntegerField(min_value=1, required=False, widget=forms.NumberInput(attrs={"placeholder": "all"}),
                               help_text="At most this many regular pairs (in id order); empty: all that match.")

    field_order = ["name", "instructions", "overlap", "quorum", "lease_minutes", "priority", "annotators",
                   "gold_share", "gold_count", "gold_pairs", *SelectionForm.SELECTION_FIELDS, "limit"]

    # The form's three parts, as the page groups them.
    GROUPS = {"design": ("name", "instructions", "overlap", "quorum", "lease_minutes", "priority", "annotators"),
              "gold": ("gold_share", "gold_count", "gold_pairs"),
              "selection": (*SelectionForm.SELECTION_FIELDS, "limit")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["annotators"] = _annotators_field()
        self.order_fields(self.field_order)

    def group(self, name: str) -> list:
        return [self[field] for field in self.GROUPS[name]]

    @property
    def design_fields(self) -> list:
        return self.group("design")

    @property
    def gold_fields(self) -> list:
        return self.group("gold")

    @property
    def selection_fields(self) -> list:
        return self.group("selection")

    def clean_gold_pairs(self) -> list[tuple[int, bool]]:
        raw = self.cleaned_data.get("gold_pairs") or ""
        gold, errors = [], []
        lines = raw.splitlines()
        if len(lines) > MAX_GOLD_LINES:
            raise ValidationError(f"At most {MAX_GOLD_LINES} gold pairs.")
        for number, line in enumerate(lines, start=1):
            words = line.replace(",", " ").replace(";", " ").split()
            if not words:
                continue
            if len(words) != 2 or not words[0].isdigit() or words[1].lower() not in GOLD_WORDS:
                errors.append(f"line {number}: write a pair id and verified or rejected, e.g. “1042 verified”.")
                continue
            gold.append((int(words[0]), GOLD_WORDS[words[1].lower()]))
        if errors:
            raise ValidationError(errors[:20])
        return gold

    def clean(self):
        data = super().clean()
        if data.get("gold_pairs") and data.get("gold_count"):
            self.add_error("gold_count", "Either draw gold pairs or list them, not both.")
        return data

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"], "instructions": data["instructions"], "overlap": data["overlap"],
            "quorum": data["quorum"], "lease_minutes": data["lease_minutes"], "gold_share": data["gold_share"] or 0.0,
            "priority": data["priority"], "annotators": list(data["annotators"]), "selection": self.selection(),
            "gold_count": data["gold_count"] or 0, "gold": data["gold_pairs"] or None, "limit": data["limit"],
        }


class QueueEditForm(forms.Form):
    """queue_update's fields. Overlap and quorum are disabled once the queue has answers (the service refuses
    to change them then)."""

    name = forms.CharField(max_length=200)
    instructions = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    status = forms.ChoiceField(choices=SETTABLE_STATUSES)
    priority = forms.IntegerField()
    lease_minutes = forms.IntegerField(label="Lease time (minutes)", min_value=1, max_value=24 * 60)
    gold_share = forms.FloatField(min_value=0, max_value=0.5, widget=forms.NumberInput(attrs={"step": "0.01"}))
    overlap = forms.IntegerField(min_value=1, max_value=20)
    quorum = forms.IntegerField(min_value=1, max_value=20)

    CHANGEABLE = ("name", "instructions", "status", "priority", "lease_minutes", "gold_share")

    def __init__(self, *args, queue: VerificationQueue, started: bool, **kwargs):
        initial = {name: getattr(queue, name) for name in (*self.CHANGEABLE, "overlap", "quorum")}
        initial["annotators"] = list(queue.annotators.all())
        super().__init__(*args, initial=initial, **kwargs)
        self.fields["annotators"] = _annotators_field()
        self.started = started
        if started:
            for name in ("overlap", "quorum"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed: the queue has answers."

    def changes(self) -> dict:
        data = self.cleaned_data
        changes = {name: data[name] for name in self.CHANGEABLE}
        if not self.started:
            changes.update(overlap=data["overlap"], quorum=data["quorum"])
        return changes


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=SETTABLE_STATUSES)


ITEM_KINDS = [("", "regular and gold"), ("regular", "regular"), ("gold", "gold")]


class ItemFilterForm(forms.Form):
    status = forms.ChoiceField(choices=[("", "any status"), *ItemStatus.choices], required=False)
    kind = forms.ChoiceField(choices=ITEM_KINDS, required=False)
    page = forms.IntegerField(required=False, min_value=1)


class AdjudicateForm(forms.Form):
    status = forms.ChoiceField(choices=[(ItemStatus.VERIFIED, "Verified"), (ItemStatus.REJECTED, "Rejected")],
                               error_messages={"required": "Choose Verified or Rejected."})
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
