"""Lay out a SceneGraph, draw it with Pillow, and check its relations on a layout or on the drawn pixels.

Pure Python plus Pillow (no numpy, torch or Django). Deterministic: the same graph, seed and settings give the
same bytes.

World model
-----------
Three independent axes, as the prompt generator's layouts have them (every object has its own rank on the
left-right, front-back and bottom-top axes), so any scene the generator writes can be drawn:

- x, left/right: the horizontal centre of the object's box in the image.
- elevation, above/below/on top of/under: the vertical position in the image (y grows downwards: "a above b"
  means a's centre is higher in the image).
- depth d in [0, 1], 0 at the front: an object is drawn at scale 1 - 0.6 d of its nominal size, objects are
  drawn back to front (front ones occlude), and an object with no vertical relation starts on a ground line that
  is lower in the image the nearer it is. The solver keeps objects apart where it can, so overlaps (and
  occlusion) appear only where the relations force them.

Identity and determinism: objects are matched across graphs by `SceneObject.key`, never by id. An object's
colour comes from (seed, key); its shape and aspect from its name (two mugs look alike and differ in colour); its
nominal size from its name, size words ("large", "tall"), count, the image size and how many objects the scene
has; its starting position and depth from (seed, key), nudged a little by a hash of (seed, key, the object's own
relations in canonical form). Hashes are blake2b of the repr, never Python's salted hash(). So a perfect and a
perturbed prompt rendered with the same seed give every object the same look; objects whose relations the
perturbation left alone start in the same place, and the solver moves objects only to satisfy relations (and,
of two overlapping objects, first moves the one that has strayed further from its start); the objects that a
changed relation names start a little off, so the two images differ there even where the changed relation
would already hold in the old places.

Depth from pixels
-----------------
Every object's nominal size [w, h] in pixels is recorded in meta["objects"][i]["nominal"]. Its box is its nominal
size times its scale, the width rounded once to whole pixels, and its depth is read back from the box:

    scale = max(box_w / nominal_w, (box_h - 3) / nominal_h)
    d = (1 - scale) / 0.6, clamped to [0, 1], rounded to 4 decimals.

The width decides (within half a pixel of rounding); the height, less 3 pixels of rounding slack, takes over only
when something hides part of the width. The layout records exactly this value, so the depth measured from an
unoccluded object's pixels equals the recorded one (with back_scale b the 0.6 above is 1 - b; a flat picture,
b = 1, draws every object at its nominal size: its meta records the solved depth, which the pixels show only
through occlusion and the ground line, and measure_layout reads every depth there as 0).
Resolution: one pixel of width is 1 / (0.6 nominal_w) of depth, so at small sizes long front-to-back chains (ten
objects in a 128-pixel image) cannot all be told apart and some of their steps are recorded as not holding.

Pixels
------
Boxes are half-open integer [x0, y0, x1, y1) (PIL's getbbox convention). Every object has a colour of its own
(distinct from every other object's, the sky, the floor, black and white), and every shape touches all four
sides of its box (a count > 1 object is a grid of instances whose union is its box), so `locate_objects` finds a
box as the bounding box of the pixels of exactly that colour. Labels are black or white, drawn without
anti-aliasing inside the object's box and inset from it, so they never cover a shape's outermost pixels. Lossy
formats (webp) lose the exact colours: locate objects in PNG or in-memory images.

Relations (what `check_relations` tests; W, H: image width and height; cx, cy: box centre)
----------------------------------------------------------------------------------------
    left_of(a, b)      a.cx + 0.02 W <= b.cx                  right_of: mirrored
    above(a, b)        a.cy + 0.02 H <= b.cy                  below: mirrored
    in_front_of(a, b)  a.d + 0.02 <= b.d                      behind: mirrored
    on_top_of(a, b)    |a.y1 - b.y0| <= 0.02 H and b.x0 <= a.cx <= b.x1 (resting on it)   under: mirrored
    next_to(a, b)      horizontal gap between the boxes <= 0.08 W and vertical gap <= 0.04 H
    between(s, a, b)   s.cx lies between a.cx and b.cx, 0.02 W from each
    in_middle(s)       |s.cx - W/2| <= 0.06 W;  in_middle(s, a): s's centre within 0.2 of a's size of a's centre
    aligned(s, edge)   left/right/top/bottom: that side of s's box within 0.03 of the image side from the image
                       edge; front: d <= 0.06; back: d >= 0.94. With an anchor: the same side of both boxes
                       within 0.03 W (or H) of each other; front/back: depths within 0.06.
    sequence           every neighbouring pair in the written order, on the direction's axis, as left_of /
                       above / in_front_of (right_to_left, bottom_to_top, back_to_front: mirrored)
    extreme(s, which)  s is ordered before every other object of the graph on that axis, as above

A relation holds only when every object it names is in the layout (an object missing from the image fails it)
and it names no object twice.

The solver aims for clearer margins than these (boxes fully apart, depth 0.4 apart) and relaxes them in steps
when a crowded scene cannot have them. Contradictions (a left of b, b left of a) cannot be satisfied: the solver
stops after a fixed number of passes and the meta records which relations do not hold.

Scenes no drawing can satisfy: the prompt generator's on_top_of/under only orders a pair vertically and its
next_to only makes a pair neighbours on the left-right axis, while here the top object rests on the other
(touching it, its centre over it) and next_to pairs stand side by side (close, at about the same height). When
other relations of the same prompt set such a pair apart (a left-to-right sequence with objects between them, a
vertical chain with objects between them) no layout has both; about 4-5% of generated prompts with 2-12 objects
contain such a pair, and one of their relations is recorded as not holding. Every generated prompt without
on_top_of, under or next_to is laid out with all of its relations holding (at 512 pixels; see the resolution
note above for small images).

Deliberate breaks
-----------------
`break_fraction` f picks floor(f * n) relations, one more with probability frac(f * n), by a hash of (seed,
relation index), so the perfect and the perturbed image of a pair break the same positions. A broken relation is
laid out inverted (left_of drawn as right_of, on_top_of as under, between as outside both, a sequence with one
neighbouring pair swapped, an extreme with another object beyond it, ...). meta["broken"] lists the chosen
relations that do not hold in the result; meta["unsatisfied"] the unchosen ones that do not hold.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFont

from ml.spatial.graph import Extreme, ObjectKey, RelationKind, SceneGraph, SequenceDirection

K = RelationKind
Box = tuple[int, int, int, int]
RGB = tuple[int, int, int]

# --- drawing ---------------------------------------------------------------------------------------------------
BACK_SCALE = 0.4  # drawn size at depth 1, relative to the nominal size at depth 0 (the default perspective)
# Below 1, depth reads back from a box's size; at 1 the picture is flat: every object at its nominal size, depth
# shown only by which object covers which (the layout's depths are still the ground truth in the meta).
MIN_BACK_SCALE, MAX_BACK_SCALE = 0.2, 1.0
SHAPES = ("rectangle", "ellipse", "triangle", "diamond", "rounded")
SHAPE_STYLES = ("varied", "rectangles")  # varied: a shape per noun (round/square words decide); or every box plain
COLOUR_JITTER = 16  # how far (per channel) a colour word's shade may stray, so two red things differ
SKY: RGB = (221, 232, 243)
FLOOR: RGB = (236, 228, 211)
BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
HORIZON = 0.42  # share of the height that is sky
LABEL_INSET = 3  # pixels between a label and its box: the shape's outermost pixels stay its own colour
HEIGHT_SLACK = 3  # pixels of height discounted when reading depth: the width decides unless it is hidden

# --- what check_relations accepts (fractions of the image side, or of the depth range) ------------------------
ORDER = 0.02
DEPTH_ORDER = 0.02
CONTACT = 0.02
NEXT_X, NEXT_Y = 0.08, 0.04
MIDDLE = 0.06
MIDDLE_OF = 0.2
EDGE = 0.03
DEPTH_EDGE = 0.06

# --- what the solver aims for --------------------------------------------------------------------------------
GAP = 0.03  # clear space between boxes (fraction of the shorter image side)
DEPTH_STEP, DEPTH_STEP_MIN = 0.4, 0.09  # depth apart for an ordered pair: first try, last resort
BROKEN_FAR = 0.2  # how far a broken next_to / in_middle / aligned relation is pushed from holding
MIN_OBJECT_SCALE, MAX_OBJECT_SCALE = 0.25, 2.5
RELAXATION = (1.0, 0.5, 0.25, 0.0)  # each try scales the clear-margin part of the targets
DEPTH_PASSES, PLANE_PASSES = 40, 60
EXACT_BUDGET = 64  # alternatives the exact fallback may try
YIELD_PASSES = 8  # overlap-parting passes in which the object that strayed further gives way
POLISH_PASSES = 8  # overlap-parting passes after an exact solution
SETTLE_SHARE = 0.5  # passes that also push overlapping boxes apart; the rest enforce relations only

_X, _Y, _D = 0, 1, 0  # value rows: the plane phase solves (x, y), the depth phase (d)


def _unit(*parts: object) -> float:
    """A stable number in [0, 1) from the parts (Python's hash() is salted per process)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 18446744073709551616.0


# ---------------------------------------------------------------------------------------------------------------
# Public results


@dataclass(frozen=True)
class Placed:
    """Where an object is: its box in pixels and its depth (0 front, 1 back)."""

    bbox: Box
    depth: float

    @property
    def cx(self) -> float:
        return (self.bbox[0] + self.bbox[2]) / 2

    @property
    def cy(self) -> float:
        return (self.bbox[1] + self.bbox[3]) / 2

    @property
    def width(self) -> int:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> int:
        return self.bbox[3] - self.bbox[1]


@dataclass(frozen=True)
class LaidObject:
    key: ObjectKey
    name: str
    count: int
    shape: str
    colour: RGB
    nominal: tuple[float, float]
    bbox: Box
    depth: float

    def to_meta(self) -> dict:
        return {"key": [self.key[0], list(self.key[1]), self.key[2]], "name": self.name, "count": self.count,
                "bbox": list(self.bbox), "depth": self.depth, "colour": "#{:02x}{:02x}{:02x}".format(*self.colour),
                "shape": self.shape, "nominal": list(self.nominal)}


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    seed: int
    break_fraction: float
    back_scale: float  # drawn size at depth 1 relative to depth 0
    objects: tuple[LaidObject, ...]  # sorted by key
    draw_order: tuple[int, ...]  # indices into objects, back to front
    kinds: tuple[str, ...]  # the kind of each relation of the graph
    holds: tuple[bool, ...]
    broken: tuple[int, ...]
    unsatisfied: tuple[int, ...]

    def placed(self) -> dict[ObjectKey, Placed]:
        return {o.key: Placed(o.bbox, o.depth) for o in self.objects}

    def meta(self) -> dict:
        """The JSON-able ground truth stored with the image."""
        broken = set(self.broken)
        return {"renderer": "scene-renderer", "version": 1, "size": [self.width, self.height], "seed": self.seed,
                "break_fraction": self.break_fraction, "depth_scale": [1.0, self.back_scale],
                "objects": [o.to_meta() for o in self.objects],
                "relations": [{"index": i, "kind": kind, "holds": holds, "broken": i in broken}
                              for i, (kind, holds) in enumerate(zip(self.kinds, self.holds, strict=True))],
                "broken": list(self.broken), "unsatisfied": list(self.unsatisfied)}


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    meta: dict
    layout: Layout


def render_scene(graph: SceneGraph, *, seed: int, width: int = 512, height: int = 512, break_fraction: float = 0.0,
                 labels: bool = True, object_scale: float = 1.0, back_scale: float = BACK_SCALE,
                 shapes: str = "varied", exact_colours: bool = False) -> Rendered:
    """Lays out and draws the graph; never raises for any graph (contradictions are recorded in the meta)."""
    layout = layout_scene(graph, seed=seed, width=width, height=height, break_fraction=break_fraction,
                          object_scale=object_scale, back_scale=back_scale, shapes=shapes,
                          exact_colours=exact_colours)
    return Rendered(draw_layout(layout, labels=labels), layout.meta(), layout)


# ---------------------------------------------------------------------------------------------------------------
# Objects: colour, shape, nominal size


_COLOUR_WORDS: dict[str, RGB] = {
    "red": (204, 46, 46), "orange": (236, 130, 34), "yellow": (232, 200, 40), "green": (58, 158, 72),
    "blue": (48, 96, 204), "purple": (132, 70, 172), "pink": (236, 120, 172), "brown": (132, 84, 44),
    "black": (40, 40, 40), "white": (246, 246, 246), "grey": (128, 128, 128), "gray": (128, 128, 128),
    "silver": (186, 190, 198), "gold": (212, 172, 52), "beige": (214, 196, 150), "teal": (30, 140, 140),
    "navy": (32, 42, 112),
}
_SCALE_WORDS = {"tiny": 0.65, "small": 0.8, "little": 0.8, "big": 1.2, "large": 1.25, "huge": 1.4}
_TALL_WORDS = {"tall": 1.35, "short": 0.75}
_WIDE_WORDS = {"long": 1.35, "wide": 1.35}


def _distance(a: RGB, b: RGB) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2])


