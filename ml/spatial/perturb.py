"""Perturbation engine: copies a "perfect" prompt and changes one to three of its relations in the text.

Pure Python (no Django, no torch). Rules are data (kind + params + weight) so researchers can configure them as
rows. For a prompt the engine lists every edit the enabled rules could make (`candidate_edits`), rejects the
unsafe ones with a reason (no-op, contradiction, ambiguous target, an object that would vanish), picks
`n_edits` of the rest with `random.Random(seed)` (a rule by weight, then one of its edits), rewrites the text by
span replacement (right to left, so earlier spans stay valid) and checks its own output by re-parsing it: the
new graph must differ from the original in exactly the edited relations and mention the same objects.

What an edit writes:
    flip_direction    the relation phrase becomes its opposite ("to the left of" -> "to the right of")
    swap_objects      subject and anchor trade places; the copula follows the new subject ("the lamp is ...")
    move_anchor       the anchor becomes another object of the scene ("... left of the kettle")
    reverse_sequence  the items of a sequence are written in reverse order
    rotate_sequence   the items are rotated by `steps` places (the first goes last for steps=1)

Relation dicts in an edit are `Relation.to_dict()` plus the object keys ("subject_key", "anchor_keys") and the
phrase ("text"); object ids there are the original graph's (the re-parsed text may number objects differently).
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import accumulate
from operator import attrgetter

from ml.spatial import lexicon as lx
from ml.spatial.generator import indefinite_article
from ml.spatial.graph import (
    INVERSE,
    REVERSED_SEQUENCE,
    Relation,
    RelationKind,
    SceneGraph,
    Span,
)

MAX_EDITS = 3
MAX_ATTEMPTS = 6  # combinations re-parsed before giving up


class RuleKind(StrEnum):
    FLIP_DIRECTION = "flip_direction"
    SWAP_OBJECTS = "swap_objects"
    REVERSE_SEQUENCE = "reverse_sequence"
    ROTATE_SEQUENCE = "rotate_sequence"
    MOVE_ANCHOR = "move_anchor"


# Reason codes: every Rejection.reason starts with one of these, then ": " and the detail.
NO_OP = "no-op"
CONTRADICTION = "contradiction"
AMBIGUOUS = "ambiguous"
DROPS_OBJECT = "drops object"
NOT_APPLICABLE = "not applicable"
VERIFICATION_FAILED = "verification failed"
TOO_FEW_EDITS = "too few edits"

_PARAMS = {
    RuleKind.FLIP_DIRECTION: {"axes"},
    RuleKind.SWAP_OBJECTS: set(),
    RuleKind.REVERSE_SEQUENCE: set(),
    RuleKind.ROTATE_SEQUENCE: {"steps"},
    RuleKind.MOVE_ANCHOR: set(),
}


@dataclass(frozen=True)
class Rule:
    """One configured perturbation rule. `params`: flip_direction {"axes": [...lexicon.AXES keys]} (default all);
    rotate_sequence {"steps": int >= 1} (default 1); the other kinds take none."""

    kind: RuleKind
    params: dict = field(default_factory=dict)
    weight: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        try:
            kind = RuleKind(self.kind)
        except ValueError:
            raise ValueError(f"kind: unknown rule kind {self.kind!r}; known: "
                             f"{', '.join(k.value for k in RuleKind)}") from None
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.params, dict):
            raise ValueError(f"params: must be an object (dict), got {type(self.params).__name__}")
        unknown = sorted(set(self.params) - _PARAMS[kind])
        if unknown:
            allowed = ", ".join(sorted(_PARAMS[kind])) or "none"
            raise ValueError(f"params.{unknown[0]}: unknown parameter for {kind.value} (allowed: {allowed})")
        params = dict(self.params)
        if kind == RuleKind.FLIP_DIRECTION:
            axes = params.get("axes", list(lx.AXES))
            if isinstance(axes, str) or not isinstance(axes, (list, tuple)) or not axes:
                raise ValueError(f"params.axes: must be a non-empty list of axes ({', '.join(lx.AXES)})")
            bad = [a for a in axes if a not in lx.AXES]
            if bad:
                raise ValueError(f"params.axes: unknown axis {bad[0]!r}; known: {', '.join(lx.AXES)}")
            params["axes"] = [a for a in lx.AXES if a in axes]  # lexicon order, no repeats
            _AXIS_KINDS.setdefault(tuple(params["axes"]), frozenset(k for a in params["axes"] for k in lx.AXES[a]))
        if kind == RuleKind.ROTATE_SEQUENCE:
            steps = params.get("steps", 1)
            if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
                raise ValueError(f"params.steps: must be an integer >= 1, got {steps!r}")
            params["steps"] = steps
        object.__setattr__(self, "params", params)
        weight = self.weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                or weight <= 0:
            raise ValueError(f"weight: must be a number greater than 0, got {weight!r}")
        object.__setattr__(self, "weight", float(weight))
        if not isinstance(self.name, str):
            raise ValueError(f"name: must be a string, got {self.name!r}")
        if not self.name:
            object.__setattr__(self, "name", kind.value)

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "params": dict(self.params), "weight": self.weight, "name": self.name}

    @classmethod
    def from_dict(cls, data: dict) -> Rule:
        return cls(kind=data["kind"], params=data.get("params") or {}, weight=data.get("weight", 1.0),
                   name=data.get("name", ""))


@dataclass(frozen=True)
class Edit:
    rule: str  # the rule's name
    relation_before: dict
    relation_after: dict
    span_before: Span  # the changed text in the original (the relation phrase and every replaced piece)
    span_after: Span  # the same region in the perturbed text

    def to_dict(self) -> dict:
        return {"rule": self.rule, "relation_before": self.relation_before, "relation_after": self.relation_after,
                "span_before": self.span_before.to_list(), "span_after": self.span_after.to_list()}


@dataclass(frozen=True)
class Perturbation:
    original: str
    perturbed: str
    edits: tuple[Edit, ...]
    seed: int

    def to_dict(self) -> dict:
        return {"original": self.original, "perturbed": self.perturbed, "edits": [e.to_dict() for e in self.edits],
                "seed": self.seed}


@dataclass(frozen=True)
class Rejection:
    rule: str  # the rule's name, "" for the prompt as a whole
    reason: str  # "<code>: <detail>", code one of the module's reason codes

    def to_dict(self) -> dict:
        return {"rule": self.rule, "reason": self.reason}


class PerturbationError(ValueError):
    def __init__(self, reasons: list[Rejection]) -> None:
        self.reasons = reasons
        summary = "; ".join(f"{r.rule}: {r.reason}" if r.rule else r.reason for r in reasons[:5])
        super().__init__(f"no valid perturbation: {summary}" if summary else "no valid perturbation")


@dataclass(frozen=True)
class CandidateEdit:
    """An edit one rule could make, checked on its own; `replacements` are (start, end, new text) in the
    original text, sorted and non-overlapping."""

    rule: Rule
    index: int  # of the relation in graph.relations
    descriptor: tuple[int, str | None]  # (index, the new anchor's id for move_anchor)
    before: Relation
    after: Relation  # span: the original one (mapped to the new text when applied)
    replacements: tuple[tuple[int, int, str], ...]
    canonical_before: tuple
    canonical_after: tuple
    facts_before: tuple = ()
    facts_after: tuple = ()
    uses: tuple[str, ...] = ()  # object ids that lose a mention (move_anchor)


# The engine builds a few frozen dataclass instances per prompt; their generated __init__ sets each field through
# object.__setattr__. These install the field dict directly (as the parser does for the graph). If a dataclass
# changes shape (slots, __post_init__, other fields), the check below falls back to the class itself.
_object_new = object.__new__
_set_dict = object.__setattr__


def _fast_new(cls):
    def new(fields: dict):
        instance = _object_new(cls)
        _set_dict(instance, "__dict__", fields)
        return instance
    return new


def _fast_new_matches(cls, fields: dict) -> bool:
    try:
        return (list(fields) == list(cls.__dataclass_fields__) and not hasattr(cls, "__post_init__")
                and _fast_new(cls)(dict(fields)) == cls(**fields))
    except (AttributeError, TypeError):
        return False


def _checked_new(cls, sample: dict):
    return _fast_new(cls) if _fast_new_matches(cls, sample) else lambda fields: cls(**fields)


_new_candidate = _checked_new(CandidateEdit, {
    "rule": None, "index": 0, "descriptor": (0, None), "before": None, "after": None, "replacements": (),
    "canonical_before": (), "canonical_after": (), "facts_before": (), "facts_after": (), "uses": ()})
_new_edit = _checked_new(Edit, {"rule": "r", "relation_before": {}, "relation_after": {}, "span_before": None,
                                "span_after": None})
_new_perturbation = _checked_new(Perturbation, {"original": "a", "perturbed": "b", "edits": (), "seed": 0})
_new_span_fields = _checked_new(Span, {"start": 1, "end": 2})


def _new_span(start: int, end: int) -> Span:
    return _new_span_fields({"start": start, "end": end})


# --- phrase tables ----------------------------------------------------------------------------------------

# Each binary phrase flips to the phrase of the opposite kind at the same variant position (or the last one).
_FLIP_PHRASE: dict[tuple[RelationKind, str], str] = {
    (kind, phrase): lx.BINARY_PHRASES[flipped][min(i, len(lx.BINARY_PHRASES[flipped]) - 1)]
    for kind, flipped in lx.FLIPS.items() for i, phrase in enumerate(lx.BINARY_PHRASES[kind])
}
_PHRASE_RE: dict[RelationKind, re.Pattern] = {  # longest variant first, whole words
    kind: re.compile(r"\b(?:" + "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True)) + r")\b",
                     re.IGNORECASE)
    for kind, phrases in lx.BINARY_PHRASES.items()
}
_BINARY = frozenset(lx.BINARY_PHRASES)
_AXIS_KINDS: dict[tuple, frozenset] = {}  # filled on first use per axes selection
_SPAN_START, _SPAN_END = attrgetter("start"), attrgetter("end")
_KIND_VALUE = {kind: kind.value for kind in RelationKind}  # faster than the enum's .value
_REVERSED_SEQUENCE = {str(d.value): r.value for d, r in REVERSED_SEQUENCE.items()}
_COPULA_RE = re.compile(r"\s+(is|are)\s+\Z|\s+\Z", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+\Z")
_IS_ARE_RE = re.compile(r"\b(is|are)\b", re.IGNORECASE)
_ARTICLE_BEFORE = re.compile(r"(?<![\w'-])(a|an)(\s+)\Z", re.IGNORECASE)
# Words a noun phrase may start with before the head noun: the parser's mention may or may not include them.
_NP_WORDS = frozenset({"a", "an", "the", *lx.COLOURS, *lx.MATERIALS, *lx.SIZES,
                       *(w for w in lx.NUMBERS if " " not in w)})
# Fact axes: ("x", a, b) means a is left of b; "y": a in front of b; "z": a lower than b.
# canonical kind -> (axis, the fact reads anchor before subject): the binary kinds' facts in one look-up
_FACT_FORM = {"left_of": ("x", False), "in_front_of": ("y", False), "above": ("z", True), "on_top_of": ("z", True)}
_SEQUENCE_AXIS = {"left_to_right": "x", "front_to_back": "y", "top_to_bottom": "z"}


# --- public API -------------------------------------------------------------------------------------------


def candidate_edits(graph: SceneGraph, rules: Sequence[Rule], text: str | None = None) -> list[CandidateEdit]:
    """Every edit the rules could make to the graph's prompt, each checked on its own (previews, tests)."""
    return _Context(graph, graph.text if text is None else text).candidates(list(rules))[0]


