"""The perturbation engine: rules as data, exact rewrites per rule kind, grammar, rejections with reasons, and
(against the parser) that every accepted perturbation differs from its prompt in exactly its edits."""

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ml.spatial.perturb as engine
from ml.spatial import lexicon as lx
from ml.spatial.generator import generate_prompt
from ml.spatial.graph import Relation, RelationKind, SceneGraph, SceneObject, Span
from ml.spatial.perturb import (
    AMBIGUOUS,
    CONTRADICTION,
    DROPS_OBJECT,
    NO_OP,
    NOT_APPLICABLE,
    TOO_FEW_EDITS,
    VERIFICATION_FAILED,
    Edit,
    Perturbation,
    PerturbationError,
    Rejection,
    Rule,
    RuleKind,
    candidate_edits,
    perturb,
    rejections,
)
from tests.ml.strategies import feasible_prompt

ALL_RULES = [Rule(RuleKind.FLIP_DIRECTION, weight=3), Rule(RuleKind.SWAP_OBJECTS, weight=2),
             Rule(RuleKind.REVERSE_SEQUENCE), Rule(RuleKind.ROTATE_SEQUENCE, {"steps": 1}),
             Rule(RuleKind.MOVE_ANCHOR)]


@pytest.fixture(scope="module")
def parse():
    return pytest.importorskip("ml.spatial.parser").parse


def parse_text(text: str) -> SceneGraph:
    return pytest.importorskip("ml.spatial.parser").parse(text)


def only(kind: str, **params) -> list[Rule]:
    return [Rule(RuleKind(kind), params)]


def reasons_of(text_or_graph, rules) -> list[str]:
    graph = parse_text(text_or_graph) if isinstance(text_or_graph, str) else text_or_graph
    return [r.reason for r in rejections(graph, rules)]


# --- rules as data ------------------------------------------------------------------------------------------


def test_rule_defaults_and_round_trip():
    rule = Rule(RuleKind.FLIP_DIRECTION)
    assert rule.name == "flip_direction" and rule.weight == 1.0
    assert rule.params == {"axes": list(lx.AXES)}
    rotate = Rule("rotate_sequence", weight=2, name="Rotate by one")
    assert rotate.kind is RuleKind.ROTATE_SEQUENCE and rotate.params == {"steps": 1}
    assert Rule.from_dict(rotate.to_dict()) == rotate
    assert Rule(RuleKind.FLIP_DIRECTION, {"axes": ["depth", "horizontal", "depth"]}).params == {
        "axes": ["horizontal", "depth"]}
    json.dumps(rotate.to_dict())


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"kind": "shuffle"}, "kind"),
    ({"kind": "flip_direction", "params": {"axis": ["depth"]}}, "params.axis"),
    ({"kind": "flip_direction", "params": {"axes": ["diagonal"]}}, "params.axes"),
    ({"kind": "flip_direction", "params": {"axes": []}}, "params.axes"),
    ({"kind": "flip_direction", "params": {"axes": "depth"}}, "params.axes"),
    ({"kind": "rotate_sequence", "params": {"steps": 0}}, "params.steps"),
    ({"kind": "rotate_sequence", "params": {"steps": "1"}}, "params.steps"),
    ({"kind": "swap_objects", "params": {"steps": 1}}, "params.steps"),
    ({"kind": "swap_objects", "params": ["x"]}, "params"),
    ({"kind": "swap_objects", "weight": 0}, "weight"),
    ({"kind": "swap_objects", "weight": float("nan")}, "weight"),
    ({"kind": "swap_objects", "weight": -1}, "weight"),
])
def test_bad_rules_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        Rule(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_edits": 0}, "n_edits"), ({"n_edits": 4}, "n_edits"), ({"n_edits": True}, "n_edits"),
    ({"seed": "1"}, "seed"), ({"rules": []}, "rules"), ({"rules": ["flip_direction"]}, "rules"),
])
def test_bad_perturb_arguments(kwargs, message):
    arguments = {"rules": ALL_RULES, "graph": SceneGraph(), **kwargs}
    with pytest.raises(ValueError, match=message):
        perturb("", **arguments)