def _colour_candidate(key: ObjectKey, seed: int, attempt: int, exact: bool = False) -> RGB:
    words = [w for w in key[1] if w in _COLOUR_WORDS]
    if words and exact and attempt == 0:  # the word's own colour, unless another object already has it
        return _COLOUR_WORDS[words[0]]
    if words:  # "a red mug" is reddish; the jitter tells two red things apart
        spread = COLOUR_JITTER + 2 * attempt
        return tuple(min(250, max(20, c + round((_unit(seed, key, "colour", attempt, n) - 0.5) * 2 * spread)))
                     for n, c in enumerate(_COLOUR_WORDS[words[0]]))
    hue, sat, val = (_unit(seed, key, "colour", attempt, n) for n in range(3))
    r, g, b = colorsys.hsv_to_rgb(hue, 0.45 + 0.45 * sat, 0.5 + 0.4 * val)
    return round(r * 255), round(g * 255), round(b * 255)


def _colours(keys: list[ObjectKey], seed: int, exact: bool = False) -> dict[ObjectKey, RGB]:
    """A colour per key, distinct from the others and from the background and label colours. Assigned in key
    order, so two graphs with the same objects get the same colours whatever their relations. exact: an object
    with a colour word gets that colour's exact shade when no earlier object holds one near it."""
    taken: list[RGB] = [SKY, FLOOR, BLACK, WHITE]
    colours = {}
    for key in sorted(keys):
        for attempt in range(64):
            colour = _colour_candidate(key, seed, attempt, exact)
            if all(_distance(colour, other) >= (40 if attempt < 48 else 8) for other in taken):
                break
        while colour in taken:  # the last resort keeps colours exact-distinct, which locate_objects needs
            colour = ((colour[0] + 7) % 256, colour[1], colour[2])
        taken.append(colour)
        colours[key] = colour
    return colours


def _shape(key: ObjectKey, shapes: str = "varied") -> str:
    if shapes == "rectangles":
        return "rectangle"
    if "round" in key[1]:
        return "ellipse"
    if "square" in key[1]:
        return "rectangle"
    return SHAPES[int(_unit(key[0], "shape") * len(SHAPES))]


def _grid(count: int) -> tuple[int, int]:
    """(columns, rows) of the instances of a count > 1 object; the first row is always full."""
    cols = math.ceil(math.sqrt(count))
    return cols, math.ceil(count / cols)


