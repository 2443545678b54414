"""Prompt sets (upload, generator, demo), perturbation rules and perturbed prompts.

The spatial language itself (parser, generator, perturbation engine) lives in ml.spatial, pure Python; these
services store what it produces, in one transaction each, and turn its errors into ValidationErrors that name
the field or line.
"""

import gc
import json
import random
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from ml.spatial.generator import AXES, CATEGORIES, COLOUR_MODES, STYLES, generate_prompt
from ml.spatial.graph import SceneGraph
from ml.spatial.parser import parse
from ml.spatial.perturb import Perturbation, PerturbationError, Rule, perturb
from ml.spatial.perturb import RuleKind as MlRuleKind
from spatiallab.prompts.importers import IncomingPrompt, PromptFileError, read_prompt_file
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule, PerturbedPrompt, Prompt, PromptSet

BATCH = 5000
MAX_GENERATED = 100_000
EDIT_SUBSETS = {"1": (1,), "2-3": (2, 3)}  # the paper's two benchmark subsets


def validation_error_text(exc) -> str:
    """A Django ValidationError as one line for a terminal: "field: message; field: message"."""
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items())
    return " ".join(exc.messages)


def normalize_prompt(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass
class PromptSetCreated:
    prompt_set: PromptSet
    created: int
    duplicates: int


def _prompt_row(prompt_set: PromptSet, position: int, item: IncomingPrompt, normalized: str) -> Prompt:
    text = " ".join(item.text.split())
    graph = parse(text)
    stats = graph.stats()
    return Prompt(
        prompt_set=prompt_set,
        position=position,
        text=text,
        normalized_text=normalized,
        word_count=stats["words"],
        category=item.category,
        source_line=item.line or None,
        graph=graph.to_dict(),
        object_count=stats["objects"],
        relation_count=stats["relations"],
        unparsed_count=stats["unparsed"],
        relation_kinds=stats["relation_kinds"],
    )


PROMPT_COPY_COLUMNS = ("prompt_set_id", "position", "text", "normalized_text", "word_count", "category",
                       "source_line", "graph", "object_count", "relation_count", "unparsed_count", "relation_kinds")


def _prompts_insert(rows: list[Prompt]) -> None:
    """Bulk insert. On PostgreSQL through COPY: importing 100,000 prompts with their graphs is several times
    faster than multi-row INSERTs (benchmarks/prompts.py import); elsewhere Django's bulk_create."""
    if connection.vendor != "postgresql":
        Prompt.objects.bulk_create(rows)
        return
    table = connection.ops.quote_name(Prompt._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in PROMPT_COPY_COLUMNS)
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((row.prompt_set_id, row.position, row.text, row.normalized_text, row.word_count,
                            row.category, row.source_line, json.dumps(row.graph), row.object_count,
                            row.relation_count, row.unparsed_count, json.dumps(row.relation_kinds)))


@contextmanager
def _gc_paused():
    """Pauses the cyclic garbage collector during a bulk import. Parsing makes millions of small objects and
    the collector rescans all of them again and again; the import of 100,000 prompts takes about half the
    time without it (benchmarks/prompts.py import). Reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prompt_set_create(
    *,
    name: str,
    prompts: Sequence[IncomingPrompt | str],
    description: str = "",
    source: str = "",
    source_info: dict | None = None,
    created_by=None,
    progress=None,
) -> PromptSetCreated:
    """Parses and stores a prompt set in one transaction. Prompts whose normalised text repeats an earlier one
    are counted and skipped. `progress(done, total)` is called per batch (commands show a bar)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A prompt set needs a name."})
    items = [p if isinstance(p, IncomingPrompt) else IncomingPrompt(0, p) for p in prompts]
    if not items:
        raise ValidationError({"prompts": "The prompt set has no prompts."})
    with transaction.atomic(), _gc_paused():
        if PromptSet.objects.filter(name=name).exists():
            raise ValidationError({"name": f"A prompt set named {name!r} already exists."})
        prompt_set = PromptSet.objects.create(
            name=name, description=description, source=source, created_by=created_by
        )
        seen: set[str] = set()
        batch: list[Prompt] = []
        created = 0
        for index, item in enumerate(items, start=1):
            normalized = normalize_prompt(item.text)
            if normalized and normalized not in seen:
                seen.add(normalized)
                batch.append(_prompt_row(prompt_set, created + len(batch), item, normalized))
            if len(batch) >= BATCH or index == len(items):
                _prompts_insert(batch)
                created += len(batch)
                batch = []
                if progress:
                    progress(index, len(items))
        duplicates = len(items) - created
        prompt_set.source_info = {**(source_info or {}), "prompts": created, "duplicates_skipped": duplicates}
        prompt_set.save(update_fields=["source_info"])
    return PromptSetCreated(prompt_set=prompt_set, created=created, duplicates=duplicates)


def prompt_set_create_from_file(
    *, name: str, data: bytes, filename: str, file_format: str | None = None, description: str = "", created_by=None
) -> PromptSetCreated:
    try:
        incoming = read_prompt_file(data, filename=filename, file_format=file_format)
    except PromptFileError as exc:
        raise ValidationError({"file": exc.messages()}) from None
    return prompt_set_create(
        name=name,
        prompts=incoming,
        description=description,
        source=f"upload: {filename}"[:200] if filename else "upload",
        source_info={"filename": filename, "lines": len(incoming)},
        created_by=created_by,
    )


COLOURS_HELP = ("Colour words: some (about a third of the objects, as people write) or every (each object its own "
                "colour word, so things are told apart by colour as well as by name).")
STYLE_HELP = ("Wording: long (40-120 words in several sentences, as in the paper), short (one sentence) or plain "
              "(one sentence at its simplest: no scene opener, one phrase per relation, one of each object, no "
              "attribute but a colour word).")
AXES_HELP = ("Directions the relations speak about: horizontal (left of, right of, next to, between, rows), depth "
             "(in front of, behind), vertical (above, below, on top of, under, stacks). None chosen: all three.")


@dataclass(frozen=True)
class GeneratorSettings:
    count: int
    seed: int = 0
    min_objects: int = 3
    max_objects: int = 8
    min_relations: int = 2
    max_relations: int = 7
    categories: tuple[str, ...] = ()
    style: str = "long"
    colours: str = "some"
    axes: tuple[str, ...] = AXES

    def validate(self) -> None:
        errors = {}
        if not 1 <= self.count <= MAX_GENERATED:
            errors["count"] = f"must be between 1 and {MAX_GENERATED}."
        if not 2 <= self.min_objects <= self.max_objects <= 12:
            errors["max_objects"] = "objects must satisfy 2 <= min <= max <= 12."
        if not 1 <= self.min_relations <= self.max_relations <= 11:
            errors["max_relations"] = "relations must satisfy 1 <= min <= max <= 11."
        unknown = sorted(set(self.categories) - set(CATEGORIES))
        if unknown:
            errors["categories"] = f"unknown: {', '.join(unknown)}; known: {', '.join(CATEGORIES)}."
        if self.style not in STYLES:
            errors["style"] = f"must be one of {', '.join(repr(style) for style in STYLES)}."
        if self.colours not in COLOUR_MODES:
            errors["colours"] = f"must be one of {', '.join(repr(mode) for mode in COLOUR_MODES)}."
        if isinstance(self.axes, str) or not self.axes or set(self.axes) - set(AXES):
            errors["axes"] = f"must be a non-empty list drawn from {', '.join(AXES)}; got {self.axes!r}."
        if errors:
            raise ValidationError(errors)


def generated_prompts(settings: GeneratorSettings) -> Iterable[IncomingPrompt]:
    """The generator's prompts for these settings: deterministic, sizes drawn from the ranges by the seed."""
    settings.validate()
    rng = random.Random(settings.seed)
    categories = settings.categories or CATEGORIES
    for index in range(settings.count):
        n_objects = rng.randint(settings.min_objects, settings.max_objects)
        n_relations = rng.randint(settings.min_relations, settings.max_relations)
        category = categories[rng.randrange(len(categories))]
        generated = None
        while generated is None:
            try:
                generated = generate_prompt(seed=rng.getrandbits(48), n_objects=n_objects, n_relations=n_relations,
                                            category=category, style=settings.style, colours=settings.colours,
                                            axes=settings.axes)
            except ValueError:
                if n_relations == 1:
                    raise
                n_relations -= 1  # more relations than these objects can carry
        yield IncomingPrompt(index + 1, generated.text, generated.category)


def prompt_set_generate(*, name: str, settings: GeneratorSettings, description: str = "", created_by=None,
                        progress=None) -> PromptSetCreated:
    return prompt_set_create(
        name=name,
        prompts=list(generated_prompts(settings)),
        description=description,
        source="generator",
        source_info={"generator": {**settings.__dict__, "categories": list(settings.categories),
                                   "axes": list(settings.axes)}},
        created_by=created_by,
        progress=progress,
    )


DEMO_PROMPT_SET = "Demo: kitchen and living room"


def demo_prompt_texts() -> list[str]:
    data = resources.files("spatiallab.prompts").joinpath("demo_prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["text"] for line in data.splitlines() if line.strip()]


def prompt_set_ensure_demo(*, created_by=None) -> PromptSet:
    existing = PromptSet.objects.filter(name=DEMO_PROMPT_SET).first()
    if existing:
        return existing
    return prompt_set_create(
        name=DEMO_PROMPT_SET,
        prompts=demo_prompt_texts(),
        description="Long spatial prompts for trying the pipeline end to end.",
        source="demo",
        created_by=created_by,
    ).prompt_set


# --- Perturbation rules ---------------------------------------------------------------------------------


def rule_to_ml(rule: PerturbationRule) -> Rule:
    return Rule(kind=MlRuleKind(rule.kind), params=rule.params or {}, weight=rule.weight, name=rule.name)


def _validate_rule(*, kind: str, params: dict, weight: float, name: str) -> None:
    if kind not in {k.value for k in MlRuleKind}:
        raise ValidationError({"kind": f"Unknown rule kind {kind!r}."})
    if not isinstance(params, dict):
        raise ValidationError({"params": "Parameters must be a JSON object."})
    if not weight > 0:
        raise ValidationError({"weight": "The weight must be greater than 0."})
    try:
        Rule(kind=MlRuleKind(kind), params=params, weight=weight, name=name)
    except ValueError as exc:
        raise ValidationError({"params": str(exc)}) from None


def perturbation_rule_create(*, name: str, kind: str, params: dict | None = None, weight: float = 1.0,
                             enabled: bool = True, description: str = "", created_by=None) -> PerturbationRule:
    params = params or {}
    _validate_rule(kind=kind, params=params, weight=weight, name=name)
    if PerturbationRule.objects.filter(name=name).exists():
        raise ValidationError({"name": f"A rule named {name!r} already exists."})
    return PerturbationRule.objects.create(name=name, kind=kind, params=params, weight=weight, enabled=enabled,
                                           description=description, created_by=created_by)


def perturbation_rule_update(*, rule: PerturbationRule, **fields) -> PerturbationRule:
    allowed = {"name", "kind", "params", "weight", "enabled", "description"}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise ValidationError({name: "This field cannot be changed." for name in unknown})
    merged = {"kind": rule.kind, "params": rule.params, "weight": rule.weight, "name": rule.name, **fields}
    _validate_rule(kind=merged["kind"], params=merged["params"], weight=merged["weight"], name=merged["name"])
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save(update_fields=list(fields) or None)
    return rule


def rules_selected(rule_ids: Sequence[int] | None) -> list[PerturbationRule]:
    """The rules with these ids (all of them enabled), or every enabled rule when none are named."""
    if not rule_ids:
        rules = list(PerturbationRule.objects.filter(enabled=True))
        if not rules:
            raise ValidationError({"rules": "No perturbation rule is enabled."})
        return rules
    rules = list(PerturbationRule.objects.filter(pk__in=rule_ids))
    missing = sorted(set(rule_ids) - {r.pk for r in rules})
    if missing:
        raise ValidationError({"rules": f"Unknown rule ids: {', '.join(map(str, missing))}."})
    disabled = [r.name for r in rules if not r.enabled]
    if disabled:
        raise ValidationError({"rules": f"Disabled rules: {', '.join(disabled)}."})
    return rules


def edit_count(subset: str, seed: int) -> int:
    """1 for the "1" subset; 2 or 3, chosen by the seed, for the "2-3" subset."""
    try:
        choices = EDIT_SUBSETS[subset]
    except KeyError:
        raise ValidationError({"edits": f"Must be one of {', '.join(EDIT_SUBSETS)}."}) from None
    return choices[random.Random(seed).randrange(len(choices))]


def perturbation_seed(seed: int, position: int, variant: int) -> int:
    """The seed for one prompt of a run: the same run settings always give the same perturbations."""
    return (seed * 1_000_003 + position * 7_919 + variant * 104_729) % (2**62)


def perturb_for_subset(text: str, *, rules: Sequence[Rule], edits: str, seed: int,
                       graph: SceneGraph | None = None) -> Perturbation:
    """One perturbation of `text` in the subset "1" or "2-3". For "2-3" the seed picks 2 or 3 edits; a prompt
    that cannot take 3 gets 2 rather than none. Raises PerturbationError when nothing applies."""
    n_edits = edit_count(edits, seed)
    try:
        return perturb(text, rules=rules, n_edits=n_edits, seed=seed, graph=graph)
    except PerturbationError:
        if n_edits != 3:
            raise
        return perturb(text, rules=rules, n_edits=2, seed=seed, graph=graph)


def perturb_text(*, text: str, rules: Sequence[PerturbationRule], edits: str = "1", seed: int = 0,
                 graph: SceneGraph | None = None) -> Perturbation:
    """The synchronous perturbation behind the preview and the REST endpoint."""
    try:
        return perturb_for_subset(text, rules=[rule_to_ml(r) for r in rules], edits=edits, seed=seed, graph=graph)
    except PerturbationError as exc:
        reasons = sorted({f"{r.rule}: {r.reason}" if r.rule else r.reason for r in exc.reasons})
        raise ValidationError({"text": reasons or ["No perturbation applies to this prompt."]}) from None


def perturbation_edits(result, *, original: str, rules: Sequence[PerturbationRule]) -> list[dict]:
    """The edits of an ml Perturbation as JSON: which rule changed which relation, and the changed text.
    Shared by POST /api/v1/perturb/ and the perturb_prompts command, so both write the same shape."""
    by_name = {rule.name: rule for rule in rules}
    edits = []
    for position, edit in enumerate(result.edits):
        rule = by_name.get(edit.rule)
        edits.append({
            "position": position,
            "rule": rule.pk if rule else None,
            "rule_name": edit.rule,
            "rule_kind": rule.kind if rule else edit.rule,
            "relation_kind": edit.relation_before.get("kind", ""),
            "relation_before": edit.relation_before,
            "relation_after": edit.relation_after,
            "span_before": edit.span_before.to_list(),
            "span_after": edit.span_after.to_list(),
            "text_before": edit.span_before.text(original),
            "text_after": edit.span_after.text(result.perturbed),
        })
    return edits


def perturbed_prompts_store(*, items: Sequence[tuple[Prompt, Perturbation]], rules_by_name: dict, job=None) -> int:
    """Stores perturbed prompts with their edits; ones already stored for the same prompt (same normalised
    text) are skipped, so a re-run or a redelivered job adds nothing twice. Returns how many were new."""
    if not items:
        return 0
    wanted = {(prompt.pk, normalize_prompt(p.perturbed)): (prompt, p) for prompt, p in items}
    with transaction.atomic():
        existing = set(
            PerturbedPrompt.objects.filter(prompt_id__in={pk for pk, _ in wanted})
            .values_list("prompt_id", "normalized_text")
        )
        new = [(key, value) for key, value in wanted.items() if key not in existing]
        rows = [
            PerturbedPrompt(prompt=prompt, text=p.perturbed, normalized_text=key[1], n_edits=len(p.edits),
                            seed=p.seed, job=job)
            for key, (prompt, p) in new
        ]
        try:
            with transaction.atomic():
                PerturbedPrompt.objects.bulk_create(rows)
        except IntegrityError:
            # A concurrent run stored some of them between our read and our insert: insert the rest.
            rows = [row for row in rows if not PerturbedPrompt.objects.filter(
                prompt=row.prompt, normalized_text=row.normalized_text).exists()]
            PerturbedPrompt.objects.bulk_create(rows)
        edits = []
        by_key = {(row.prompt_id, row.normalized_text): row for row in rows}
        for key, (_prompt, p) in new:
            row = by_key.get(key)
            if row is None:
                continue
            for position, edit in enumerate(p.edits):
                rule = rules_by_name.get(edit.rule)
                edits.append(PerturbationEdit(
                    perturbed=row, position=position, rule=rule,
                    rule_kind=rule.kind if rule else edit.rule,
                    relation_kind=edit.relation_before.get("kind", ""),
                    relation_before=edit.relation_before, relation_after=edit.relation_after,
                    span_before=edit.span_before.to_list(), span_after=edit.span_after.to_list(),
                ))
        PerturbationEdit.objects.bulk_create(edits)
    return len(rows)