# --- each rule kind, on hand-written prompts ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "rules", "expected"), [
    ("A red mug is to the left of a laptop.", only("flip_direction"), "A red mug is to the right of a laptop."),
    ("The cat is on the rug.", only("flip_direction"), "The cat is beneath the rug."),
    ("A lamp is over the sofa.", only("flip_direction"), "A lamp is below the sofa."),
    ("A mug is on the left side of a laptop, and a lamp is behind the laptop.",
     only("flip_direction", axes=["depth"]),
     "A mug is on the left side of a laptop, and a lamp is in front of the laptop."),
    ("Three books are left of the lamp.", only("swap_objects"), "The lamp is left of three books."),
    ("The lamp is left of three books.", only("swap_objects"), "Three books are left of the lamp."),
    ("An apple is behind a kettle.", only("swap_objects"), "A kettle is behind an apple."),
    ("In a sunny kitchen, a mug is left of a kettle, and three plates are behind the kettle.",
     [Rule(RuleKind.SWAP_OBJECTS)],
     None),  # either relation may be chosen: checked below
    ("A mug is left of a kettle. The kettle is behind a toaster.", only("move_anchor"),
     "A mug is left of the toaster. The kettle is behind a toaster."),
    ("From left to right: a mug, a kettle and a toaster.", only("reverse_sequence"),
     "From left to right: a toaster, a kettle and a mug."),
    ("From left to right: a mug, a kettle and a toaster.", only("rotate_sequence"),
     "From left to right: a kettle, a toaster and a mug."),
    ("From left to right: a mug, a kettle and a toaster.", only("rotate_sequence", steps=2),
     "From left to right: a toaster, a mug and a kettle."),
    ("A mug, a kettle and a toaster in a row from front to back.", only("reverse_sequence"),
     "A toaster, a kettle and a mug in a row from front to back."),
    ("Three mugs, a kettle and an apple in a row from front to back.", only("rotate_sequence"),
     "A kettle, an apple and three mugs in a row from front to back."),
])
def test_each_rule_kind_rewrites_exactly(text, rules, expected):
    result = perturb(text, rules=rules, seed=0)
    if expected is None:
        assert result.perturbed in (
            "In a sunny kitchen, a kettle is left of a mug, and three plates are behind the kettle.",
            "In a sunny kitchen, a mug is left of a kettle, and the kettle is behind three plates.")
    else:
        assert result.perturbed == expected
    assert result.original == text and len(result.edits) == 1
    assert result.edits[0].rule == rules[0].name


def test_edit_records_the_relation_and_spans_in_both_texts():
    text = "Three books are left of the lamp. A red mug is to the left of a laptop."
    result = perturb(text, rules=only("swap_objects"), seed=1)
    (edit,) = result.edits
    assert edit.span_before.text(text) == "Three books are left of the lamp"
    assert edit.span_after.text(result.perturbed) == "The lamp is left of three books"
    assert edit.relation_before["kind"] == "left_of" and edit.relation_after["kind"] == "left_of"
    assert edit.relation_before["subject_key"] == ["book", [], 3]
    assert edit.relation_after["subject_key"] == ["lamp", [], 1]
    assert edit.relation_after["anchor_keys"] == [["book", [], 3]]
    assert edit.relation_after["text"] == "left of"
    flip = perturb(text, rules=only("flip_direction"), seed=3).edits[0]
    assert flip.relation_before["text"] in ("left of", "to the left of")
    assert flip.relation_after["kind"] == "right_of"
    data = result.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["edits"][0]["span_before"] == edit.span_before.to_list()
    assert isinstance(result, Perturbation) and isinstance(edit, Edit)


def test_grammar_after_a_swap_capitals_copula_and_articles():
    cases = {
        "Two lamps are behind an armchair.": "An armchair is behind two lamps.",
        "An armchair is behind two lamps.": "Two lamps are behind an armchair.",
        "In a cozy bedroom, a pair of slippers is under the bed.": "In a cozy bedroom, the bed is under a pair of "
                                                                    "slippers.",
        "The sofa is behind an orange cushion.": "An orange cushion is behind the sofa.",
    }
    for text, expected in cases.items():
        assert perturb(text, rules=only("swap_objects")).perturbed == expected


def test_an_article_before_a_replaced_word_is_made_to_agree():
    # A hand-made graph whose mention leaves the article out and whose new anchor starts with a vowel sound.
    text = "A mug is left of a kettle. The kettle is behind an apple. The apple is on the mug."
    graph = parse_text(text)
    context = engine._Context(graph, text)
    assert context.agree((19, 25, "apple")) == (17, 25, "an apple")
    assert context.agree((19, 25, "kettle")) == (19, 25, "kettle")
    assert context.agree((0, 5, "a apple")) == (0, 5, "an apple")


# --- rejections, each with its reason -----------------------------------------------------------------------