def _nominal(key: ObjectKey, width: int, height: int, n_objects: int,
             object_scale: float = 1.0) -> tuple[float, float]:
    """The object's size in pixels at depth 0, rounded so the meta's value is the one depth is measured with.
    object_scale multiplies every object's size (1: a front object's side is a fifth of the image's)."""
    name, attributes, count = key
    crowd = max(0.5, min(1.0, math.sqrt(3 / max(1, n_objects))))  # smaller objects in busier scenes
    base = min(width, height) * 0.2 * crowd * object_scale
    aspect = 1.0 if {"round", "square"} & set(attributes) else 2 ** ((_unit(name, "aspect") - 0.5) * 1.4)
    w, h = base * math.sqrt(aspect), base / math.sqrt(aspect)
    for word in attributes:
        w *= _SCALE_WORDS.get(word, 1.0) * _WIDE_WORDS.get(word, 1.0)
        h *= _SCALE_WORDS.get(word, 1.0) * _TALL_WORDS.get(word, 1.0)
    if count > 1:
        cols, rows = _grid(count)
        w *= min(1 + 0.55 * (cols - 1), 2.2)
        h *= min(1 + 0.55 * (rows - 1), 2.2)
    return round(max(2.0, min(w, 0.7 * width)), 2), round(max(2.0, min(h, 0.7 * height)), 2)


@dataclass
class _Body:
    """An object while it is being laid out."""

    key: ObjectKey
    nominal: tuple[float, float]
    ties: tuple = ()  # the object's relations, canonical and sorted: part of what its start is hashed from
    d: float = 0.0
    w: float = 0.0
    h: float = 0.0


@dataclass(frozen=True)
class _Rel:
    """A relation with object indices (into the key-sorted bodies) and whether it is to be broken."""

    index: int
    kind: RelationKind
    subject: int | None
    anchors: tuple[int, ...]
    param: str
    broken: bool
    swap: int  # for a broken sequence: the neighbouring pair that trades places


def _fit_inside(bodies: list[_Body], rels: list[_Rel]) -> None:
    """Shrinks nominal sizes so things fit where the relations put them: a thing set into the middle of another
    ("a vase in the centre of the table") to 0.6 of that one's size, and the things resting on one object ("three
    apples on the table") to share 0.9 of its width. With the depth preferences they are then drawn inside or on
    the other, leaving its outline visible."""
    resting_on: dict[int, list[int]] = {}
    factors = [1.0] * len(bodies)
    for rel in rels:
        if rel.kind in (K.ON_TOP_OF, K.UNDER):
            top, base = _resting(rel)
            if top not in resting_on.setdefault(base, []):
                resting_on[base].append(top)
        elif rel.kind == K.IN_MIDDLE and rel.anchors:
            inner, outer = rel.subject, rel.anchors[0]
            (iw, ih), (ow, oh) = bodies[inner].nominal, bodies[outer].nominal
            factors[inner] = min(factors[inner], 0.6 * ow / iw, 0.6 * oh / ih)
    for base, tops in resting_on.items():
        for top in tops:
            factors[top] = min(factors[top], 0.9 * bodies[base].nominal[0] / len(tops) / bodies[top].nominal[0])
    for body, factor in zip(bodies, factors, strict=True):
        if factor < 1.0:
            body.nominal = (round(body.nominal[0] * factor, 2), round(body.nominal[1] * factor, 2))


def _resting(rel: _Rel) -> tuple[int, int]:
    """(top, base) of an on_top_of / under relation as it is drawn: a broken one the other way up."""
    top, base = (rel.subject, rel.anchors[0]) if rel.kind == K.ON_TOP_OF else (rel.anchors[0], rel.subject)
    return (base, top) if rel.broken else (top, base)


def _scale(depth: float, back_scale: float = BACK_SCALE) -> float:
    return 1.0 - (1.0 - back_scale) * depth


def depth_from_box(bbox: Box | list[int], nominal: tuple[float, float] | list[float],
                   back_scale: float = BACK_SCALE) -> float:
    """The depth an object drawn in `bbox` has (see the module docstring); 0 in a flat picture (back_scale 1),
    where a box's size says nothing about depth."""
    if back_scale >= 1.0:
        return 0.0
    scale = max((bbox[2] - bbox[0]) / nominal[0], (bbox[3] - bbox[1] - HEIGHT_SLACK) / nominal[1])
    return round(min(1.0, max(0.0, (1.0 - scale) / (1.0 - back_scale))), 4)


_UNARY = (K.IN_MIDDLE, K.ALIGNED, K.EXTREME)


def _ties(graph: SceneGraph) -> dict[ObjectKey, tuple]:
    """Each object's relations in canonical form (equivalent phrasings equal), sorted: what `_nudge` hashes."""
    key_of = {o.id: o.key for o in graph.objects}
    ties: dict[ObjectKey, list] = {}
    for rel in graph.relations:
        try:
            canonical = graph.canonical_relation(rel)
        except (KeyError, IndexError, TypeError):  # a malformed relation: no canonical form, but still a tie
            canonical = (rel.kind.value, rel.subject, *rel.anchors, rel.param)
        for object_id in {rel.subject, *rel.anchors}:
            if object_id in key_of:
                ties.setdefault(key_of[object_id], []).append(repr(canonical))
    return {key: tuple(sorted(found)) for key, found in ties.items()}


def _nudge(seed: int, body: _Body, axis: str, reach: float) -> float:
    """A small shift of an object's start, hashed from its seed, key and relations: a perturbed prompt's objects
    whose relations are unchanged start exactly where the perfect prompt's do, while every object that a changed
    relation names starts a little off, so the two images differ even where the changed relation already holds
    at the old start ("the mug is left of the lamp" moved to "... left of the vase")."""
    return reach * (2 * _unit(seed, body.key, body.ties, axis) - 1)


def _resolve(graph: SceneGraph, order: dict[ObjectKey, int], chosen: set[int], seed: int) -> list[_Rel]:
    """The relations the solver can place: each names known objects, enough of them, and no object twice."""
    index_of = {o.id: order[o.key] for o in graph.objects}
    rels = []
    for i, rel in enumerate(graph.relations):
        subject = index_of.get(rel.subject) if rel.subject is not None else None
        anchors = tuple(index_of.get(a) for a in rel.anchors)
        if (rel.subject is not None and subject is None) or None in anchors:
            continue
        named = ([subject] if subject is not None else []) + list(anchors)
        if len(set(named)) != len(named):
            continue
        needs = {K.BETWEEN: 2, K.SEQUENCE: 2}.get(rel.kind, 0 if rel.kind in _UNARY else 1)
        if len(anchors) < needs or (rel.kind != K.SEQUENCE and subject is None):
            continue
        swap = int(_unit(seed, "swap", i) * max(1, len(anchors) - 1))
        rels.append(_Rel(i, rel.kind, subject, anchors, rel.param, i in chosen, swap))
    return rels


def choose_breaks(n_relations: int, seed: int, fraction: float) -> set[int]:
    """The relation indices to break: floor(f n) of them, one more with probability frac(f n), ranked by a hash
    of (seed, index) so that two graphs with as many relations break the same positions."""
    if fraction <= 0 or n_relations == 0:
        return set()
    exact = fraction * n_relations
    count = min(n_relations, int(exact) + (_unit(seed, "break share") < exact - int(exact)))
    ranked = sorted(range(n_relations), key=lambda i: (_unit(seed, "break", i), i))
    return set(ranked[:count])


