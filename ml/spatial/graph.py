"""The scene graph: objects and the spatial relations between them, with the character spans they came from.

Pure Python (no Django, no torch). Shared by the parser (text -> graph), the prompt generator (graph -> text)
and the perturbation engine (graph + edits -> new text, checked by re-parsing).

Identity: an object is identified by its `key` = (name, attributes, count): "a red mug" and a later "the mug"
are one object (the parser links them); two mugs told apart by colour are two objects. Graph comparison
(`canonical`, `diff`) works on keys, not on ids or spans, so a generated graph and the graph parsed from its
text compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, order=True)
class Span:
    """Half-open character range [start, end) in the prompt text."""

    start: int
    end: int

    def text(self, source: str) -> str:
        return source[self.start : self.end]

    def to_list(self) -> list[int]:
        return [self.start, self.end]


class RelationKind(StrEnum):
    LEFT_OF = "left_of"
    RIGHT_OF = "right_of"
    IN_FRONT_OF = "in_front_of"
    BEHIND = "behind"
    ABOVE = "above"
    BELOW = "below"
    ON_TOP_OF = "on_top_of"
    UNDER = "under"
    NEXT_TO = "next_to"  # symmetric
    BETWEEN = "between"  # subject between anchors[0] and anchors[1] (unordered)
    IN_MIDDLE = "in_middle"  # subject in the middle / centre of the scene (no anchor) or of anchors[0]
    ALIGNED = "aligned"  # subject aligned with an edge; param = left|right|top|bottom|front|back
    SEQUENCE = "sequence"  # anchors = the ordered objects; param = a SequenceDirection; subject is None
    EXTREME = "extreme"  # subject is the leftmost/rightmost/...; param = an Extreme


class SequenceDirection(StrEnum):
    LEFT_TO_RIGHT = "left_to_right"
    RIGHT_TO_LEFT = "right_to_left"
    FRONT_TO_BACK = "front_to_back"
    BACK_TO_FRONT = "back_to_front"
    TOP_TO_BOTTOM = "top_to_bottom"
    BOTTOM_TO_TOP = "bottom_to_top"


class Extreme(StrEnum):
    LEFTMOST = "leftmost"
    RIGHTMOST = "rightmost"
    FRONTMOST = "frontmost"
    BACKMOST = "backmost"
    TOPMOST = "topmost"
    BOTTOMMOST = "bottommost"


# Pairs that say the same thing with subject and anchor exchanged: right_of(a, b) == left_of(b, a).
INVERSE = {
    RelationKind.RIGHT_OF: RelationKind.LEFT_OF,
    RelationKind.BEHIND: RelationKind.IN_FRONT_OF,
    RelationKind.BELOW: RelationKind.ABOVE,
    RelationKind.UNDER: RelationKind.ON_TOP_OF,
}
REVERSED_SEQUENCE = {
    SequenceDirection.RIGHT_TO_LEFT: SequenceDirection.LEFT_TO_RIGHT,
    SequenceDirection.BACK_TO_FRONT: SequenceDirection.FRONT_TO_BACK,
    SequenceDirection.BOTTOM_TO_TOP: SequenceDirection.TOP_TO_BOTTOM,
}

ObjectKey = tuple[str, tuple[str, ...], int]


@dataclass(frozen=True)
class SceneObject:
    id: str  # "o1", "o2", ... in order of first mention
    name: str  # head noun, singular, lower case: "mug", "book"
    attributes: tuple[str, ...] = ()  # sorted, lower case: ("ceramic", "red"); colour, material, size words
    count: int = 1  # "three books" -> 3
    mentions: tuple[Span, ...] = ()  # every mention in the text, first one first

    @property
    def key(self) -> ObjectKey:
        return (self.name, tuple(sorted(self.attributes)), self.count)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "attributes": list(self.attributes), "count": self.count,
                "mentions": [m.to_list() for m in self.mentions]}

    @classmethod
    def from_dict(cls, data: dict) -> SceneObject:
        return cls(id=data["id"], name=data["name"], attributes=tuple(data["attributes"]), count=data["count"],
                   mentions=tuple(Span(*m) for m in data["mentions"]))


@dataclass(frozen=True)
class Relation:
    kind: RelationKind
    subject: str | None  # object id; None for SEQUENCE
    anchors: tuple[str, ...] = ()  # object ids
    param: str = ""  # ALIGNED edge, SEQUENCE direction, EXTREME which
    span: Span | None = None  # the relation phrase in the text (for SEQUENCE, the whole sequence phrase)

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "subject": self.subject, "anchors": list(self.anchors),
                "param": self.param, "span": self.span.to_list() if self.span else None}

    @classmethod
    def from_dict(cls, data: dict) -> Relation:
        return cls(kind=RelationKind(data["kind"]), subject=data["subject"], anchors=tuple(data["anchors"]),
                   param=data["param"], span=Span(*data["span"]) if data["span"] else None)


CanonicalRelation = tuple  # (kind, subject key or None, anchor keys..., param)


@dataclass(frozen=True)
class SceneGraph:
    objects: tuple[SceneObject, ...] = ()
    relations: tuple[Relation, ...] = ()
    unparsed: tuple[Span, ...] = ()  # text the parser could not read (never silently dropped)
    text: str = field(default="", compare=False)

    def object(self, object_id: str) -> SceneObject:
        for obj in self.objects:
            if obj.id == object_id:
                return obj
        raise KeyError(object_id)

    def canonical_relation(self, relation: Relation) -> CanonicalRelation:
        """The relation in a form where equivalent phrasings compare equal."""
        kind, subject, anchors, param = relation.kind, relation.subject, list(relation.anchors), relation.param
        if kind in INVERSE:  # right_of(a, b) -> left_of(b, a)
            kind, subject, anchors = INVERSE[kind], anchors[0], [subject]
        key = lambda object_id: self.object(object_id).key  # noqa: E731
        if kind == RelationKind.NEXT_TO:
            pair = sorted([key(subject), key(anchors[0])])
            return (kind.value, pair[0], pair[1], param)
        if kind == RelationKind.BETWEEN:
            return (kind.value, key(subject), *sorted(key(a) for a in anchors), param)
        if kind == RelationKind.SEQUENCE:
            keys = [key(a) for a in anchors]
            if param in REVERSED_SEQUENCE:
                param, keys = REVERSED_SEQUENCE[SequenceDirection(param)].value, keys[::-1]
            return (kind.value, None, *keys, param)
        return (kind.value, key(subject) if subject else None, *(key(a) for a in anchors), param)

    def canonical(self) -> tuple[frozenset, frozenset]:
        """(object keys, canonical relations): what two graphs must share to mean the same scene."""
        return (frozenset(o.key for o in self.objects),
                frozenset(self.canonical_relation(r) for r in self.relations))

    def diff(self, other: SceneGraph) -> tuple[set, set]:
        """Canonical relations only in self (removed) and only in other (added)."""
        mine, theirs = self.canonical()[1], other.canonical()[1]
        return set(mine - theirs), set(theirs - mine)

    def same_scene(self, other: SceneGraph) -> bool:
        return self.canonical() == other.canonical()

    def to_dict(self) -> dict:
        return {"objects": [o.to_dict() for o in self.objects],
                "relations": [r.to_dict() for r in self.relations],
                "unparsed": [s.to_list() for s in self.unparsed]}

    @classmethod
    def from_dict(cls, data: dict, text: str = "") -> SceneGraph:
        return cls(objects=tuple(SceneObject.from_dict(o) for o in data["objects"]),
                   relations=tuple(Relation.from_dict(r) for r in data["relations"]),
                   unparsed=tuple(Span(*s) for s in data["unparsed"]), text=text)

    def stats(self) -> dict:
        """Derived numbers stored with each prompt and plotted on prompt-set pages."""
        kinds: dict[str, int] = {}
        for relation in self.relations:
            kinds[relation.kind.value] = kinds.get(relation.kind.value, 0) + 1
        return {"objects": len(self.objects), "relations": len(self.relations), "relation_kinds": kinds,
                "unparsed": len(self.unparsed), "words": len(self.text.split())}