def test_swapping_a_symmetric_relation_is_a_no_op():
    with pytest.raises(PerturbationError) as raised:
        perturb("A mug is next to a kettle.", rules=only("swap_objects"))
    assert any(r.reason.startswith(NO_OP) and "symmetric" in r.reason for r in raised.value.reasons)
    assert any(r.reason.startswith(TOO_FEW_EDITS) for r in raised.value.reasons)
    assert all(isinstance(r, Rejection) for r in raised.value.reasons)


def test_swapping_two_identical_objects_is_a_no_op():
    text = "A mug is left of a mug."
    mug = SceneObject("o1", "mug", (), 1, (Span(2, 5), Span(19, 22)))
    graph = SceneGraph((mug,), (Relation(RelationKind.LEFT_OF, "o1", ("o1",), "", Span(9, 16)),), text=text)
    assert any(r.startswith(NO_OP) and "same" in r for r in reasons_of(graph, only("swap_objects")))


def test_an_edit_equal_to_another_relation_is_a_no_op():
    text = "A mug is left of a kettle. The mug is left of a toaster. The kettle is behind the toaster."
    found = reasons_of(text, only("move_anchor"))
    assert sum(r.startswith(NO_OP) and "repeat another relation" in r for r in found) == 2
    # the one safe move: the kettle is behind the mug instead of the toaster
    assert perturb(text, rules=only("move_anchor")).perturbed == (
        "A mug is left of a kettle. The mug is left of a toaster. The kettle is behind the mug.")


def test_a_fact_stated_twice_cannot_be_flipped_once():
    text = "A mug is left of a kettle. The kettle is right of the mug."
    with pytest.raises(PerturbationError) as raised:
        perturb(text, rules=only("flip_direction"))
    assert [r.reason.split(":")[0] for r in raised.value.reasons].count(CONTRADICTION) == 2


def test_an_edit_contradicting_a_sequence_is_rejected():
    text = "A mug is left of a kettle. From left to right: the mug, the kettle and a toaster."
    found = reasons_of(text, only("flip_direction") + only("swap_objects") + only("reverse_sequence"))
    assert sum(r.startswith(CONTRADICTION) for r in found) == 3
    # a relation on another axis is free to change
    assert perturb(text + " The toaster is behind the mug.", rules=only("flip_direction")).perturbed.endswith(
        "The toaster is in front of the mug.")


def test_moving_an_anchor_mentioned_once_would_drop_the_object():
    text = "A mug is left of a kettle. A toaster is behind the mug."
    found = reasons_of(text, only("move_anchor"))
    assert any(r.startswith(DROPS_OBJECT) for r in found)
    assert perturb(text, rules=only("move_anchor")).perturbed == (
        "A mug is left of a kettle. A toaster is behind the kettle.")


def test_an_edit_whose_target_cannot_be_located_is_ambiguous():
    text = "A mug is left of a kettle and a lamp is left of a kettle."
    mug = SceneObject("o1", "mug", (), 1, (Span(2, 5),))
    kettle = SceneObject("o2", "kettle", (), 1, (Span(19, 25), Span(51, 57)))
    lamp = SceneObject("o3", "lamp", (), 1, (Span(32, 36),))
    # No span at all, and a span that holds two phrases, neither between this subject and anchor.
    no_span = Relation(RelationKind.LEFT_OF, "o1", ("o2",), "", None)
    too_wide = Relation(RelationKind.LEFT_OF, "o1", ("o3",), "", Span(0, len(text)))
    graph = SceneGraph((mug, kettle, lamp), (no_span, too_wide), text=text)
    found = reasons_of(graph, only("flip_direction"))
    assert len(found) == 2 and all(r.startswith(AMBIGUOUS) for r in found)
    with pytest.raises(PerturbationError):
        perturb(text, rules=only("flip_direction"), graph=graph)


def test_a_sequence_item_mentioned_twice_inside_the_sequence_is_ambiguous():
    text = "From left to right: a mug, a kettle and a mug."
    mug = SceneObject("o1", "mug", (), 1, (Span(22, 25), Span(42, 45)))
    kettle = SceneObject("o2", "kettle", (), 1, (Span(29, 35),))
    graph = SceneGraph((mug, kettle), (Relation(RelationKind.SEQUENCE, None, ("o1", "o2"), "left_to_right",
                                                Span(0, 45)),), text=text)
    assert all(r.startswith(AMBIGUOUS) for r in reasons_of(graph, only("reverse_sequence")))