# ---------------------------------------------------------------------------------------------------------------
# The solver
#
# A constraint is a list of alternatives (a disjunction, e.g. "s between a and b" in either order); an
# alternative is a list of primitives (axis, i, j, m) meaning v[j] - v[i] >= m on that axis's values, where
# index -1 stands for a fixed 0 (so (axis, -1, j, c) is v[j] >= c and (axis, i, -1, -c) is v[i] <= c).
#
# Each pass fixes every violated primitive of the best alternative (the one closest to holding), moving both
# objects half the way within the image bounds; the first passes also push overlapping boxes apart. This keeps
# the scene near its hashed starting positions and settles most scenes in a few passes. Split fixes spread along
# a long chain (a sequence of ten) only slowly, though, so when the passes end with something unfixed the solver
# searches the alternatives (closest to holding first) for a choice whose difference constraints can hold
# together, and solves those exactly (`_exact`), or finds that none can (a contradiction, or targets too wide
# for the image) and says so.

Prim = tuple[int, int, int, float]
Item = tuple[tuple[Prim, ...], ...]


def _one(*prims: Prim) -> Item:
    return (tuple(prims),)


def _deficit(values: list[list[float]], prim: Prim) -> float:
    axis, i, j, m = prim
    v = values[axis]
    return m - ((v[j] if j >= 0 else 0.0) - (v[i] if i >= 0 else 0.0))


def _project(values: list[list[float]], lo: list[list[float]], hi: list[list[float]], prim: Prim,
             share: float = 0.5) -> float:
    """Fixes one primitive as far as the bounds allow, moving i by `share` of the fix and j by the rest (what a
    bound stops one from moving, the other moves instead); returns how far it was from holding."""
    axis, i, j, m = prim
    v = values[axis]
    deficit = m - ((v[j] if j >= 0 else 0.0) - (v[i] if i >= 0 else 0.0))
    if deficit <= 0.0:
        return 0.0
    if i < 0:
        v[j] = min(hi[axis][j], v[j] + deficit)
    elif j < 0:
        v[i] = max(lo[axis][i], v[i] - deficit)
    else:
        old_i, old_j = v[i], v[j]
        new_i = max(lo[axis][i], old_i - deficit * share)
        new_j = min(hi[axis][j], old_j + deficit - (old_i - new_i))
        new_i = max(lo[axis][i], new_i - (deficit - (old_i - new_i) - (new_j - old_j)))
        v[i], v[j] = new_i, new_j
    return deficit


def _best(values: list[list[float]], item: Item) -> tuple[Prim, ...]:
    if len(item) == 1:
        return item[0]
    return min(item, key=lambda alt: sum(max(0.0, _deficit(values, p)) for p in alt))


def _violation(values: list[list[float]], items: list[Item]) -> float:
    return max((max((_deficit(values, p) for p in _best(values, item)), default=0.0) for item in items),
               default=0.0)


def _solve(values: list[list[float]], lo: list[list[float]], hi: list[list[float]], items: list[Item],
           passes: int, tolerance: float, push=None) -> bool:
    """Runs the passes described above; `push` (the overlap remover) runs in the first share of them only, so
    the relations have the last word. True when every item holds at the end."""
    settle = int(passes * SETTLE_SHARE) if push is not None else 0
    for number in range(passes):
        worst = 0.0
        for item in items:
            for prim in _best(values, item):
                worst = max(worst, _project(values, lo, hi, prim))
        pushed = push() if number < settle else False
        if worst <= tolerance and not pushed:
            break
    if _violation(values, items) <= tolerance:
        return True
    if not _exact(values, lo, hi, items) or _violation(values, items) > tolerance:
        return False
    if push is not None:
        # The exact solution ignores overlaps: part what it can while the relations keep holding.
        kept = [list(row) for row in values]
        for _ in range(POLISH_PASSES):
            pushed = push()
            for item in items:
                for prim in _best(values, item):
                    _project(values, lo, hi, prim)
            if not pushed:
                break
        if _violation(values, items) > tolerance:
            for row, saved in zip(values, kept, strict=True):
                row[:] = saved
    return True


def _exact(values: list[list[float]], lo: list[list[float]], hi: list[list[float]], items: list[Item]) -> bool:
    """Moves the values so that every item holds, each value as near its current one as the others allow; False
    (values untouched) when no choice of alternatives can hold together within the bounds."""
    fixed = [prim for item in items if len(item) == 1 for prim in item[0]]
    # Alternatives are tried best first (closest to holding now), backtracking when a choice makes the rest
    # impossible; a budget bounds the search for contradictory scenes with many disjunctions.
    choices = [sorted(item, key=lambda alt: sum(max(0.0, _deficit(values, p)) for p in alt))
               for item in items if len(item) > 1]
    budget = [EXACT_BUDGET]

    def search(k: int, prims: list[Prim]) -> list[Prim] | None:
        if k == len(choices):
            return prims
        for alternative in choices[k]:
            if budget[0] <= 0:
                return None
            budget[0] -= 1
            trial = prims + list(alternative)
            if _ranges(values, lo, hi, trial) is not None:
                found = search(k + 1, trial)
                if found is not None:
                    return found
        return None

    prims = search(0, fixed) if _ranges(values, lo, hi, fixed) is not None else None
    if prims is None:
        return False
    for axis, (low, high, edges) in enumerate(_ranges(values, lo, hi, prims)):
        current = values[axis]
        # Any value within an object's range leaves the others feasible: fix them one by one, earliest first,
        # each at its current value clamped into the range that the ones fixed before it leave.
        for k in sorted(range(len(current)), key=lambda k: (low[k], k)):
            low[k] = high[k] = min(max(current[k], low[k]), high[k])
            _tighten(low, high, edges)
        current[:] = low
    return True


def _ranges(values: list[list[float]], lo: list[list[float]], hi: list[list[float]], prims: list[Prim]):
    """Per axis (low, high, edges): the range each value can take with every primitive holding, or None when
    some range is empty."""
    result = []
    for axis in range(len(values)):
        low, high = list(lo[axis]), list(hi[axis])
        edges = []
        for a, i, j, m in prims:
            if a != axis:
                continue
            if i < 0:
                low[j] = max(low[j], m)
            elif j < 0:
                high[i] = min(high[i], -m)
            else:
                edges.append((i, j, m))
        if not _tighten(low, high, edges):
            return None
        result.append((low, high, edges))
    return result


def _tighten(low: list[float], high: list[float], edges: list[tuple[int, int, float]]) -> bool:
    """Narrows each value's range [low, high] along the edges (v[j] >= v[i] + m), Bellman-Ford style. False when
    a range empties or the narrowing never ends (a cycle of constraints that asks for more than nothing)."""
    n = len(low)
    for _ in range(n + 1):
        changed = False
        for i, j, m in edges:
            if low[i] + m > low[j] + 1e-9:
                low[j] = low[i] + m
                changed = True
            if high[j] - m < high[i] - 1e-9:
                high[i] = high[j] - m
                changed = True
        if not changed:
            return all(low[k] <= high[k] + 1e-9 for k in range(n))
    return False


def _pad(width: int, height: int) -> float:
    """How far inside the image border every box stays."""
    return max(1.0, 0.01 * min(width, height))


class _Frame:
    """What the relation compilers need: the image, the bodies and how clear a margin to aim for (relax)."""

    def __init__(self, width: int, height: int, bodies: list[_Body], relax: float) -> None:
        self.width, self.height, self.bodies, self.relax = width, height, bodies, relax
        self.gap = GAP * min(width, height)
        self.pad = _pad(width, height)
        # The last resort: just over what the check accepts, with room for rounding boxes to whole pixels.
        self.least_x = max(1.25 * ORDER * width, ORDER * width + 1.0)
        self.least_y = max(1.25 * ORDER * height, ORDER * height + 1.0)

    def ox(self, a: int, b: int) -> float:
        """Centre distance for "a left of b": boxes apart by the gap, relaxed down to just over the check's."""
        return max(self.least_x, self.relax * ((self.bodies[a].w + self.bodies[b].w) / 2 + self.gap))

    def oy(self, a: int, b: int) -> float:
        return max(self.least_y, self.relax * ((self.bodies[a].h + self.bodies[b].h) / 2 + self.gap))

    def od(self) -> float:
        return max(DEPTH_STEP_MIN, self.relax * DEPTH_STEP)