def rejections(graph: SceneGraph, rules: Sequence[Rule], text: str | None = None) -> list[Rejection]:
    """Why each edit the rules might make to the graph's prompt is not safe."""
    return _Context(graph, graph.text if text is None else text).candidates(list(rules))[1]


def perturb(text: str, *, rules: Sequence[Rule], n_edits: int = 1, seed: int = 0,
            graph: SceneGraph | None = None) -> Perturbation:
    """Changes `n_edits` relations of `text`; raises PerturbationError with every reason when it cannot."""
    if isinstance(n_edits, bool) or not isinstance(n_edits, int) or not 1 <= n_edits <= MAX_EDITS:
        raise ValueError(f"n_edits must be an integer from 1 to {MAX_EDITS}, got {n_edits!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    rules = list(rules)
    if not rules:
        raise ValueError("rules: at least one rule is needed")
    for rule in rules:
        if not isinstance(rule, Rule):
            raise ValueError("rules: every rule must be a Rule")
    if graph is None:
        graph = _parse(text)
    elif graph.text and graph.text != text:
        raise ValueError("graph: it was parsed from another text")
    ctx = _Context(graph, text)
    rng = random.Random(seed)
    # Candidates are built lazily (most prompts need one or two): pools hold (relation index, extra) per rule.
    pools = {i: ctx.descriptors(rule) for i, rule in enumerate(rules)}
    failed: list[Rejection] = []
    for _ in range(MAX_ATTEMPTS):
        chosen = ctx.choose(rng, rules, pools, n_edits)
        if chosen is None:
            break
        result, problem = ctx.apply(chosen, seed)
        if problem is None:
            return result
        # Drop the edits the parser does not read back on their own (or the last one); the others stay pooled.
        culprits = [(chosen[0], problem)] if len(chosen) == 1 else [
            (c, p) for c in chosen for p in [ctx.apply([c], seed)[1]] if p is not None] or [(chosen[-1], problem)]
        for culprit, why in culprits:
            failed.append(Rejection(culprit.rule.name, f"{VERIFICATION_FAILED}: {why} "
                                                       f"(editing {ctx.quote(culprit.before)})"))
            pool = pools[{id(rule): i for i, rule in enumerate(rules)}[id(culprit.rule)]]
            if culprit.descriptor in pool:
                pool.remove(culprit.descriptor)
            ctx.broken.add((id(culprit.rule), culprit.descriptor))
    # The slow path: every reason, for the researcher.
    valid, reasons = ctx.candidates(rules)
    valid = [c for c in valid if (id(c.rule), c.descriptor) not in ctx.broken]
    reasons += failed
    reasons.append(Rejection("", f"{TOO_FEW_EDITS}: {n_edits} compatible edit(s) needed, {len(valid)} valid "
                                 f"candidate(s) found"))
    raise PerturbationError(reasons)


def _parse(text: str) -> SceneGraph:
    from ml.spatial.parser import parse  # the parser is the heavier module; the web process may never need it

    return parse(text)


_full_parse = _parse
# Verification reads the perturbed text back with the parser's own builder lists (object keys, unparsed spans,
# relations by object index) instead of the SceneGraph built from them: the same parse, without creating its
# instances. False reads the full SceneGraph back (tests compare the two); so does a substituted `_parse`.
_FAST_READ_BACK = True
_parse_raw = None  # ml.spatial.parser._parse_raw, imported on first use


def _read_back(text: str) -> tuple[dict | list, list[tuple[int, int]], list[tuple]]:
    """(object keys by id or index, unparsed (start, end) spans, (kind, subject, anchors, param, span) relations) of the
    parse of `text`; subjects and anchors index `keys`."""
    global _parse_raw
    if not _FAST_READ_BACK or _parse is not _full_parse:
        return _graph_read_back(_parse(text))
    if _parse_raw is None:
        from ml.spatial.parser import _parse_raw
    built = _parse_raw(text)
    # The builder's by_key maps each object's key (name, sorted attributes, count: SceneObject.key) to its index;
    # an entry is made when the object is made and keys are never shared, so its order is the objects'.
    return list(built.by_key), built.unparsed, built.rels


def _graph_read_back(graph: SceneGraph) -> tuple[dict, list[tuple[int, int]], list[tuple]]:
    keys = {o.id: o.key for o in graph.objects}
    return (keys, [(s.start, s.end) for s in graph.unparsed],
            [(r.kind, r.subject or None, r.anchors, r.param, None) for r in graph.relations])


# --- the engine -------------------------------------------------------------------------------------------


class _Context:
    """One prompt's tables: object keys, canonical relations, mention noun phrases, implied order facts."""

    def __init__(self, graph: SceneGraph, text: str) -> None:
        self.graph = graph
        self.text = text
        self._reversed: str | None = None  # the text backwards, for _previous_word_reversed
        keys: dict[str, tuple] = {}
        key_count: dict[tuple, int] = {}
        mentions: dict[str, tuple] = {}
        for o in graph.objects:  # SceneObject.key, without the property call
            attributes = o.attributes
            key = (o.name, attributes if type(attributes) is tuple and len(attributes) < 2
                   else tuple(sorted(attributes)), o.count)
            object_id = o.id
            keys[object_id] = key
            key_count[key] = key_count.get(key, 0) + 1
            mentions[object_id] = o.mentions
        self.keys = keys
        self.key_count = key_count  # plain dicts with counts > 0 (no Counter: cheaper, same comparisons)
        self.mentions = mentions
        self._np_cache: dict[tuple[int, int], Span] = {}
        canonical = []
        canon_count: dict[tuple, int] = {}
        all_facts = []
        fact_count: dict[tuple, int] = {}
        binary = []
        sequences = []
        for i, r in enumerate(graph.relations):
            kind, anchors = r.kind, r.anchors
            form = _CANON_FORM.get(kind)
            if form is not None and form[2] == 0 and len(anchors) == 1:  # _canon and _facts, written out
                value, exchanged, _ = form
                subject, anchor = (anchors[0], r.subject) if exchanged else (r.subject, anchors[0])
                c = (value, keys[subject] if subject else None, keys[anchor], r.param)
                fact_form = _FACT_FORM.get(value)
                if fact_form is None or c[1] == c[2]:
                    facts = ()
                else:
                    facts = ((fact_form[0], c[2], c[1]),) if fact_form[1] else ((fact_form[0], c[1], c[2]),)
            else:
                c = _canon(kind, r.subject, anchors, r.param, keys)
                facts = _facts(c)
            canonical.append(c)
            canon_count[c] = canon_count.get(c, 0) + 1
            all_facts.append(facts)
            for fact in facts:
                fact_count[fact] = fact_count.get(fact, 0) + 1
            # relation indices by what the rules edit
            if kind in _BINARY:
                binary.append(i)
            elif kind == RelationKind.SEQUENCE:
                sequences.append(i)
        self.canonical = canonical
        self.canon_count = canon_count
        self.canonical_set = set(canonical)
        self.facts = all_facts
        self.fact_count = fact_count
        self.binary = binary
        self.sequences = sequences
        self._phrases: dict[int, Span | str] = {}
        self._clauses: dict[int, tuple | str] = {}
        self._built: dict[tuple, CandidateEdit | str] = {}
        self.broken: set[tuple] = set()  # (rule id, descriptor) whose edit the parser did not read back

    # canonical forms ---------------------------------------------------------------------------------------

    def canon(self, kind: RelationKind, subject: str | None, anchors: tuple[str, ...], param: str) -> tuple:
        return _canon(kind, subject, anchors, param, self.keys)

    # text helpers ------------------------------------------------------------------------------------------

    def quote(self, relation: Relation) -> str:
        if relation.span is None:
            return f"the {relation.kind.value} relation"
        return repr(self.sentence_of(relation.span))

    def sentence_of(self, span: Span) -> str:
        text = self.text
        start = max(text.rfind(".", 0, span.start), text.rfind("!", 0, span.start), text.rfind("?", 0, span.start))
        ends = [i for i in (text.find(".", span.end), text.find("!", span.end), text.find("?", span.end)) if i >= 0]
        return text[start + 1: min(ends) + 1 if ends else len(text)].strip()

    def noun_phrase(self, mention: Span) -> Span:
        """The mention with the determiner, number and attribute words in front of it ("the red mug")."""
        cache_key = (mention.start, mention.end)  # a tuple hashes in C, a Span in its dataclass __hash__
        cached = self._np_cache.get(cache_key)
        if cached is not None:
            return cached
        text, start = self.text, mention.start
        rev = self._reversed
        if rev is None:
            rev = self._reversed = text[::-1]
        while True:
            word = _previous_word_reversed(rev, start)
            if word is None:
                break
            word_start, lower = word
            if lower in _NP_WORDS:
                start = word_start
                continue
            if lower == "of":  # "a pair of", "a couple of"
                noun = _previous_word_reversed(rev, word_start)
                det = _previous_word_reversed(rev, noun[0]) if noun and noun[1] in ("pair", "couple") else None
                if det and det[1] in ("a", "the"):
                    start = det[0]
                    continue
            break
        result = _new_span(start, mention.end)
        self._np_cache[cache_key] = result
        return result

    def locate_phrase(self, relation: Relation) -> Span | str:
        """The binary phrase of `relation` in the text, or why it cannot be found uniquely."""
        span = relation.span
        if span is None:
            return f"{AMBIGUOUS}: the {relation.kind.value} relation has no span in the text"
        found = [_new_span(m.start(), m.end())
                 for m in _PHRASE_RE[relation.kind].finditer(self.text, span.start, span.end)]
        if len(found) > 1:  # a clause-wide span: keep the occurrence between the subject and the anchor
            found = [p for p in found if not isinstance(self.find_clause(relation, p), str)]
        if len(found) != 1:
            return (f"{AMBIGUOUS}: {'no' if not found else len(found)} '{relation.kind.value}' phrase(s) in "
                    f"{span.text(self.text)!r}")
        return found[0]

    def find_clause(self, relation: Relation, phrase: Span) -> tuple[Span, Span | None, Span] | str:
        """(subject noun phrase, copula or None, anchor noun phrase) around the phrase, in "S is P A" order."""
        text = self.text
        # The nearest mention of each on its side of the phrase (a mention only grows to the left, over its
        # determiner and attributes, so its end is the noun phrase's end).
        before = [m for m in self.mentions.get(relation.subject, ()) if m.end <= phrase.start]
        after = [m for m in self.mentions.get(relation.anchors[0], ()) if m.start >= phrase.end]
        subject_np = self.noun_phrase(max(before, key=_SPAN_END)) if before else None
        if subject_np is not None and not _COPULA_RE.match(text, subject_np.end, phrase.start):
            subject_np = None
        anchor_np = self.noun_phrase(min(after, key=_SPAN_START)) if after else None
        if anchor_np is not None and (anchor_np.start < phrase.end
                                      or not _SPACE_RE.match(text, phrase.end, anchor_np.start)):
            anchor_np = None
        if subject_np is None or anchor_np is None:
            return (f"{AMBIGUOUS}: cannot find {'the subject' if subject_np is None else 'the anchor'} right "
                    f"{'before' if subject_np is None else 'after'} {phrase.text(text)!r} in "
                    f"{self.sentence_of(phrase)!r}")
        match = _IS_ARE_RE.search(text[subject_np.end:phrase.start])
        copula = _new_span(subject_np.end + match.start(), subject_np.end + match.end()) if match else None
        return subject_np, copula, anchor_np

    def definite(self, object_id: str) -> str:
        """The object's first noun phrase made definite: "a red mug" -> "the red mug", "three books" -> "the
        three books"."""
        np = self.noun_phrase(self.mentions[object_id][0]).text(self.text)
        first, _, rest = np.partition(" ")
        if first.lower() in ("a", "an", "the") and rest:
            return "the " + rest
        return "the " + np[:1].lower() + np[1:]

    # candidates --------------------------------------------------------------------------------------------

    def candidates(self, rules: list[Rule]) -> tuple[list[CandidateEdit], list[Rejection]]:
        found: list[CandidateEdit] = []
        rejections: list[Rejection] = []
        for rule in rules:
            descriptors = self.descriptors(rule)
            for descriptor in descriptors:
                item = self.build(rule, descriptor)
                if isinstance(item, str):
                    rejections.append(Rejection(rule.name, item))
                else:
                    found.append(item)
            if not descriptors:
                rejections.append(Rejection(rule.name, f"{NOT_APPLICABLE}: {_NOT_APPLICABLE[rule.kind]}"))
        return found, rejections

    def descriptors(self, rule: Rule) -> list[tuple[int, str | None]]:
        """(relation index, new anchor id or None) of every edit the rule might make, before any checks."""
        relations = self.graph.relations
        kind = rule.kind
        if kind == RuleKind.FLIP_DIRECTION:
            kinds = _AXIS_KINDS[tuple(rule.params["axes"])]
            return [(i, None) for i in self.binary if relations[i].kind in kinds]
        if kind == RuleKind.SWAP_OBJECTS:
            return [(i, None) for i in self.binary]
        if kind == RuleKind.MOVE_ANCHOR:
            ids = list(self.keys)
            found = []
            for i in self.binary:
                relation = relations[i]
                subject, anchor = relation.subject, relation.anchors[0]
                found += [(i, o) for o in ids if o != subject and o != anchor]
            return found
        return [(i, None) for i in self.sequences]

    def build(self, rule: Rule, descriptor: tuple[int, str | None]) -> CandidateEdit | str:
        """The edit, checked on its own, or why it is rejected."""
        cached = self._built.get((id(rule), descriptor))
        if cached is None:
            cached = self._build(rule, descriptor)
            if not isinstance(cached, str):
                cached = self.check(cached) or cached
            self._built[(id(rule), descriptor)] = cached
        return cached

    def _build(self, rule: Rule, descriptor: tuple[int, str | None]) -> CandidateEdit | str:
        index, extra = descriptor
        relation = self.graph.relations[index]
        kind = relation.kind
        if rule.kind == RuleKind.FLIP_DIRECTION:
            phrase = self.phrase(index)
            if isinstance(phrase, str):
                return phrase
            old = phrase.text(self.text)
            new = _FLIP_PHRASE[(kind, old.lower())]
            new = new[0].upper() + new[1:] if old[:1].isupper() else new
            after = Relation(lx.FLIPS[kind], relation.subject, relation.anchors, relation.param, relation.span)
            return self.make(rule, descriptor, relation, after, ((phrase.start, phrase.end, new),))
        if rule.kind == RuleKind.SWAP_OBJECTS:
            if kind == RelationKind.NEXT_TO:
                return f"{NO_OP}: 'next to' is symmetric; swapping changes nothing in {self.quote(relation)}"
            if self.keys[relation.subject] == self.keys[relation.anchors[0]]:
                return f"{NO_OP}: both objects of {self.quote(relation)} are the same"
            parts = self.clause(index)
            if isinstance(parts, str):
                return parts
            subject_np, copula, anchor_np = parts
            replacements = [(subject_np.start, subject_np.end, self.moved(anchor_np, subject_np.start)),
                            (anchor_np.start, anchor_np.end, self.moved(subject_np, anchor_np.start))]
            if copula is not None:
                verb = "is" if self.keys[relation.anchors[0]][2] == 1 else "are"  # the key's count
                if copula.text(self.text).lower() != verb:
                    replacements.insert(1, (copula.start, copula.end, verb))
            after = Relation(kind, relation.anchors[0], (relation.subject,), relation.param, relation.span)
            return self.make(rule, descriptor, relation, after, tuple(replacements))
        if rule.kind == RuleKind.MOVE_ANCHOR:
            anchor = relation.anchors[0]
            if len(self.mentions.get(anchor, ())) < 2:
                return (f"{DROPS_OBJECT}: the anchor of {self.quote(relation)} is mentioned nowhere else; moving "
                        f"it would drop the object")
            if self.keys[extra] in (self.keys[relation.subject], self.keys[anchor]) or not self.mentions[extra]:
                return f"{NO_OP}: the new anchor of {self.quote(relation)} is the same object"
            parts = self.clause(index)
            if isinstance(parts, str):
                return parts
            anchor_np = parts[2]
            after = Relation(kind, relation.subject, (extra,), relation.param, relation.span)
            return self.make(rule, descriptor, relation, after,
                             ((anchor_np.start, anchor_np.end, self.definite(extra)),), uses=(anchor,))
        items = self.sequence_items(relation)
        if isinstance(items, str):
            return items
        order = [object_id for object_id, _ in items]  # objects in text order
        if rule.kind == RuleKind.REVERSE_SEQUENCE:
            new_order = order[::-1]
        else:
            steps = rule.params["steps"] % len(order)
            if steps == 0:
                return (f"{NO_OP}: rotating {len(order)} items by {rule.params['steps']} leaves "
                        f"{self.quote(relation)} as it is")
            new_order = order[steps:] + order[:steps]
        anchors = tuple(new_order) if list(relation.anchors) == order else tuple(new_order[::-1])
        by_id = dict(items)
        replacements = tuple((span.start, span.end, self.moved(by_id[new_id], span.start))
                             for (old_id, span), new_id in zip(items, new_order, strict=True) if old_id != new_id)
        after = Relation(kind, None, anchors, relation.param, relation.span)
        return self.make(rule, descriptor, relation, after, replacements)

    def phrase(self, index: int) -> Span | str:
        if index not in self._phrases:
            self._phrases[index] = self.locate_phrase(self.graph.relations[index])
        return self._phrases[index]

    def clause(self, index: int) -> tuple[Span, Span | None, Span] | str:
        if index not in self._clauses:
            phrase = self.phrase(index)
            self._clauses[index] = phrase if isinstance(phrase, str) else self.find_clause(
                self.graph.relations[index], phrase)
        return self._clauses[index]

    def sequence_items(self, relation: Relation) -> list[tuple[str, Span]] | str:
        """(object id, noun phrase) of each item, in text order, found inside the sequence's span."""
        span = relation.span
        if span is None:
            return f"{AMBIGUOUS}: the sequence has no span in the text"
        if len(set(relation.anchors)) != len(relation.anchors):
            return f"{AMBIGUOUS}: an object appears twice in the sequence {self.quote(relation)}"
        items = []
        for object_id in relation.anchors:
            inside = [m for m in self.mentions.get(object_id, ()) if span.start <= m.start and m.end <= span.end]
            if len(inside) != 1:
                return (f"{AMBIGUOUS}: {'no' if not inside else 'several'} mention(s) of an item inside the "
                        f"sequence {span.text(self.text)!r}")
            np = self.noun_phrase(inside[0])
            items.append((object_id, np))  # the span may leave out the first item's article
        items.sort(key=lambda item: item[1].start)
        order = [object_id for object_id, _ in items]
        if order != list(relation.anchors) and order != list(relation.anchors[::-1]):
            return f"{AMBIGUOUS}: the items of {span.text(self.text)!r} are not in the sequence's order"
        return items

    def moved(self, np: Span, destination: int) -> str:
        """The noun phrase's text as it must read at `destination` (capitalised only at a sentence start)."""
        text = np.text(self.text)
        if _sentence_start(self.text, np.start) and text.split(" ", 1)[0].lower() in _NP_WORDS:
            text = text[0].lower() + text[1:]
        if _sentence_start(self.text, destination):
            text = text[0].upper() + text[1:]
        return text

    def make(self, rule: Rule, descriptor: tuple[int, str | None], before: Relation, after: Relation,
             replacements: tuple, uses: tuple[str, ...] = ()) -> CandidateEdit:
        index = descriptor[0]
        canonical_after = self.canon(after.kind, after.subject, after.anchors, after.param)
        return _new_candidate({"rule": rule, "index": index, "descriptor": descriptor, "before": before,
                               "after": after, "replacements": tuple([self.agree(r) for r in replacements]),
                               "canonical_before": self.canonical[index], "canonical_after": canonical_after,
                               "facts_before": self.facts[index], "facts_after": _facts(canonical_after),
                               "uses": uses})

    def agree(self, replacement: tuple[int, int, str]) -> tuple[int, int, str]:
        """Makes "a"/"an" agree with the word after it: the replacement's own article, and one right before it
        (which the replacement then takes over, so spans stay exact)."""
        start, end, new = replacement
        first, sep, rest = new.partition(" ")
        if sep and rest and first.lower() in ("a", "an"):
            article = indefinite_article(rest)
            if first.lower() != article:
                new = (article.capitalize() if first[0].isupper() else article) + " " + rest
        match = _ARTICLE_BEFORE.search(self.text, max(0, start - 4), start)
        if match and new:
            article = indefinite_article(new)
            if match.group(1).lower() != article:
                article = article.capitalize() if match.group(1)[0].isupper() else article
                return match.start(1), end, article + match.group(2) + new
        return start, end, new

    def check(self, candidate: CandidateEdit) -> str | None:
        """Why this edit on its own is unsafe, or None."""
        if candidate.canonical_after == candidate.canonical_before:
            return f"{NO_OP}: the edit leaves {self.quote(candidate.before)} meaning the same"
        if self.canon_count.get(candidate.canonical_after, 0):
            return f"{NO_OP}: the edit of {self.quote(candidate.before)} would repeat another relation of the prompt"
        if self.canon_count.get(candidate.canonical_before, 0) > 1:
            return (f"{CONTRADICTION}: {self.quote(candidate.before)} is stated twice; editing one copy contradicts "
                    f"the other")
        fact_count = self.fact_count
        own = candidate.facts_before
        for fact in candidate.facts_after:
            opposite = (fact[0], fact[2], fact[1])
            if fact_count.get(opposite, 0) - own.count(opposite) > 0:
                return (f"{CONTRADICTION}: the edited {self.quote(candidate.before)} would contradict another "
                        f"relation of the prompt")
        return None

    # choosing and applying ---------------------------------------------------------------------------------

    def choose(self, rng: random.Random, rules: list[Rule], pools: dict[int, list[tuple]],
               n_edits: int) -> list[CandidateEdit] | None:
        """n_edits compatible edits: a rule by weight among the rules that still have one, then one of its edits
        uniformly. Rejected descriptors leave the pools for good; the others stay for the next attempt."""
        remaining = {i: pool for i, pool in pools.items() if pool}
        chosen: list[CandidateEdit] = []
        while len(chosen) < n_edits:
            if not remaining:
                return None
            rule_ids = sorted(remaining)
            if len(rule_ids) == 1:
                pick = rule_ids[0]
            else:  # rng.choices(rule_ids, weights)[0], the same single random() draw, without its checks
                cum_weights = list(accumulate([rules[i].weight for i in rule_ids]))
                total = cum_weights[-1] + 0.0
                if total <= 0.0 or not math.isfinite(total):  # choices() raises its error
                    pick = rng.choices(rule_ids, [rules[i].weight for i in rule_ids])[0]
                else:
                    pick = rule_ids[bisect(cum_weights, rng.random() * total, 0, len(rule_ids) - 1)]
            pool = remaining[pick]
            if pool is pools[pick]:  # copied on first use: the pools lose only rejected descriptors
                pool = remaining[pick] = list(pool)
            while pool:
                descriptor = pool.pop(rng.randrange(len(pool)))
                candidate = self.build(rules[pick], descriptor)
                if isinstance(candidate, str):
                    pools[pick].remove(descriptor)
                elif self.compatible(candidate, chosen):
                    chosen.append(candidate)
                    break
            if not pool:
                del remaining[pick]
        return chosen

    def compatible(self, candidate: CandidateEdit, chosen: list[CandidateEdit]) -> bool:
        if not chosen:
            return True
        for other in chosen:
            if other.index == candidate.index or other.canonical_after == candidate.canonical_after:
                return False
            for start, end, _ in candidate.replacements:
                for other_start, other_end, _ in other.replacements:
                    if start < other_end and other_start < end:
                        return False
        group = [*chosen, candidate]
        removed = Counter(f for c in group for f in c.facts_before)
        added = Counter(f for c in group for f in c.facts_after)
        for fact in added:
            opposite = (fact[0], fact[2], fact[1])
            if self.fact_count.get(opposite, 0) - removed[opposite] + added[opposite] > 0:
                return False
        lost = Counter(u for c in group for u in c.uses)
        return all(len(self.mentions[o]) > n for o, n in lost.items())

    def apply(self, chosen: list[CandidateEdit], seed: int) -> tuple[Perturbation | None, str | None]:
        """The perturbed text (built right to left) with its edits, checked by re-parsing; or the problem."""
        text = self.text
        replacements = sorted((r for c in chosen for r in c.replacements), reverse=True)
        pieces = []
        end = len(text)
        for start, stop, new in replacements:  # right to left: earlier offsets stay valid
            pieces.append(text[stop:end])
            pieces.append(new)
            end = start
        pieces.append(text[:end])
        perturbed = "".join(reversed(pieces))
        ordered = replacements[::-1]
        edits = []
        for candidate in chosen if len(chosen) == 1 else sorted(chosen, key=lambda c: c.index):
            starts = [s for s, _, _ in candidate.replacements]
            ends = [e for _, e, _ in candidate.replacements]
            if candidate.before.span:
                starts.append(candidate.before.span.start)
                ends.append(candidate.before.span.end)
            low, high = min(starts), max(ends)  # the relation phrase and every replaced piece
            span_before = _new_span(low, high)
            span_after = _new_span(_map(low, ordered, False), _map(high, ordered, True))
            after = candidate.after  # its span mapped to the new text
            after_span = after.span
            if after_span is not None:
                after_span = (_map(after_span.start, ordered, False), _map(after_span.end, ordered, True))
            edits.append(_new_edit({"rule": candidate.rule.name,
                                    "relation_before": self.relation_dict(candidate.before, text),
                                    "relation_after": self.fields_dict(after.kind, after.subject, after.anchors,
                                                                       after.param, after_span, perturbed),
                                    "span_before": span_before, "span_after": span_after}))
        problem = self.verify(perturbed, chosen, [e.span_after for e in edits])
        if problem is not None:
            return None, problem
        return _new_perturbation({"original": text, "perturbed": perturbed, "edits": tuple(edits),
                                  "seed": seed}), None

    def verify(self, perturbed: str, chosen: list[CandidateEdit], edited: list[Span]) -> str | None:
        keys, unparsed, relations = _read_back(perturbed)
        if isinstance(keys, dict):
            count: dict[tuple, int] = {}
            for key in keys.values():
                count[key] = count.get(key, 0) + 1
        else:
            count = dict.fromkeys(keys, 1)  # _read_back's keys are distinct
        if count != self.key_count:
            return "the perturbed text mentions other objects"
        for start, end in unparsed:
            if any(start < span.end and span.start < end for span in edited):
                return f"the parser cannot read the edited text {perturbed[start:end]!r}"
        # SceneGraph.diff, with the original's canonical forms computed once and look-ups for object keys.
        mine = self.canonical_set
        theirs = {_canon_read_back(kind, subject, anchors, param, keys)
                  for kind, subject, anchors, param, _ in relations}
        removed, added = mine - theirs, theirs - mine
        if removed != {c.canonical_before for c in chosen} or added != {c.canonical_after for c in chosen}:
            return "re-parsing the perturbed text does not give exactly the edited relations"
        return None

    def relation_dict(self, relation: Relation, text: str) -> dict:
        span = relation.span
        return self.fields_dict(relation.kind, relation.subject, relation.anchors, relation.param,
                                None if span is None else (span.start, span.end), text)

    def fields_dict(self, kind: RelationKind, subject: str | None, anchors: tuple[str, ...], param: str,
                    span: tuple[int, int] | None, text: str) -> dict:
        """relation_dict of a relation with these fields (span as (start, end)), without building it."""
        keys = self.keys
        return {"kind": _KIND_VALUE[kind] if type(kind) is RelationKind else kind.value,  # Relation.to_dict()
                "subject": subject, "anchors": list(anchors), "param": param,
                "span": None if span is None else [span[0], span[1]],
                "subject_key": _key_list(keys[subject]) if subject else None,
                "anchor_keys": [_key_list(keys[a]) for a in anchors],
                "text": "" if span is None else text[span[0]:span[1]]}


_NOT_APPLICABLE = {
    RuleKind.FLIP_DIRECTION: "no directional relation on the rule's axes",
    RuleKind.SWAP_OBJECTS: "no relation between two objects",
    RuleKind.REVERSE_SEQUENCE: "no sequence of objects",
    RuleKind.ROTATE_SEQUENCE: "no sequence of objects",
    RuleKind.MOVE_ANCHOR: "no relation between two objects, or no third object to move the anchor to",
}


# kind -> (value of the kind after INVERSE, subject and anchor exchanged, shape): one look-up instead of three.
# Shape 0: subject and anchors as they are, 1: next_to (sorted pair), 2: between (sorted anchors), 3: sequence.
_CANON_FORM = {kind: (_KIND_VALUE[INVERSE.get(kind, kind)], kind in INVERSE,
                      {"next_to": 1, "between": 2, "sequence": 3}.get(_KIND_VALUE[INVERSE.get(kind, kind)], 0))
               for kind in RelationKind}


def _canon(kind: RelationKind, subject: str | None, anchors: tuple[str, ...], param: str, keys: dict) -> tuple:
    """SceneGraph.canonical_relation without the linear object look-ups (a test keeps the two equal)."""
    form = _CANON_FORM.get(kind)
    if form is None:
        return _canon_general(kind, subject, anchors, param, keys)
    value, exchanged, shape = form
    if exchanged:
        subject, anchors = anchors[0], (subject,)
    if shape == 0:
        if len(anchors) == 1:
            return (value, keys[subject] if subject else None, keys[anchors[0]], param)
        return (value, keys[subject] if subject else None, *(keys[a] for a in anchors), param)
    if shape == 1:
        pair = sorted((keys[subject], keys[anchors[0]]))
        return (value, pair[0], pair[1], param)
    if shape == 2:
        return (value, keys[subject], *sorted(keys[a] for a in anchors), param)
    anchor_keys = [keys[a] for a in anchors]
    if param in _REVERSED_SEQUENCE:
        param, anchor_keys = _REVERSED_SEQUENCE[param], anchor_keys[::-1]
    return (value, None, *anchor_keys, param)


def _canon_general(kind: RelationKind, subject: str | None, anchors: tuple[str, ...], param: str,
                   keys: dict) -> tuple:
    """_canon for a kind outside the table (it raises what SceneGraph.canonical_relation's look-ups would)."""
    if kind in INVERSE:
        kind, subject, anchors = INVERSE[kind], anchors[0], (subject,)
    value = _KIND_VALUE[kind]
    if value == "next_to":
        pair = sorted((keys[subject], keys[anchors[0]]))
        return (value, pair[0], pair[1], param)
    if value == "between":
        return (value, keys[subject], *sorted(keys[a] for a in anchors), param)
    if value == "sequence":
        anchor_keys = [keys[a] for a in anchors]
        if param in _REVERSED_SEQUENCE:
            param, anchor_keys = _REVERSED_SEQUENCE[param], anchor_keys[::-1]
        return (value, None, *anchor_keys, param)
    if len(anchors) == 1:
        return (value, None if subject is None else keys[subject], keys[anchors[0]], param)
    return (value, None if subject is None else keys[subject], *(keys[a] for a in anchors), param)


def _canon_read_back(kind: RelationKind, subject, anchors: tuple, param: str, keys) -> tuple:
    """_canon for _read_back's relations: subject None or a key of `keys` (an object index may be 0)."""
    form = _CANON_FORM.get(kind)
    if form is not None and form[2] == 0:  # the common shape; the others as in _canon_general
        value, exchanged, _ = form
        if exchanged:
            subject, anchors = anchors[0], (subject,)
        if len(anchors) == 1:
            return (value, None if subject is None else keys[subject], keys[anchors[0]], param)
        return (value, None if subject is None else keys[subject], *(keys[a] for a in anchors), param)
    return _canon_general(kind, subject, anchors, param, keys)


def _facts(canonical: tuple) -> tuple:
    """Pairwise order facts a canonical relation implies, for contradiction checks."""
    kind = canonical[0]
    form = _FACT_FORM.get(kind)
    if form is not None:
        if canonical[1] == canonical[2]:
            return ()
        return ((form[0], canonical[2], canonical[1]),) if form[1] else ((form[0], canonical[1], canonical[2]),)
    if kind == "sequence":
        axis = _SEQUENCE_AXIS.get(canonical[-1])
        keys = canonical[2:-1]
        if axis is None:
            return ()
        if axis == "z":  # top to bottom: the first item is the highest
            keys = keys[::-1]
        return tuple((axis, keys[i], keys[j]) for i in range(len(keys)) for j in range(i + 1, len(keys))
                     if keys[i] != keys[j])
    return ()


def _key_list(key: tuple) -> list:
    return [key[0], list(key[1]), key[2]]


def _previous_word(text: str, end: int) -> tuple[int, str] | None:
    """(start, lower-case word) of the word that ends right before the spaces before `end`."""
    i = end
    while i > 0 and text[i - 1] == " ":
        i -= 1
    if i == end or i == 0:
        return None
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "-'"):
        j -= 1
    if j == i:
        return None
    return j, text[j:i].lower()


# _previous_word read forwards in the reversed text: spaces, then word characters (str.isalnum() is exactly [^\W_]).
_REVERSED_WORD_RE = re.compile(r" +((?:[^\W_]|[-'])+)")


def _previous_word_reversed(reversed_text: str, end: int) -> tuple[int, str] | None:
    """_previous_word(text, end) given text[::-1]."""
    m = _REVERSED_WORD_RE.match(reversed_text, len(reversed_text) - end)
    if m is None:
        return None
    return len(reversed_text) - m.end(), m[1][::-1].lower()


def _sentence_start(text: str, position: int) -> bool:
    i = position
    while i > 0 and text[i - 1] in " \n\t\"'(":
        i -= 1
    return i == 0 or text[i - 1] in ".!?"


def _map(position: int, replacements: list[tuple[int, int, str]], is_end: bool) -> int:
    """Where an original offset lands in the new text (replacements sorted left to right)."""
    shift = 0
    for start, end, new in replacements:
        if position >= end:
            shift += len(new) - (end - start)
        elif position > start:  # inside a replaced piece: snap to its edge
            return start + shift + (len(new) if is_end else 0)
        else:
            break
    return position + shift