def test_rotating_by_a_multiple_of_the_length_is_a_no_op():
    found = reasons_of("From left to right: a mug, a kettle and a toaster.", only("rotate_sequence", steps=3))
    assert len(found) == 1 and found[0].startswith(NO_OP)


def test_a_rule_with_nothing_to_edit_is_not_applicable():
    with pytest.raises(PerturbationError) as raised:
        perturb("A mug is left of a kettle.", rules=only("reverse_sequence") + only("flip_direction",
                                                                                     axes=["vertical"]))
    reasons = [r.reason for r in raised.value.reasons]
    assert sum(r.startswith(NOT_APPLICABLE) for r in reasons) == 2


def test_too_few_edits_for_the_two_to_three_subset():
    with pytest.raises(PerturbationError) as raised:
        perturb("A mug is left of a kettle.", rules=ALL_RULES, n_edits=2)
    assert raised.value.reasons[-1].reason.startswith(TOO_FEW_EDITS)
    assert "no valid perturbation" in str(raised.value)


def test_an_edit_the_parser_does_not_read_back_is_rejected(monkeypatch):
    text = "A mug is left of a kettle."
    graph = parse_text(text)
    monkeypatch.setattr(engine, "_parse", lambda _text: graph)  # "reads" the original back: no difference
    with pytest.raises(PerturbationError) as raised:
        perturb(text, rules=only("flip_direction"), graph=graph)
    assert any(r.reason.startswith(VERIFICATION_FAILED) and r.rule == "flip_direction"
               for r in raised.value.reasons)


def test_candidate_edits_lists_what_could_be_applied():
    text = ("A mug is left of a kettle. The kettle is behind a toaster. "
            "From left to right: the toaster, a plate and a bowl.")
    candidates = candidate_edits(parse_text(text), ALL_RULES)
    by_rule = Counter(c.rule.name for c in candidates)
    assert by_rule == {"flip_direction": 2, "swap_objects": 2, "reverse_sequence": 1, "rotate_sequence": 1,
                       "move_anchor": 6}
    assert {c.descriptor for c in candidates if c.rule.kind == RuleKind.MOVE_ANCHOR} == {
        (0, "o3"), (0, "o4"), (0, "o5"), (1, "o1"), (1, "o4"), (1, "o5")}


# --- properties over generated prompts ----------------------------------------------------------------------

seeds = st.integers(0, 2**40)
sizes = st.tuples(st.integers(3, 9), st.integers(3, 11))


def generated(seed: int, size: tuple[int, int], style: str = "long"):
    n_objects, n_relations = size
    return feasible_prompt(seed=seed, n_objects=n_objects, n_relations=n_relations, style=style)


def expected_diff(original: SceneGraph, result: Perturbation) -> tuple[set, set]:
    keys = {o.id: o.key for o in original.objects}

    def canonical(data: dict) -> tuple:
        relation = Relation.from_dict({**data, "span": None})
        return engine._Context(original, original.text).canon(relation.kind, relation.subject, relation.anchors,
                                                               relation.param)

    assert all(a in keys for e in result.edits for a in e.relation_after["anchors"])
    return ({canonical(e.relation_before) for e in result.edits}, {canonical(e.relation_after) for e in result.edits})


@settings(max_examples=120, deadline=None)
@given(seed=seeds, size=sizes, n_edits=st.integers(1, 3), style=st.sampled_from(("long", "short")))
def test_every_accepted_perturbation_differs_in_exactly_its_edits(seed, size, n_edits, style):
    prompt = generated(seed, size, style)
    try:
        result = perturb(prompt.text, rules=ALL_RULES, n_edits=n_edits, seed=seed)
    except PerturbationError as error:
        assert error.reasons
        return
    assert len(result.edits) == n_edits
    assert len({e.relation_before["span"][0] for e in result.edits}) == n_edits  # one edit per relation
    original, perturbed = parse_text(prompt.text), parse_text(result.perturbed)
    assert Counter(o.key for o in perturbed.objects) == Counter(o.key for o in original.objects)
    assert original.diff(perturbed) == expected_diff(original, result)
    # The text outside the edited spans is unchanged.
    pieces, cursor = [], 0
    for edit in sorted(result.edits, key=lambda e: e.span_before.start):
        pieces.append(prompt.text[cursor:edit.span_before.start])
        pieces.append(edit.span_after.text(result.perturbed))
        cursor = edit.span_before.end
    pieces.append(prompt.text[cursor:])
    assert "".join(pieces) == result.perturbed
    for edit in result.edits:
        assert edit.relation_after["span"] is None or edit.span_after.start <= edit.relation_after["span"][0]