def _order(axis: int, pairs: list[tuple[int, int]], gap, broken: bool) -> list[Item]:
    """Each pair (a, b) ordered a before b on the axis; broken: at least one pair reversed (an extreme with
    another object beyond it, or the single pair of a binary relation)."""
    if not broken:
        return [_one((axis, a, b, gap(a, b))) for a, b in pairs]
    return [tuple(((axis, b, a, gap(b, a)),) for a, b in pairs)] if pairs else []


def _sequence(rel: _Rel) -> list[tuple[int, int]]:
    items = list(rel.anchors)
    if rel.broken:
        items[rel.swap], items[rel.swap + 1] = items[rel.swap + 1], items[rel.swap]
    return list(zip(items, items[1:], strict=False))


_EXTREME_AXES = {Extreme.LEFTMOST: ("x", False), Extreme.RIGHTMOST: ("x", True), Extreme.TOPMOST: ("y", False),
                 Extreme.BOTTOMMOST: ("y", True), Extreme.FRONTMOST: ("d", False), Extreme.BACKMOST: ("d", True)}
_SEQUENCE_AXES = {SequenceDirection.LEFT_TO_RIGHT: ("x", False), SequenceDirection.RIGHT_TO_LEFT: ("x", True),
                  SequenceDirection.TOP_TO_BOTTOM: ("y", False), SequenceDirection.BOTTOM_TO_TOP: ("y", True),
                  SequenceDirection.FRONT_TO_BACK: ("d", False), SequenceDirection.BACK_TO_FRONT: ("d", True)}


def _ordered_pairs(rel: _Rel, n: int) -> tuple[str, list[tuple[int, int]], bool] | None:
    """Sequences and extremes as (axis, pairs ordered first -> last on it, whether to break them by reversing one
    pair), or None for another kind. A broken sequence is already broken by its swapped pair."""
    if rel.kind == K.SEQUENCE and rel.param in _SEQUENCE_AXES:
        axis, reverse = _SEQUENCE_AXES[SequenceDirection(rel.param)]
        pairs = _sequence(rel)
        return axis, [(b, a) for a, b in pairs] if reverse else pairs, False
    if rel.kind == K.EXTREME and rel.param in _EXTREME_AXES:
        axis, reverse = _EXTREME_AXES[Extreme(rel.param)]
        others = [o for o in range(n) if o != rel.subject]
        pairs = [(o, rel.subject) for o in others] if reverse else [(rel.subject, o) for o in others]
        return axis, pairs, rel.broken
    return None


def _depth_items(rel: _Rel, frame: _Frame) -> list[Item]:
    step = frame.od()
    gap = lambda a, b: step  # noqa: E731 - depth steps do not depend on the objects
    kind, s = rel.kind, rel.subject
    if kind in (K.IN_FRONT_OF, K.BEHIND):
        a, b = (s, rel.anchors[0]) if kind == K.IN_FRONT_OF else (rel.anchors[0], s)
        return _order(_D, [(a, b)], gap, rel.broken)
    ordered = _ordered_pairs(rel, len(frame.bodies))
    if ordered is not None:
        axis, pairs, negate = ordered
        return _order(_D, pairs, gap, negate) if axis == "d" else []
    if kind == K.ALIGNED and rel.param in ("front", "back"):
        if rel.anchors:
            a = rel.anchors[0]
            if not rel.broken:
                return [_one((_D, a, s, -0.02), (_D, s, a, -0.02))]
            return [(((_D, a, s, 0.25),), ((_D, s, a, 0.25),))]
        front = rel.param == "front"
        if not rel.broken:
            return [_one((_D, s, -1, 0.0) if front else (_D, -1, s, 1.0))]
        return [_one((_D, -1, s, 0.3) if front else (_D, s, -1, -0.7))]
    return []


def _depth_preferences(rels: list[_Rel]) -> list[Item]:
    """What the prompt does not say but a drawing needs: a thing resting on another or set into its middle is no
    nearer than it, so it is drawn no larger and fits on or in it ("three apples on the table"). Dropped when
    they clash with the stated depths."""
    items = []
    for rel in rels:
        if rel.kind in (K.ON_TOP_OF, K.UNDER):
            top, base = _resting(rel)
            items.append(_one((_D, base, top, 0.0)))
        elif rel.kind == K.IN_MIDDLE and rel.anchors and not rel.broken:
            items.append(_one((_D, rel.anchors[0], rel.subject, 0.0)))
    return items


def _plane_items(rel: _Rel, frame: _Frame) -> list[Item]:
    kind, s, anchors, broken = rel.kind, rel.subject, rel.anchors, rel.broken
    bodies, width = frame.bodies, frame.width
    if kind in (K.LEFT_OF, K.RIGHT_OF):
        a, b = (s, anchors[0]) if kind == K.LEFT_OF else (anchors[0], s)
        return _order(_X, [(a, b)], frame.ox, broken)
    if kind in (K.ABOVE, K.BELOW):
        a, b = (s, anchors[0]) if kind == K.ABOVE else (anchors[0], s)
        return _order(_Y, [(a, b)], frame.oy, broken)
    if kind in (K.ON_TOP_OF, K.UNDER):
        top, base = _resting(rel)
        contact = (bodies[top].h + bodies[base].h) / 2
        reach = (0.45 - 0.15 * frame.relax) * bodies[base].w  # the top's centre inside the base's width
        return [_one((_Y, top, base, contact), (_Y, base, top, -contact), (_X, base, top, -reach),
                     (_X, top, base, -reach))]
    if kind == K.NEXT_TO:
        a, b = s, anchors[0]
        if not broken:
            # Side by side with a small gap, overlapping vertically by half; relaxed towards what the check
            # accepts (boxes just apart vertically) when other relations need the room.
            slack = 1.0 - frame.relax
            near = (bodies[a].w + bodies[b].w) / 2 + (GAP + 0.5 * slack * (NEXT_X - GAP)) * width
            level = (0.25 + 0.25 * slack) * (bodies[a].h + bodies[b].h) + 0.5 * slack * NEXT_Y * frame.height
            return [_one((_X, a, b, -near), (_X, b, a, -near), (_Y, a, b, -level), (_Y, b, a, -level))]
        far = (bodies[a].w + bodies[b].w) / 2 + BROKEN_FAR * width
        return [(((_X, a, b, far),), ((_X, b, a, far),))]
    if kind == K.BETWEEN:
        a, b = anchors[0], anchors[1]
        if not broken:
            return [(((_X, a, s, frame.ox(a, s)), (_X, s, b, frame.ox(s, b))),
                     ((_X, b, s, frame.ox(b, s)), (_X, s, a, frame.ox(s, a))))]
        return [(((_X, s, a, frame.ox(s, a)), (_X, s, b, frame.ox(s, b))),
                 ((_X, a, s, frame.ox(a, s)), (_X, b, s, frame.ox(b, s))))]
    if kind == K.IN_MIDDLE:
        if anchors:
            a = anchors[0]
            if not broken:
                tx, ty = 0.05 * bodies[a].w, 0.05 * bodies[a].h
                return [_one((_X, a, s, -tx), (_X, s, a, -tx), (_Y, a, s, -ty), (_Y, s, a, -ty))]
            far = (bodies[s].w + bodies[a].w) / 2 + frame.gap
            return [(((_X, s, a, far),), ((_X, a, s, far),))]
        centre = width / 2
        if not broken:
            tolerance = 0.25 * MIDDLE * width
            return [_one((_X, -1, s, centre - tolerance), (_X, s, -1, -(centre + tolerance)))]
        off = (MIDDLE + BROKEN_FAR) * width
        return [(((_X, s, -1, -(centre - off)),), ((_X, -1, s, centre + off),))]
    if kind == K.ALIGNED and rel.param in ("left", "right", "top", "bottom"):
        return _aligned_items(rel, frame)
    ordered = _ordered_pairs(rel, len(bodies))
    if ordered is not None and ordered[0] in ("x", "y"):
        axis, pairs, negate = ordered
        return _order(_X if axis == "x" else _Y, pairs, frame.ox if axis == "x" else frame.oy, negate)
    return []


