"""Template-based spatial prompt generator: a random scene layout, relations read off it, text written from them.

Pure Python (no Django, no torch). Deterministic by seed. Every relation is true in one random layout (each
object gets distinct ranks on the left-right, front-back and bottom-top axes), so a generated "perfect" prompt
never contradicts itself; the perturbation engine then breaks one to three of its relations.

The text uses only phrases of `ml.spatial.lexicon`, in these forms (one relation per clause):

    <NP> is|are <binary phrase> <NP>                     a red mug is to the left of the kettle
    <NP> is|are between|in between <NP> and <NP>
    <NP> is|are in the middle|in the center|...|centered
    <NP> is|are aligned with|along|flush with the <edge> edge
    <NP> is the <extreme> object / The <extreme> object is <NP>    (singular subjects only)
    From <a> to <b>: <NP>, <NP> and <NP>                 the sequence phrase ends its sentence
    <NP>, <NP> and <NP> in a row from <a> to <b>         (long style only)

Noun phrases: the first mention is indefinite ("a red mug", "an apple", "three books"), later ones definite
with every attribute and the count repeated ("the red mug", "the three books"), so each mention carries the
object's whole key. Long prompts are one or two clauses per sentence, an optional scene opener ("In a sunny
kitchen, ...") and filler sentences without spatial words or nouns to reach 40-120 words; short prompts are one
sentence whose clauses are joined by ", " and ", and ", with at most one sequence, written last. Plain prompts
are short ones at their simplest: no opener, each relation in its first phrase of the lexicon, one of each object
and no attribute but a colour word ("A red mug is to the left of a blue kettle.").
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from ml.spatial import lexicon as lx
from ml.spatial.graph import (
    INVERSE,
    REVERSED_SEQUENCE,
    Extreme,
    Relation,
    RelationKind,
    SceneGraph,
    SceneObject,
    SequenceDirection,
    Span,
)

CATEGORIES: tuple[str, ...] = tuple(lx.SCENES)
STYLES: tuple[str, ...] = ("short", "long", "plain")
MIN_OBJECTS, MAX_OBJECTS = 2, 12
MIN_RELATIONS, MAX_RELATIONS = 1, 11
LONG_WORDS = (40, 120)  # the paper's prompt lengths

# Scene openers: "In a sunny kitchen,". No adjective is an attribute word and no scene noun is an object noun.
OPENERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "kitchen": ("In", ("sunny", "bright", "cozy", "rustic", "modern")),
    "living room": ("In", ("cozy", "spacious", "bright", "quiet", "sunlit")),
    "classroom": ("In", ("bright", "quiet", "busy", "sunlit", "modern")),
    "office desk": ("At", ("tidy", "busy", "modern", "cluttered", "sunlit")),
    "beach": ("At", ("sunny", "sandy", "quiet", "breezy", "busy")),
    "street": ("In", ("quiet", "busy", "rainy", "sunny", "narrow")),
    "bedroom": ("In", ("cozy", "quiet", "bright", "tidy", "sunlit")),
    "garden": ("In", ("lush", "sunny", "quiet", "blooming", "peaceful")),
}
# What the opener calls the scene ("office desk" would put the object noun "desk" into the text).
SCENE_NOUNS = {"office desk": "home office"}

# Sentences that describe the mood but carry no spatial word, article, number, attribute or object noun.
FILLERS = (
    "Everything looks calm and tidy.",
    "It feels warm, quiet and welcoming.",
    "Soft daylight makes everything glow gently.",
    "Nothing looks cluttered or out of place.",
    "It is early morning and very quiet.",
    "Everything is neatly arranged and clearly visible.",
    "It looks as if someone just tidied up.",
    "Warm sunlight fills everything.",
    "Everything appears crisp, sharp and well lit.",
    "Details are sharp and textures look realistic.",
    "It feels relaxed and homely.",
    "Colours are muted and gentle.",
    "It is photographed in soft natural daylight.",
    "Everything seems peaceful and still.",
    "It feels like lazy weekend mornings.",
    "Everything is bathed in gentle daylight.",
    "It is captured with shallow depth of field.",
    "Everything has crisp edges and rich texture.",
)

COLOUR_MODES = ("some", "every")
# Colour words for colours="every": one per hue, none that reads as the renderer's sky or floor ("white",
# "beige") or nearly repeats another ("gray", "gold", "silver"); as many as the most objects a prompt has.
DISTINCT_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "grey", "teal",
                    "navy")
_COUNT_WORDS = {2: "two", 3: "three", 4: "four"}
_BINARY_AXES = ("horizontal", "depth", "vertical", "support", "next_to")
_AXIS_WEIGHTS = (4.0, 2.0, 1.5, 1.5, 1.0)
# The three directions a prompt can speak about; a researcher may keep a prompt set to some of them.
# horizontal: left of / right of / next to, rows left to right, between, in the middle, leftmost, left edge;
# depth: in front of / behind, rows front to back, frontmost, front edge; vertical: above / below / on top of /
# under, stacks, topmost, top edge.
AXES = ("horizontal", "depth", "vertical")
_AXIS_OF_BINARY = {"horizontal": "horizontal", "next_to": "horizontal", "depth": "depth", "vertical": "vertical",
                   "support": "vertical"}
_SEQUENCE_AXES = {  # axis index into the layout ranks, direction when ranks increase, the opposite direction
    0: (SequenceDirection.LEFT_TO_RIGHT, SequenceDirection.RIGHT_TO_LEFT),
    1: (SequenceDirection.FRONT_TO_BACK, SequenceDirection.BACK_TO_FRONT),
    2: (SequenceDirection.BOTTOM_TO_TOP, SequenceDirection.TOP_TO_BOTTOM),
}
# Edges and extremes: (axis, +1 for the highest rank / -1 for the lowest).
_EDGE_AXES = {"left": (0, -1), "right": (0, 1), "front": (1, -1), "back": (1, 1), "bottom": (2, -1), "top": (2, 1)}
_EXTREME_AXES = {Extreme.LEFTMOST: (0, -1), Extreme.RIGHTMOST: (0, 1), Extreme.FRONTMOST: (1, -1),
                 Extreme.BACKMOST: (1, 1), Extreme.BOTTOMMOST: (2, -1), Extreme.TOPMOST: (2, 1)}
_AXIS_GROUPS = {RelationKind.LEFT_OF: "x", RelationKind.RIGHT_OF: "x", RelationKind.NEXT_TO: "next",
                RelationKind.IN_FRONT_OF: "y", RelationKind.BEHIND: "y", RelationKind.ABOVE: "z",
                RelationKind.BELOW: "z", RelationKind.ON_TOP_OF: "z", RelationKind.UNDER: "z"}
_VOWEL_EXCEPTIONS = ("one", "once", "uni", "use", "usu", "eu", "ewe")


@dataclass(frozen=True)
class GeneratedPrompt:
    text: str
    graph: SceneGraph  # carries the exact spans of every mention and relation phrase in `text`
    category: str
    style: str
    seed: int


def indefinite_article(word: str) -> str:
    """ "a" or "an" for the word that follows (by spelling, with the common exceptions)."""
    lower = word.lower()
    if lower[:1] in ("a", "e", "i", "o", "u") and not lower.startswith(_VOWEL_EXCEPTIONS):
        return "an"
    return "a"


def max_relations(n_objects: int, axes: tuple[str, ...] = AXES) -> int:
    """How many relations the generator can write about `n_objects` objects without repeating itself."""
    return min(MAX_RELATIONS, len(set(axes)) * n_objects * (n_objects - 1) // 2 + n_objects)


def generate_prompt(*, seed: int, n_objects: int = 4, n_relations: int = 4, category: str | None = None,
                    style: str = "long", colours: str = "some", axes: tuple[str, ...] = AXES) -> GeneratedPrompt:
    """One prompt with exactly `n_objects` objects (each in at least one relation) and `n_relations` relations.

    colours: "some" (about a third of the objects carry a colour word, as people write) or "every" (each object
    has a colour word of its own, sizes kept, materials dropped: things are told apart by colour as well as by
    name, a renderer draws them in that colour).

    axes: the directions the relations speak about (AXES: horizontal, depth, vertical); all three by default."""
    axes = _validate(seed=seed, n_objects=n_objects, n_relations=n_relations, category=category, style=style,
                     colours=colours, axes=axes)
    rng = random.Random(seed)
    category = category if category is not None else CATEGORIES[rng.randrange(len(CATEGORIES))]
    objects = _choose_objects(rng, category, n_objects)
    if colours == "every":
        objects = _colour_every(rng, objects)
    if style == "plain":  # one of each object, colour words only
        objects = _distinct([_Obj(o.name, o.plural, tuple(a for a in o.attributes if a in lx.COLOURS), 1, o.ranks)
                             for o in objects])
    relations = _plan_relations(rng, objects, n_relations, style, axes)
    # A long prompt with many attribute words can run past 120 words: draw again with fewer attributes.
    for attempt in range(8):
        text, graph = _write(rng, category, objects, relations, style)
        words = len(text.split())
        if style != "long" or LONG_WORDS[0] <= words <= LONG_WORDS[1]:
            return GeneratedPrompt(text=text, graph=graph, category=category, style=style, seed=seed)
        if attempt >= 2:
            if colours == "every":  # the colour word stays: drop size words, then counts
                objects = [_Obj(o.name, o.plural, o.attributes[-1:], o.count if attempt < 5 else 1, o.ranks)
                           for o in objects]
            else:
                objects = [_Obj(o.name, o.plural, o.attributes[:1] if attempt < 5 else (),
                                o.count if attempt < 5 else 1, o.ranks) for o in objects]
            objects = _distinct(objects)
    raise ValueError(f"cannot write {n_relations} relations about {n_objects} objects in "
                     f"{LONG_WORDS[0]}-{LONG_WORDS[1]} words (seed {seed})")


def generate_prompts(*, seed: int, count: int, **kwargs) -> Iterator[GeneratedPrompt]:
    """A deterministic stream of prompts; each carries its own seed, so any one can be regenerated alone."""
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError(f"count must be an integer >= 0, got {count!r}")
    _validate_seed(seed)
    rng = random.Random(seed)
    for _ in range(count):
        yield generate_prompt(seed=rng.getrandbits(48), **kwargs)


# --- arguments --------------------------------------------------------------------------------------------


def _validate_seed(seed) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")


def _validate(*, seed, n_objects, n_relations, category, style, colours="some", axes=AXES) -> tuple[str, ...]:
    """Raises ValueError naming the first bad argument; returns the axes in AXES order."""
    _validate_seed(seed)
    if isinstance(axes, str) or not axes or any(axis not in AXES for axis in axes):
        raise ValueError(f"axes must be a non-empty list drawn from {', '.join(AXES)}, got {axes!r}")
    axes = tuple(axis for axis in AXES if axis in axes)
    for name, value, low, high in (("n_objects", n_objects, MIN_OBJECTS, MAX_OBJECTS),
                                   ("n_relations", n_relations, MIN_RELATIONS, MAX_RELATIONS)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    if n_relations > max_relations(n_objects, axes):
        raise ValueError(f"n_relations={n_relations} is more than {max_relations(n_objects, axes)}, the most "
                         f"relations the generator can write about {n_objects} objects along {', '.join(axes)}")
    if category is not None and category not in lx.SCENES:
        raise ValueError(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
    if category is not None and len(lx.SCENES[category]) < n_objects:
        raise ValueError(f"category {category!r} has only {len(lx.SCENES[category])} kinds of object, "
                         f"n_objects={n_objects}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if colours not in COLOUR_MODES:
        raise ValueError(f"colours must be one of {', '.join(COLOUR_MODES)}, got {colours!r}")
    return axes


# --- objects and layout -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Obj:
    name: str
    plural: str
    attributes: tuple[str, ...]  # in writing order: size, colour, material
    count: int
    ranks: tuple[int, int, int]  # left->right, front->back, bottom->top; distinct per axis

    @property
    def key(self) -> tuple:
        return (self.name, tuple(sorted(self.attributes)), self.count)


def _choose_objects(rng: random.Random, category: str, n: int) -> list[_Obj]:
    nouns = rng.sample(lx.SCENES[category], n)
    # Sometimes two objects share a noun and are told apart by colour ("a red mug ... the blue mug").
    twin = n >= 3 and rng.random() < 0.15
    if twin:
        nouns[-1] = nouns[0]
    axes = [rng.sample(range(n), n) for _ in range(3)]
    objects = []
    for i, (name, plural) in enumerate(nouns):
        attributes: list[str] = []
        roll = rng.random()
        if roll < 0.12:
            attributes = [rng.choice(lx.SIZES), rng.choice(lx.COLOURS)]
        elif roll < 0.30:
            attributes = [rng.choice(lx.COLOURS)]
        elif roll < 0.40:
            attributes = [rng.choice(lx.MATERIALS)]
        elif roll < 0.46:
            attributes = [rng.choice(lx.SIZES)]
        count = rng.choice((2, 3, 4)) if rng.random() < 0.15 else 1
        objects.append(_Obj(name, plural, tuple(attributes), count, (axes[0][i], axes[1][i], axes[2][i])))
    if twin:
        first, last = objects[0], objects[-1]
        colours = rng.sample(lx.COLOURS, 2)
        objects[0] = _Obj(first.name, first.plural, (colours[0],), first.count, first.ranks)
        objects[-1] = _Obj(last.name, last.plural, (colours[1],), last.count, last.ranks)
    return _distinct(objects)


def _colour_every(rng: random.Random, objects: list[_Obj]) -> list[_Obj]:
    """Every object gets a colour word of its own (after its size word, if any); materials are dropped."""
    palette = rng.sample(DISTINCT_COLOURS, len(objects))
    return [_Obj(obj.name, obj.plural, tuple(a for a in obj.attributes if a in lx.SIZES) + (colour,), obj.count,
                 obj.ranks) for obj, colour in zip(objects, palette, strict=True)]


def _distinct(objects: list[_Obj]) -> list[_Obj]:
    """Keys must stay distinct when attributes are dropped: a twin keeps a colour of its own."""
    seen: set = set()
    result = []
    for i, obj in enumerate(objects):
        if obj.key in seen:
            colour = lx.COLOURS[i % len(lx.COLOURS)]
            obj = _Obj(obj.name, obj.plural, (colour,), obj.count, obj.ranks)
            while obj.key in seen:
                colour = lx.COLOURS[(lx.COLOURS.index(colour) + 1) % len(lx.COLOURS)]
                obj = _Obj(obj.name, obj.plural, (colour,), obj.count, obj.ranks)
        seen.add(obj.key)
        result.append(obj)
    return result


# --- relations --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rel:
    kind: RelationKind
    subject: int | None  # object index
    anchors: tuple[int, ...] = ()
    param: str = ""

    def members(self) -> set[int]:
        return ({self.subject} if self.subject is not None else set()) | set(self.anchors)

    def pair_axis(self) -> tuple:
        """One binary relation per pair and axis: "the kite is under the chair" makes "... below ..." redundant."""
        group = _AXIS_GROUPS.get(self.kind)
        if group is None:
            return ("other", self.identity())
        return (group, frozenset((self.subject, *self.anchors)))

    def identity(self) -> tuple:
        """Equal for two relations that state the same fact (as SceneGraph.canonical_relation, on indices)."""
        kind, subject, anchors, param = self.kind, self.subject, self.anchors, self.param
        if kind in INVERSE:
            kind, subject, anchors = INVERSE[kind], anchors[0], (subject,)
        if kind in (RelationKind.NEXT_TO, RelationKind.BETWEEN):
            return (kind, subject if kind == RelationKind.BETWEEN else None, frozenset(anchors) | (
                {subject} if kind == RelationKind.NEXT_TO else set()), param)
        if kind == RelationKind.SEQUENCE and param in REVERSED_SEQUENCE:
            return (kind, None, anchors[::-1], REVERSED_SEQUENCE[SequenceDirection(param)].value)
        return (kind, subject, anchors, param)


def _plan_relations(rng: random.Random, objects: list[_Obj], n_relations: int, style: str,
                    axes: tuple[str, ...] = AXES) -> list[_Rel]:
    """`n_relations` distinct relations, true in the layout, that together mention every object."""
    n = len(objects)
    uncovered = set(range(n))
    seen: set = set()
    relations: list[_Rel] = []
    sequences = 0
    for _ in range(2000):
        if len(relations) == n_relations:
            break
        left = n_relations - len(relations)
        must = len(uncovered) if left == 1 else len(uncovered) - 2 * (left - 1)
        if must >= 3:
            relation = _sequence(rng, objects, sorted(uncovered), extra=0, axes=axes)
        elif must > 0:
            chosen = rng.sample(sorted(uncovered), must)
            if must == 1:
                chosen.append(rng.choice([i for i in range(n) if i != chosen[0]]))
            relation = _binary(rng, objects, chosen[0], chosen[1], axes)
        else:
            relation = _random_relation(rng, objects, uncovered, short=style != "long", sequences=sequences,
                                        axes=axes)
        if relation is None or relation.identity() in seen or relation.pair_axis() in seen:
            continue
        seen.add(relation.identity())
        seen.add(relation.pair_axis())
        relations.append(relation)
        uncovered -= relation.members()
        sequences += relation.kind == RelationKind.SEQUENCE
    else:  # unreachable with max_relations(): every layout offers more distinct relations than that
        raise ValueError(f"cannot find {n_relations} distinct relations among {n} objects")
    rng.shuffle(relations)
    return relations


def _random_relation(rng: random.Random, objects: list[_Obj], uncovered: set[int], *, short: bool,
                     sequences: int, axes: tuple[str, ...] = AXES) -> _Rel | None:
    n = len(objects)
    horizontal = "horizontal" in axes  # "between" and "in the middle" are said along the row, left to right
    kinds = ["binary", "aligned", "extreme"]
    weights = [8.0, 0.6, 0.6]
    if n >= 3:
        kinds += ["between", "sequence"]
        weights += [1.2 if horizontal else 0.0, 0.0 if short and sequences else 1.2]
    if n >= 3 and n % 2 == 1:
        kinds.append("middle")
        weights.append(0.4 if horizontal else 0.0)
    kind = rng.choices(kinds, weights)[0]
    if kind == "binary":
        first = rng.choice(sorted(uncovered)) if uncovered and rng.random() < 0.6 else rng.randrange(n)
        second = rng.choice([i for i in range(n) if i != first])
        return _binary(rng, objects, first, second, axes)
    if kind == "sequence":
        # A short prompt has at most one sequence: it takes every object not yet placed, so no second is needed.
        must = sorted(uncovered) if short else []
        return _sequence(rng, objects, must, extra=rng.randint(0, 2), axes=axes)
    if kind == "between":
        middle = rng.choice([i for i in range(n) if 0 < objects[i].ranks[0] < n - 1])
        rank = objects[middle].ranks[0]
        low = rng.choice([i for i in range(n) if objects[i].ranks[0] < rank])
        high = rng.choice([i for i in range(n) if objects[i].ranks[0] > rank])
        return _Rel(RelationKind.BETWEEN, middle, (low, high) if rng.random() < 0.5 else (high, low))
    if kind == "middle":
        return _Rel(RelationKind.IN_MIDDLE, _at_rank(objects, 0, n // 2))
    if kind == "aligned":
        edge = rng.choice(_along(lx.EDGES, _EDGE_AXES, axes))
        axis, end = _EDGE_AXES[edge]
        return _Rel(RelationKind.ALIGNED, _at_rank(objects, axis, 0 if end < 0 else n - 1), param=edge)
    extreme = rng.choice(_along(list(_EXTREME_AXES), _EXTREME_AXES, axes))
    axis, end = _EXTREME_AXES[extreme]
    subject = _at_rank(objects, axis, 0 if end < 0 else n - 1)
    if objects[subject].count != 1:  # "three books is the leftmost object" does not read
        return None
    return _Rel(RelationKind.EXTREME, subject, param=extreme.value)


def _along(options: list, axis_of: dict, axes: tuple[str, ...]) -> list:
    """The options (edges, extremes) whose axis is among `axes`; all of them, untouched, when every axis is."""
    if axes == AXES:
        return list(options)
    return [option for option in options if AXES[axis_of[option][0]] in axes]


def _at_rank(objects: list[_Obj], axis: int, rank: int) -> int:
    return next(i for i, o in enumerate(objects) if o.ranks[axis] == rank)


def _binary(rng: random.Random, objects: list[_Obj], a: int, b: int, axes: tuple[str, ...] = AXES) -> _Rel:
    weights = [w if _AXIS_OF_BINARY[kind] in axes else 0.0 for kind, w in zip(_BINARY_AXES, _AXIS_WEIGHTS,
                                                                                strict=True)]
    axis = rng.choices(_BINARY_AXES, weights)[0]
    ra, rb = objects[a].ranks, objects[b].ranks
    if axis == "next_to":
        if abs(ra[0] - rb[0]) == 1:
            return _Rel(RelationKind.NEXT_TO, a, (b,))
        axis = "horizontal"
    index = {"horizontal": 0, "depth": 1, "vertical": 2, "support": 2}[axis]
    low, high = (a, b) if ra[index] < rb[index] else (b, a)
    kinds = {"horizontal": (RelationKind.LEFT_OF, RelationKind.RIGHT_OF),  # (low is kind0 of high, high is kind1)
             "depth": (RelationKind.IN_FRONT_OF, RelationKind.BEHIND),
             "vertical": (RelationKind.BELOW, RelationKind.ABOVE),
             "support": (RelationKind.UNDER, RelationKind.ON_TOP_OF)}[axis]
    if rng.random() < 0.5:
        return _Rel(kinds[0], low, (high,))
    return _Rel(kinds[1], high, (low,))


def _sequence(rng: random.Random, objects: list[_Obj], must: list[int], extra: int,
              axes: tuple[str, ...] = AXES) -> _Rel:
    n = len(objects)
    others = [i for i in range(n) if i not in must]
    size = max(len(must), min(n, max(3, len(must) + extra) if n >= 3 else 2))
    members = list(must) + rng.sample(others, size - len(must))
    axis = rng.randrange(3) if axes == AXES else AXES.index(rng.choice(axes))
    members.sort(key=lambda i: objects[i].ranks[axis])
    increasing, decreasing = _SEQUENCE_AXES[axis]
    if rng.random() < 0.5:
        return _Rel(RelationKind.SEQUENCE, None, tuple(members), increasing.value)
    return _Rel(RelationKind.SEQUENCE, None, tuple(members[::-1]), decreasing.value)


# --- writing ----------------------------------------------------------------------------------------------


class _Writer:
    """Appends text and hands back the span of what it wrote; capitalises the first word of a sentence."""

    def __init__(self, objects: list[_Obj]) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.capitalise = True
        self.objects = objects
        self.mentions: dict[int, list[Span]] = {}

    def put(self, text: str) -> Span:
        if self.capitalise and text:
            text = text[0].upper() + text[1:]
            self.capitalise = False
        start = self.pos
        self.parts.append(text)
        self.pos += len(text)
        return Span(start, self.pos)

    def sentence_break(self) -> None:
        if self.parts:
            self.put(" ")
        self.capitalise = True

    def noun_phrase(self, index: int) -> Span:
        obj = self.objects[index]
        words = " ".join((*obj.attributes, obj.name if obj.count == 1 else obj.plural))
        if index in self.mentions:
            text = f"the {words}" if obj.count == 1 else f"the {_COUNT_WORDS[obj.count]} {words}"
        else:
            text = f"{indefinite_article(words)} {words}" if obj.count == 1 else f"{_COUNT_WORDS[obj.count]} {words}"
        span = self.put(text)
        self.mentions.setdefault(index, []).append(span)
        return span

    def copula(self, index: int) -> None:
        self.put(" is " if self.objects[index].count == 1 else " are ")

    def text(self) -> str:
        return "".join(self.parts)


def _write_clause(rng: random.Random, w: _Writer, rel: _Rel, style: str) -> Span:
    """Writes one relation clause (no final punctuation) and returns its relation span."""
    kind = rel.kind
    choose = (lambda options: options[0]) if style == "plain" else rng.choice  # plain: each kind's first phrase
    if kind == RelationKind.SEQUENCE:
        phrase = choose(lx.SEQUENCE_PHRASES[SequenceDirection(rel.param)])
        if style == "long" and rng.random() < 0.4:
            start = w.pos
            _write_list(w, rel.anchors)
            w.put(" in a row ")
            end = w.put(phrase).end
            return Span(start, end)
        start = w.put(phrase).start
        w.put(": ")
        _write_list(w, rel.anchors)
        return Span(start, w.pos)
    if kind == RelationKind.EXTREME:
        word = choose(lx.EXTREME_WORDS[Extreme(rel.param)])
        if style == "plain" or rng.random() < 0.5:
            w.noun_phrase(rel.subject)
            w.put(" is the ")
            span = w.put(word)
            w.put(" object")
            return span
        w.put("the ")
        span = w.put(word)
        w.put(" object is ")
        w.noun_phrase(rel.subject)
        return span
    w.noun_phrase(rel.subject)
    w.copula(rel.subject)
    if kind == RelationKind.BETWEEN:
        span = w.put(choose(lx.BETWEEN_PHRASES))
        w.put(" ")
        w.noun_phrase(rel.anchors[0])
        w.put(" and ")
        w.noun_phrase(rel.anchors[1])
        return span
    if kind == RelationKind.IN_MIDDLE:
        return w.put(choose(lx.MIDDLE_PHRASES))
    if kind == RelationKind.ALIGNED:
        return w.put(choose(lx.ALIGNED_TEMPLATES).format(edge=rel.param))
    span = w.put(choose(lx.BINARY_PHRASES[kind]))
    w.put(" ")
    w.noun_phrase(rel.anchors[0])
    return span


def _write_list(w: _Writer, members: tuple[int, ...]) -> None:
    for position, index in enumerate(members):
        if position:
            w.put(" and " if position == len(members) - 1 else ", ")
        w.noun_phrase(index)


def _opener(rng: random.Random, category: str) -> str:
    preposition, adjectives = OPENERS[category]
    adjective = rng.choice(adjectives)
    return f"{preposition} {indefinite_article(adjective)} {adjective} {SCENE_NOUNS.get(category, category)}, "


def _write(rng: random.Random, category: str, objects: list[_Obj], relations: list[_Rel],
           style: str) -> tuple[str, SceneGraph]:
    w = _Writer(objects)
    written: list[tuple[_Rel, Span]] = []
    if style in ("short", "plain"):
        # One sentence; a sequence runs to the end of the sentence, so it goes last.
        ordered = sorted(relations, key=lambda r: r.kind == RelationKind.SEQUENCE)
        if style == "short" and rng.random() < 0.5:
            w.put(_opener(rng, category))
        for position, rel in enumerate(ordered):
            if position:
                w.put(", and " if position == len(ordered) - 1 else ", ")
            written.append((rel, _write_clause(rng, w, rel, style)))
        w.put(".")
    else:
        # Sentences of one clause, or two binary clauses joined by ", and"; the opener starts the first one.
        sentences: list[list[_Rel]] = []
        for rel in relations:
            if (sentences and len(sentences[-1]) == 1 and rel.kind in lx.BINARY_PHRASES
                    and sentences[-1][0].kind in lx.BINARY_PHRASES and rng.random() < 0.25):
                sentences[-1].append(rel)
            else:
                sentences.append([rel])
        words = sum(_clause_words(objects, group) for group in sentences)
        target = rng.randint(44, 72)
        fillers = rng.sample(FILLERS, len(FILLERS))
        slots: list[str | list[_Rel]] = list(sentences)
        while words < target and fillers:
            filler = fillers.pop()
            if words + len(filler.split()) > LONG_WORDS[1] - 5:
                break
            words += len(filler.split())
            slots.insert(rng.randint(1, len(slots)), filler)
        opener = rng.random() < 0.7
        for slot in slots:
            w.sentence_break()
            if isinstance(slot, str):
                w.put(slot)
                continue
            if opener:
                w.put(_opener(rng, category))
                opener = False
            for position, rel in enumerate(slot):
                if position:
                    w.put(", and ")
                written.append((rel, _write_clause(rng, w, rel, style)))
            w.put(".")
        while len(w.text().split()) < LONG_WORDS[0] and fillers:  # the estimate fell short
            w.sentence_break()
            w.put(fillers.pop())
    text = w.text()
    order = sorted(w.mentions, key=lambda i: w.mentions[i][0].start)
    ids = {index: f"o{n + 1}" for n, index in enumerate(order)}
    scene_objects = tuple(
        SceneObject(id=ids[i], name=objects[i].name, attributes=tuple(sorted(objects[i].attributes)),
                    count=objects[i].count, mentions=tuple(w.mentions[i]))
        for i in order)
    graph_relations = tuple(
        Relation(kind=rel.kind, subject=ids[rel.subject] if rel.subject is not None else None,
                 anchors=tuple(ids[a] for a in rel.anchors), param=rel.param, span=span)
        for rel, span in written)
    return text, SceneGraph(objects=scene_objects, relations=graph_relations, text=text)


def _clause_words(objects: list[_Obj], group: list[_Rel]) -> int:
    """A close estimate of a sentence's words, to decide how many fillers a long prompt needs."""
    total = 0
    for rel in group:
        for index in rel.members():
            total += 1 + len(objects[index].attributes) + len(objects[index].name.split()) + (
                objects[index].count > 1)
        total += 4
    return total