@settings(max_examples=60, deadline=None)
@given(seed=seeds, size=sizes, n_edits=st.integers(1, 3))
def test_same_seed_same_result_with_or_without_the_graph(seed, size, n_edits):
    prompt = generated(seed, size)
    graph = parse_text(prompt.text)
    try:
        first = perturb(prompt.text, rules=ALL_RULES, n_edits=n_edits, seed=seed)
    except PerturbationError as error:
        with pytest.raises(PerturbationError) as again:
            perturb(prompt.text, rules=ALL_RULES, n_edits=n_edits, seed=seed, graph=graph)
        assert again.value.reasons == error.reasons
        return
    assert perturb(prompt.text, rules=ALL_RULES, n_edits=n_edits, seed=seed) == first
    assert perturb(prompt.text, rules=ALL_RULES, n_edits=n_edits, seed=seed, graph=graph) == first


def test_different_seeds_usually_differ():
    prompt = generate_prompt(seed=11, n_objects=6, n_relations=8)
    results = {perturb(prompt.text, rules=ALL_RULES, seed=seed).perturbed for seed in range(12)}
    assert len(results) >= 6
    for n_edits in (2, 3):
        assert len({perturb(prompt.text, rules=ALL_RULES, n_edits=n_edits, seed=s).perturbed
                    for s in range(8)}) >= 4


def test_rule_weights_steer_the_choice():
    prompt = generate_prompt(seed=11, n_objects=6, n_relations=8)
    rules = [Rule(RuleKind.FLIP_DIRECTION, weight=20), Rule(RuleKind.SWAP_OBJECTS, weight=1)]
    used = Counter(perturb(prompt.text, rules=rules, seed=s).edits[0].rule for s in range(60))
    assert used["flip_direction"] > 45 and used["swap_objects"] >= 1


def test_generated_prompts_are_mostly_perturbable():
    ok = Counter()
    for seed in range(60):
        prompt = generate_prompt(seed=seed, n_objects=4 + seed % 5, n_relations=5 + seed % 5)
        for n_edits in (1, 2):
            try:
                perturb(prompt.text, rules=ALL_RULES, n_edits=n_edits, seed=seed)
                ok[n_edits] += 1
            except PerturbationError:
                pass
    assert ok[1] >= 57 and ok[2] >= 50, ok


def test_fast_canonical_form_equals_the_graphs():
    for seed in range(80):
        prompt = generate_prompt(seed=seed, n_objects=2 + seed % 11, n_relations=min(11, 1 + seed % 11)
                                 if seed % 11 else 5)
        graph = prompt.graph
        context = engine._Context(graph, prompt.text)
        assert context.canonical == [graph.canonical_relation(r) for r in graph.relations]


def _outcome(text: str, n_edits: int, seed: int):
    try:
        return perturb(text, rules=ALL_RULES, n_edits=n_edits, seed=seed).to_dict()
    except PerturbationError as error:
        return [r.to_dict() for r in error.reasons]


def test_fast_read_back_equals_reading_the_parsed_graph(monkeypatch):
    """Verification reads the parser's builder lists instead of the SceneGraph (engine._FAST_READ_BACK); both
    must give the same object keys, unparsed spans and canonical relations, and so the same perturbations."""
    from ml.spatial.parser import parse

    texts = [generate_prompt(seed=seed, n_objects=3 + seed % 8, n_relations=1 + seed % 6,
                             style="long" if seed % 2 else "short").text for seed in range(0, 160, 3)]
    texts += ["A mug is left of a kettle and a lamp is behind it. It is next to the sofa.",
              "There is a cat near the sofa, the cat sleeps in the corner. The red mug is on the mat."]
    for text in texts:
        graph = parse(text)
        keys, unparsed, relations = engine._read_back(text)
        graph_keys, graph_unparsed, graph_relations = engine._graph_read_back(graph)
        assert keys == list(graph_keys.values()) and unparsed == graph_unparsed
        assert ({engine._canon_read_back(*r[:4], keys) for r in relations}
                == {engine._canon_read_back(*r[:4], graph_keys) for r in graph_relations}
                == {graph.canonical_relation(r) for r in graph.relations})
    fast = [_outcome(text, n, seed) for seed, text in enumerate(texts) for n in (1, 2, 3)]
    monkeypatch.setattr(engine, "_FAST_READ_BACK", False)
    assert fast == [_outcome(text, n, seed) for seed, text in enumerate(texts) for n in (1, 2, 3)]