def _aligned_items(rel: _Rel, frame: _Frame) -> list[Item]:
    s, edge, bodies = rel.subject, rel.param, frame.bodies
    axis = _X if edge in ("left", "right") else _Y
    side = frame.width if axis == _X else frame.height
    size = (lambda i: bodies[i].w) if axis == _X else (lambda i: bodies[i].h)
    if rel.anchors:
        a = rel.anchors[0]
        # the centre offset s - a that lines the two boxes' edges up
        offset = (size(s) - size(a)) / 2 * (1 if edge in ("left", "top") else -1)
        if not rel.broken:
            tolerance = 0.25 * EDGE * side
            return [_one((axis, a, s, offset - tolerance), (axis, s, a, -(offset + tolerance)))]
        far = BROKEN_FAR * side
        return [(((axis, a, s, offset + far),), ((axis, s, a, -(offset - far)),))]
    low_edge = edge in ("left", "top")
    if not rel.broken:  # the box's side on the image border (the bound keeps it `pad` inside)
        if low_edge:
            return [_one((axis, s, -1, -(frame.pad + size(s) / 2)))]
        return [_one((axis, -1, s, side - frame.pad - size(s) / 2))]
    if low_edge:
        return [_one((axis, -1, s, BROKEN_FAR * side + size(s) / 2))]
    return [_one((axis, s, -1, -((1 - BROKEN_FAR) * side - size(s) / 2)))]


def _pair_rules(rels: list[_Rel]) -> tuple[set[tuple[int, int]], dict[tuple[int, int], int]]:
    """Which pairs may overlap (a thing resting on or set into another) and along which axis the overlap remover
    should part the others, so it works with their relations rather than against them."""
    exempt: set[tuple[int, int]] = set()
    prefer: dict[tuple[int, int], int] = {}
    for rel in rels:
        pairs = [tuple(sorted((rel.subject, a))) for a in rel.anchors] if rel.subject is not None else []
        if rel.kind in (K.ON_TOP_OF, K.UNDER) or (rel.kind == K.IN_MIDDLE and rel.anchors):
            exempt.update(pairs)
        elif rel.kind in (K.NEXT_TO, K.LEFT_OF, K.RIGHT_OF, K.BETWEEN):
            prefer.update(dict.fromkeys(pairs, _X))
        elif rel.kind in (K.ABOVE, K.BELOW):
            prefer.update(dict.fromkeys(pairs, _Y))
        elif rel.kind == K.ALIGNED and rel.anchors:
            prefer.update(dict.fromkeys(pairs, _Y if rel.param in ("left", "right") else _X))
        elif rel.kind == K.SEQUENCE and rel.param in _SEQUENCE_AXES:
            axis = _SEQUENCE_AXES[SequenceDirection(rel.param)][0]
            if axis != "d":
                for a, b in zip(rel.anchors, rel.anchors[1:], strict=False):
                    prefer[tuple(sorted((a, b)))] = _X if axis == "x" else _Y
    return exempt, prefer


def _overlap_remover(bodies: list[_Body], values: list[list[float]], lo, hi, gap: float,
                     exempt: set[tuple[int, int]], prefer: dict[tuple[int, int], int]):
    """A function that parts overlapping boxes once over and says whether it moved anything. In its first calls,
    of two overlapping objects the one that has moved further from its starting place gives way: an object that a
    changed relation moved into another's place is pushed on, and the other stays where the unperturbed scene has
    it. Later calls split the move, which settles crowded scenes with fewer overlaps left."""
    xs, ys = values
    start_x, start_y = list(xs), list(ys)
    n = len(bodies)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if (i, j) not in exempt]

    calls = [0]

    def push() -> bool:
        calls[0] += 1
        moved = False
        for i, j in pairs:
            need_x = (bodies[i].w + bodies[j].w) / 2 + gap
            need_y = (bodies[i].h + bodies[j].h) / 2 + gap
            dx, dy = xs[j] - xs[i], ys[j] - ys[i]
            over_x, over_y = need_x - abs(dx), need_y - abs(dy)
            if over_x <= 0 or over_y <= 0:
                continue
            axis = prefer.get((i, j), _X if over_x <= over_y else _Y)
            if axis == _X:
                first, second = (i, j) if dx >= 0 else (j, i)
                prim = (_X, first, second, need_x)
            else:
                first, second = (i, j) if dy >= 0 else (j, i)
                prim = (_Y, first, second, need_y)
            share = 0.5
            if calls[0] <= YIELD_PASSES:
                far = [abs(xs[k] - start_x[k]) + abs(ys[k] - start_y[k]) for k in (first, second)]
                share = 0.5 if abs(far[0] - far[1]) < 1e-9 else float(far[0] > far[1])
            before = (xs[i], xs[j], ys[i], ys[j])
            _project(values, lo, hi, prim, share)
            moved = moved or before != (xs[i], xs[j], ys[i], ys[j])
        return moved

    return push


def layout_scene(graph: SceneGraph, *, seed: int, width: int = 512, height: int = 512,
                 break_fraction: float = 0.0, object_scale: float = 1.0, back_scale: float = BACK_SCALE,
                 shapes: str = "varied", exact_colours: bool = False) -> Layout:
    """Places every object of the graph. Any graph renders (contradictions are recorded, not raised); only a bad
    size, break_fraction, object_scale, back_scale or shapes raises ValueError. back_scale: an object's drawn size
    at the back of the scene relative to the front (the perspective). shapes: "varied" (a shape per noun) or
    "rectangles". exact_colours: a colour word is drawn in its exact shade (a second thing of that colour still
    gets a nearby one); otherwise each shade strays a little. Neither moves any box."""
    if not (isinstance(width, int) and isinstance(height, int) and width >= 1 and height >= 1):
        raise ValueError(f"width and height must be positive integers, got {width!r} x {height!r}")
    if not 0.0 <= break_fraction <= 1.0:  # also rejects NaN
        raise ValueError(f"break_fraction must be within [0, 1], got {break_fraction!r}")
    if not MIN_OBJECT_SCALE <= object_scale <= MAX_OBJECT_SCALE:  # also rejects NaN
        raise ValueError(f"object_scale must be within [{MIN_OBJECT_SCALE}, {MAX_OBJECT_SCALE}], got {object_scale!r}")
    if not MIN_BACK_SCALE <= back_scale <= MAX_BACK_SCALE:
        raise ValueError(f"back_scale must be within [{MIN_BACK_SCALE}, {MAX_BACK_SCALE}], got {back_scale!r}")
    if shapes not in SHAPE_STYLES:
        raise ValueError(f"shapes must be one of {', '.join(SHAPE_STYLES)}, got {shapes!r}")
    keys = sorted(dict.fromkeys(o.key for o in graph.objects))  # key order: independent of mention order
    order = {key: i for i, key in enumerate(keys)}
    n = len(keys)
    ties = _ties(graph)
    bodies = [_Body(key, _nominal(key, width, height, n, object_scale), ties.get(key, ())) for key in keys]
    chosen = choose_breaks(len(graph.relations), seed, break_fraction)
    rels = _resolve(graph, order, chosen, seed)
    _fit_inside(bodies, rels)

    # Depth first: it fixes the sizes that the plane constraints are written with.
    depths = _solve_depth(bodies, rels, seed, width, height)
    for body, d in zip(bodies, depths, strict=True):
        body.d = d
        body.w, body.h = body.nominal[0] * _scale(d, back_scale), body.nominal[1] * _scale(d, back_scale)
    plane = _solve_plane(bodies, rels, seed, width, height)

    laid = []
    colours = _colours(keys, seed, exact_colours)
    for i, body in enumerate(bodies):
        # The width is the nominal width times the scale, rounded once, so depth reads back within half a pixel
        # of the width; top and bottom edges are rounded on their own so a box resting on another shares its
        # edge exactly.
        x0 = round(plane[0][i] - body.w / 2)
        y0, y1 = round(plane[1][i] - body.h / 2), round(plane[1][i] + body.h / 2)
        box = (x0, y0, x0 + max(1, round(body.w)), max(y1, y0 + 1))
        laid.append(LaidObject(body.key, body.key[0], body.key[2], _shape(body.key, shapes), colours[body.key],
                               body.nominal, box, depth_from_box(box, body.nominal, back_scale)
                               if back_scale < 1.0 else round(body.d, 4)))
    placed = {o.key: Placed(o.bbox, o.depth) for o in laid}
    holds = check_relations(graph, placed, (width, height))
    return Layout(width=width, height=height, seed=seed, break_fraction=break_fraction, back_scale=back_scale,
                  objects=tuple(laid),
                  draw_order=_draw_order(laid, rels), kinds=tuple(r.kind.value for r in graph.relations),
                  holds=tuple(holds), broken=tuple(i for i in sorted(chosen) if not holds[i]),
                  unsatisfied=tuple(i for i, ok in enumerate(holds) if not ok and i not in chosen))


