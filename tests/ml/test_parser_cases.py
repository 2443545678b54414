"""The hand-written case table (tests/ml/parser_cases.py): each prompt must parse to its expected graph."""

from __future__ import annotations

import pytest

from ml.spatial import lexicon
from ml.spatial.graph import Relation, RelationKind, SceneGraph, SceneObject
from ml.spatial.parser import parse, singular
from tests.ml.parser_cases import CASES, Case

_ATTRIBUTES = frozenset(lexicon.COLOURS + lexicon.MATERIALS + lexicon.SIZES)
_BINARY = {kind.value: kind for kind in lexicon.BINARY_PHRASES}
# Phrases the parser reads beyond the lexicon (the generator never writes them).
_EXTRA_BINARY = {
    RelationKind.LEFT_OF: ("to the left side of", "to the left-hand side of", "on the left-hand side of"),
    RelationKind.RIGHT_OF: ("to the right side of", "to the right-hand side of", "on the right-hand side of"),
    RelationKind.ON_TOP_OF: ("atop", "upon", "on the top of"),
    RelationKind.NEXT_TO: ("alongside", "adjacent to"),
}
_EXTRA_MIDDLE = ("in the very middle", "at the centre", "centred", "in the exact center", "in the exact centre",
                 "at the very center", "at the very centre")


def object_key(spec: str) -> tuple[str, tuple[str, ...], int]:
    """ "3 red book" -> ("book", ("red",), 3); the last word always belongs to the name ("red glass")."""
    main, of, rest = spec.partition(" of ")  # "glass of water": "glass" is the head here
    words = main.split()
    count = int(words.pop(0)) if words[0].isdigit() else 1
    attributes = []
    while len(words) > 1 and words[0] in _ATTRIBUTES:
        attributes.append(words.pop(0))
    return " ".join(words) + of + rest, tuple(sorted(attributes)), count


def expected_graph(case: Case) -> SceneGraph:
    ids = {spec: f"o{i + 1}" for i, spec in enumerate(case.objects)}
    objects = tuple(SceneObject(ids[spec], *object_key(spec)) for spec in case.objects)
    relations = []
    for rel in case.relations:
        kind, rest = rel[0], rel[1:]
        if kind in _BINARY:
            relations.append(Relation(_BINARY[kind], ids[rest[0]], (ids[rest[1]],)))
        elif kind == "between":
            relations.append(Relation(RelationKind.BETWEEN, ids[rest[0]], (ids[rest[1]], ids[rest[2]])))
        elif kind == "in_middle":
            relations.append(Relation(RelationKind.IN_MIDDLE, ids[rest[0]], tuple(ids[a] for a in rest[1:])))
        elif kind == "aligned":
            relations.append(Relation(RelationKind.ALIGNED, ids[rest[0]], tuple(ids[a] for a in rest[2:]), rest[1]))
        elif kind == "sequence":
            relations.append(Relation(RelationKind.SEQUENCE, None, tuple(ids[a] for a in rest[1:]), rest[0]))
        elif kind == "extreme":
            relations.append(Relation(RelationKind.EXTREME, ids[rest[0]], (), rest[1]))
        else:
            raise ValueError(f"unknown relation in case table: {rel}")
    return SceneGraph(objects=objects, relations=tuple(relations))


def _singular_words(text: str) -> str:
    return " ".join(singular(word) for word in text.lower().split())


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _relation_phrase_ok(relation: Relation, graph: SceneGraph) -> bool:
    text = _norm(relation.span.text(graph.text))
    kind = relation.kind
    if kind in lexicon.BINARY_PHRASES:
        return text in lexicon.BINARY_PHRASES[kind] + _EXTRA_BINARY.get(kind, ())
    if kind == RelationKind.IN_MIDDLE:
        return text in lexicon.MIDDLE_PHRASES + _EXTRA_MIDDLE
    if kind == RelationKind.ALIGNED:
        return text in {template.format(edge=relation.param) for template in lexicon.ALIGNED_TEMPLATES}
    if kind == RelationKind.EXTREME:
        words = [w for ws in lexicon.EXTREME_WORDS.values() for w in ws]
        return text.replace("-", "") in words
    names = [graph.object(a).name for a in relation.anchors]
    spoken = " ".join(singular(w) for w in text.replace(",", " ").split())
    if kind == RelationKind.BETWEEN:
        return text.startswith(lexicon.BETWEEN_PHRASES) and all(name in spoken for name in names)
    assert kind == RelationKind.SEQUENCE
    direction = " ".join(lexicon.SEQUENCE_PHRASES[relation.param][0].split()[1:])  # "left to right"
    return direction in text and all(name in spoken for name in names)


def test_case_table_is_big_and_varied():
    texts = [case.text for case in CASES]
    assert len(set(texts)) == len(texts), "duplicate prompts in the case table"
    assert len(CASES) >= 150
    long_cases = [c for c in CASES if 40 <= len(c.text.split()) <= 120 and 4 <= len(c.relations) <= 11]
    assert len(long_cases) >= 30
    kinds = {rel[0] for case in CASES for rel in case.relations}
    assert kinds >= {k.value for k in RelationKind}
    assert sum(1 for case in CASES if case.unparsed) >= 10


@pytest.mark.parametrize("case", CASES, ids=[f"{i:03d}" for i in range(len(CASES))])
def test_case(case: Case):
    graph = parse(case.text)
    expected = expected_graph(case)
    got_objects, got_relations = graph.canonical()
    want_objects, want_relations = expected.canonical()
    assert got_objects == want_objects, (
        f"objects: missing {want_objects - got_objects}, extra {got_objects - want_objects}")
    assert got_relations == want_relations, (
        f"relations: missing {want_relations - got_relations}, extra {got_relations - want_relations}")
    assert [span.text(case.text) for span in graph.unparsed] == case.unparsed
    for relation in graph.relations:
        assert _relation_phrase_ok(relation, graph), (relation, relation.span.text(case.text))
    for obj in graph.objects:
        assert obj.mentions, obj
        for mention in obj.mentions:
            assert _singular_words(obj.name) in _singular_words(mention.text(case.text)), (obj, mention)