def _solve_depth(bodies: list[_Body], rels: list[_Rel], seed: int, width: int, height: int) -> list[float]:
    """Each object's depth, from its hashed start: the stated depth relations with the depth preferences if they
    can hold together, else the stated ones alone; each with the clearest steps that fit."""
    n = len(bodies)
    start = [0.1 + 0.8 * _unit(seed, body.key, "depth") + _nudge(seed, body, "depth", 0.05) for body in bodies]
    preferences = _depth_preferences(rels)
    depth = [list(start)]
    for extra in ([preferences, []] if preferences else [[]]):
        for relax in RELAXATION:
            depth = [list(start)]
            frame = _Frame(width, height, bodies, relax)
            items = [item for rel in rels for item in _depth_items(rel, frame)] + extra
            if _solve(depth, [[0.0] * n], [[1.0] * n], items, DEPTH_PASSES, 1e-6):
                return depth[0]
    return depth[0]  # contradictory: the last try, with the stated relations that could not all hold


def _solve_plane(bodies: list[_Body], rels: list[_Rel], seed: int, width: int, height: int) -> list[list[float]]:
    """Each object's centre [xs, ys], from its hashed start, with the clearest margins that fit."""
    pad = _pad(width, height)
    lo = [[min(pad + b.w / 2, width / 2) for b in bodies], [min(pad + b.h / 2, height / 2) for b in bodies]]
    hi = [[max(width - pad - b.w / 2, width / 2) for b in bodies],
          [max(height - pad - b.h / 2, height / 2) for b in bodies]]
    start_x = [width * (0.12 + 0.76 * _unit(seed, b.key, "x") + _nudge(seed, b, "x", 0.05)) for b in bodies]
    # Objects start on a ground line that is lower the nearer they are; vertical relations move them from it.
    start_y = [height * (0.95 - 0.45 * b.d + _nudge(seed, b, "y", 0.03)) - b.h / 2 for b in bodies]
    exempt, prefer = _pair_rules(rels)
    plane: list[list[float]] = [[], []]
    for relax in RELAXATION:
        plane = [[min(max(x, lo[0][i]), hi[0][i]) for i, x in enumerate(start_x)],
                 [min(max(y, lo[1][i]), hi[1][i]) for i, y in enumerate(start_y)]]
        frame = _Frame(width, height, bodies, relax)
        # Disjunctions last, so that the side they pick follows where the plain constraints have put things.
        items = sorted((item for rel in rels for item in _plane_items(rel, frame)), key=len)
        push = _overlap_remover(bodies, plane, lo, hi, frame.gap, exempt, prefer)
        if _solve(plane, lo, hi, items, PLANE_PASSES, 1e-3, push):
            break
    return plane


def _draw_order(laid: list[LaidObject], rels: list[_Rel]) -> tuple[int, ...]:
    """Back to front; a thing set into the middle of another comes after it, so it is not hidden by it."""
    order = sorted(range(len(laid)), key=lambda i: (-laid[i].depth, laid[i].key))
    for rel in rels:
        if rel.kind == K.IN_MIDDLE and rel.anchors:
            s, a = rel.subject, rel.anchors[0]
            if order.index(s) < order.index(a):
                order.remove(s)
                order.insert(order.index(a) + 1, s)
    return tuple(order)


# ---------------------------------------------------------------------------------------------------------------
# Drawing


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=4096)
def _label_text(name: str, size: int, room_w: int, room_h: int) -> tuple[str, tuple[int, int, int, int]] | None:
    """The longest prefix of the name that fits the room, with its ink box, or None."""
    font = _font(size)
    best = None
    low, high = 1, len(name)
    while low <= high:  # text width grows with its length: binary search the prefix
        mid = (low + high) // 2
        text = name[:mid].rstrip()
        box = font.getbbox(text, mode="1")
        if box[2] - box[0] <= room_w and box[3] - box[1] <= room_h:
            best, low = (text, box), mid + 1
        else:
            high = mid - 1
    return best if best is not None and len(best[0]) >= min(2, len(name)) else None


def _instances(bbox: Box, count: int) -> list[Box]:
    """The boxes of a count > 1 object's instances: a grid whose union is exactly bbox."""
    if count <= 1:
        return [bbox]
    cols, rows = _grid(count)
    x0, y0, x1, y1 = bbox
    xs = [x0 + round((x1 - x0) * k / cols) for k in range(cols + 1)]
    ys = [y0 + round((y1 - y0) * k / rows) for k in range(rows + 1)]
    gap = 1 if min((x1 - x0) / cols, (y1 - y0) / rows) >= 4 else 0  # a seam of background tells them apart
    boxes = []
    for n in range(count):
        row, col = divmod(n, cols)
        box = (xs[col], ys[row], xs[col + 1] - (gap if col < cols - 1 else 0),
               ys[row + 1] - (gap if row < rows - 1 else 0))
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
    return boxes


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, colour: RGB) -> None:
    x0, y0, x1, y1 = box[0], box[1], box[2] - 1, box[3] - 1  # ImageDraw takes inclusive corners
    if shape == "rectangle" or x1 - x0 < 2 or y1 - y0 < 2:  # tiny shapes would lose their outer pixels
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    elif shape == "ellipse":
        draw.ellipse((x0, y0, x1, y1), fill=colour)
    elif shape == "rounded":
        draw.rounded_rectangle((x0, y0, x1, y1), radius=min(x1 - x0, y1 - y0) // 4, fill=colour)
    elif shape == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=colour)
    else:  # diamond
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=colour)


def _draw_label(draw: ImageDraw.ImageDraw, obj: LaidObject, size: int) -> None:
    # A group is labelled on its first instance: across the group the seams would cut through the text.
    x0, y0, x1, y1 = _instances(obj.bbox, obj.count)[0]
    fitted = _label_text(obj.name, size, x1 - x0 - 2 * LABEL_INSET, y1 - y0 - 2 * LABEL_INSET)
    if fitted is None:
        return
    text, (left, top, right, bottom) = fitted
    r, g, b = obj.colour
    ink = BLACK if 0.299 * r + 0.587 * g + 0.114 * b > 110 else WHITE
    origin = ((x0 + x1 - left - right) // 2, (y0 + y1 - top - bottom) // 2)
    draw.text(origin, text, fill=ink, font=_font(size))


def draw_layout(layout: Layout, *, labels: bool = True) -> Image.Image:
    width, height = layout.width, layout.height
    image = Image.new("RGB", (width, height), SKY)
    draw = ImageDraw.Draw(image)
    # No anti-aliasing: label pixels are pure black or white, never a blend that could equal an object's colour.
    draw.fontmode = "1"
    draw.rectangle((0, round(height * HORIZON), width - 1, height - 1), fill=FLOOR)
    font_size = max(8, round(min(width, height) / 40))
    for index in layout.draw_order:
        obj = layout.objects[index]
        for box in _instances(obj.bbox, obj.count):
            _draw_shape(draw, obj.shape, box, obj.colour)
        if labels:  # right after its object, so nearer objects cover a farther one's label too
            _draw_label(draw, obj, font_size)
    return image


# ---------------------------------------------------------------------------------------------------------------
# Checking


def _rests_on(top: Placed, base: Placed, height: int) -> bool:
    return abs(top.bbox[3] - base.bbox[1]) <= CONTACT * height and base.bbox[0] <= top.cx <= base.bbox[2]


def _before(axis: str, a: Placed, b: Placed, width: int, height: int) -> bool:
    """a comes before b: left of it (x), above it (y) or in front of it (d)."""
    if axis == "x":
        return a.cx + ORDER * width <= b.cx
    if axis == "y":
        return a.cy + ORDER * height <= b.cy
    return a.depth + DEPTH_ORDER <= b.depth


def _aligned(s: Placed, anchor: Placed | None, edge: str, width: int, height: int) -> bool:
    if edge in ("front", "back"):
        if anchor is not None:
            return abs(s.depth - anchor.depth) <= DEPTH_EDGE
        return s.depth <= DEPTH_EDGE if edge == "front" else s.depth >= 1 - DEPTH_EDGE
    side = {"left": 0, "top": 1, "right": 2, "bottom": 3}.get(edge)
    if side is None:
        return False
    extent = width if side in (0, 2) else height
    if anchor is not None:
        return abs(s.bbox[side] - anchor.bbox[side]) <= EDGE * extent
    return s.bbox[side] <= EDGE * extent if side < 2 else s.bbox[side] >= (1 - EDGE) * extent


def _holds(kind: RelationKind, param: str, s: Placed | None, anchors: list[Placed], others: list[Placed],
           width: int, height: int) -> bool:
    if kind in (K.LEFT_OF, K.RIGHT_OF, K.ABOVE, K.BELOW, K.IN_FRONT_OF, K.BEHIND, K.ON_TOP_OF, K.UNDER, K.NEXT_TO):
        if s is None or not anchors:
            return False
        a = anchors[0]
        if kind == K.LEFT_OF:
            return _before("x", s, a, width, height)
        if kind == K.RIGHT_OF:
            return _before("x", a, s, width, height)
        if kind == K.ABOVE:
            return _before("y", s, a, width, height)
        if kind == K.BELOW:
            return _before("y", a, s, width, height)
        if kind == K.IN_FRONT_OF:
            return _before("d", s, a, width, height)
        if kind == K.BEHIND:
            return _before("d", a, s, width, height)
        if kind == K.ON_TOP_OF:
            return _rests_on(s, a, height)
        if kind == K.UNDER:
            return _rests_on(a, s, height)
        gap_x = max(s.bbox[0], a.bbox[0]) - min(s.bbox[2], a.bbox[2])
        gap_y = max(s.bbox[1], a.bbox[1]) - min(s.bbox[3], a.bbox[3])
        return gap_x <= NEXT_X * width and gap_y <= NEXT_Y * height
    if kind == K.BETWEEN:
        if s is None or len(anchors) != 2:
            return False
        low, high = sorted((anchors[0].cx, anchors[1].cx))
        return low + ORDER * width <= s.cx <= high - ORDER * width
    if kind == K.IN_MIDDLE:
        if s is None:
            return False
        if not anchors:
            return abs(s.cx - width / 2) <= MIDDLE * width
        a = anchors[0]
        return abs(s.cx - a.cx) <= MIDDLE_OF * a.width and abs(s.cy - a.cy) <= MIDDLE_OF * a.height
    if kind == K.ALIGNED:
        return s is not None and _aligned(s, anchors[0] if anchors else None, param, width, height)
    if kind == K.SEQUENCE:
        if param not in _SEQUENCE_AXES:
            return False
        axis, reverse = _SEQUENCE_AXES[SequenceDirection(param)]
        items = anchors[::-1] if reverse else anchors
        return all(_before(axis, a, b, width, height) for a, b in zip(items, items[1:], strict=False))
    if kind == K.EXTREME:
        if s is None or param not in _EXTREME_AXES:
            return False
        axis, reverse = _EXTREME_AXES[Extreme(param)]
        return all(_before(axis, o, s, width, height) if reverse else _before(axis, s, o, width, height)
                   for o in others)
    return False


def check_relations(graph: SceneGraph, objects: Mapping[ObjectKey, Placed], size: tuple[int, int]) -> list[bool]:
    """Whether each relation of `graph` holds where `objects` (object key -> Placed) puts its objects, in an image
    of `size` (width, height). Objects are matched by key; a relation naming an object that is not in `objects`
    (or one object twice) does not hold. Extremes compare with every other object of the graph in `objects`."""
    width, height = size
    key_of = {o.id: o.key for o in graph.objects}
    present = [key for key in dict.fromkeys(key_of.values()) if key in objects]
    results = []
    for rel in graph.relations:
        subject_key = key_of.get(rel.subject) if rel.subject is not None else None
        named = ([subject_key] if rel.subject is not None else []) + [key_of.get(a) for a in rel.anchors]
        if any(key not in objects for key in named) or len(set(named)) != len(named):
            results.append(False)  # an object missing from the layout, or one related to itself
            continue
        s = objects[subject_key] if subject_key is not None else None
        anchors = [objects[key_of[a]] for a in rel.anchors]
        others = [objects[key] for key in present if key != subject_key]
        results.append(_holds(rel.kind, rel.param, s, anchors, others, width, height))
    return results


# ---------------------------------------------------------------------------------------------------------------
# Reading a layout back: from the meta, or from the pixels


def object_key(meta_object: Mapping) -> ObjectKey:
    name, attributes, count = meta_object["key"]
    return name, tuple(attributes), count


def layout_from_meta(meta: Mapping) -> dict[ObjectKey, Placed]:
    return {object_key(o): Placed(tuple(o["bbox"]), o["depth"]) for o in meta["objects"]}


@lru_cache(maxsize=256)
def _equals(value: int) -> list[int]:
    """A point() table that keeps one channel value (as 255) and drops the rest."""
    return [255 if v == value else 0 for v in range(256)]


def locate_objects(image: Image.Image, objects_meta: Iterable[Mapping]) -> dict[ObjectKey, Box]:
    """Each object's box found from the pixels of its colour (meta["objects"] entries); objects with no visible
    pixel are left out."""
    bands = (image if image.mode == "RGB" else image.convert("RGB")).split()
    found = {}
    for obj in objects_meta:
        colour = obj["colour"]
        mask = None
        rgb = (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))
        for band, value in zip(bands, rgb, strict=True):
            channel = band.point(_equals(value))
            mask = channel if mask is None else ImageChops.darker(mask, channel)
        box = mask.getbbox() if mask is not None else None
        if box is not None:
            found[object_key(obj)] = box
    return found


def measure_layout(image: Image.Image, meta: Mapping) -> dict[ObjectKey, Placed]:
    """The layout as seen in the pixels: boxes by colour, depth from each box and its nominal size (0 in a flat
    picture, whose boxes do not show depth)."""
    nominal = {object_key(o): o["nominal"] for o in meta["objects"]}
    back_scale = meta.get("depth_scale", [1.0, BACK_SCALE])[1]
    return {key: Placed(box, depth_from_box(box, nominal[key], back_scale))
            for key, box in locate_objects(image, meta["objects"]).items()}
