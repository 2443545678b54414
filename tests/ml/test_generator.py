"""The prompt generator: deterministic, exact spans, lexicon phrases only, and text that parses back to its graph."""

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.spatial import lexicon as lx
from ml.spatial.generator import (
    CATEGORIES,
    FILLERS,
    LONG_WORDS,
    OPENERS,
    STYLES,
    GeneratedPrompt,
    generate_prompt,
    generate_prompts,
    indefinite_article,
    max_relations,
)
from ml.spatial.graph import RelationKind, SceneGraph
from tests.ml.strategies import feasible_prompt

sizes = st.integers(2, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, max_relations(n))))
seeds = st.integers(0, 2**48)
categories = st.sampled_from(CATEGORIES)
styles = st.sampled_from(STYLES)


def parse(text: str) -> SceneGraph:
    parser = pytest.importorskip("ml.spatial.parser")
    return parser.parse(text)


def sample(count: int = 300, **kwargs) -> list[GeneratedPrompt]:
    return [generate_prompt(seed=seed, n_objects=2 + seed % 11, n_relations=min(max_relations(2 + seed % 11),
                                                                                1 + seed % 11), **kwargs)
            for seed in range(count)]


def test_categories_are_the_lexicon_scenes():
    assert tuple(lx.SCENES) == CATEGORIES
    assert set(OPENERS) == set(CATEGORIES)


def test_same_seed_same_prompt_and_other_seeds_differ():
    first = generate_prompt(seed=7, n_objects=5, n_relations=6)
    again = generate_prompt(seed=7, n_objects=5, n_relations=6)
    assert first == again
    assert first.graph.to_dict() == again.graph.to_dict()
    texts = {generate_prompt(seed=seed, n_objects=5, n_relations=6).text for seed in range(20)}
    assert len(texts) == 20


def test_colours_every_gives_each_object_a_colour_word_of_its_own():
    from ml.spatial.generator import DISTINCT_COLOURS

    for seed in range(60):
        n_objects = 2 + seed % 5
        prompt = generate_prompt(seed=seed, n_objects=n_objects, n_relations=min(2, max_relations(n_objects)),
                                 style="short" if seed % 2 else "long", colours="every")
        colours = [[a for a in o.attributes if a in lx.COLOURS] for o in prompt.graph.objects]
        assert all(len(c) == 1 and c[0] in DISTINCT_COLOURS for c in colours), prompt.text
        assert len({c[0] for c in colours}) == n_objects, prompt.text  # a colour of its own
        assert not any(a in lx.MATERIALS for o in prompt.graph.objects for a in o.attributes)
        reparsed = parse(prompt.text)  # the text says it: the parser reads the same colours back
        assert sorted(o.key for o in reparsed.objects) == sorted(o.key for o in prompt.graph.objects), prompt.text
    # The default is unchanged by the option's existence: most objects carry no colour word.
    plain = sample(100)
    coloured = sum(bool(set(o.attributes) & set(lx.COLOURS)) for p in plain for o in p.graph.objects)
    assert coloured < 0.5 * sum(len(p.graph.objects) for p in plain)
    with pytest.raises(ValueError, match="colours must be one of some, every, got 'all'"):
        generate_prompt(seed=1, n_objects=2, n_relations=1, colours="all")


def _axis(relation) -> str:
    """The direction a generated relation speaks about, read from its kind and parameter."""
    by_kind = {"left_of": "horizontal", "right_of": "horizontal", "next_to": "horizontal", "between": "horizontal",
               "in_middle": "horizontal", "in_front_of": "depth", "behind": "depth", "above": "vertical",
               "below": "vertical", "on_top_of": "vertical", "under": "vertical"}
    by_word = {"left": "horizontal", "right": "horizontal", "front": "depth", "back": "depth", "top": "vertical",
               "bottom": "vertical"}
    if relation.kind.value in by_kind:
        return by_kind[relation.kind.value]
    word = next(w for w in by_word if w in relation.param)  # sequence direction, extreme, aligned edge
    return by_word[word]


@pytest.mark.parametrize("axes", [("horizontal",), ("depth",), ("vertical",), ("horizontal", "vertical"),
                                  ("depth", "horizontal")])
def test_axes_keep_every_relation_to_the_chosen_directions(axes):
    seen = Counter()
    for seed in range(80):
        n_objects = 2 + seed % 6
        prompt = generate_prompt(seed=seed, n_objects=n_objects,
                                 n_relations=min(1 + seed % 5, max_relations(n_objects, axes)),
                                 style="short" if seed % 2 else "long", axes=axes)
        kinds = [_axis(r) for r in prompt.graph.relations]
        assert set(kinds) <= set(axes), (prompt.text, kinds)
        seen.update(kinds)
        seen.update(r.kind.value for r in prompt.graph.relations)
        reparsed = parse(prompt.text)  # the text says what the graph says
        assert sorted(r.kind.value for r in reparsed.relations) == sorted(r.kind.value for r in prompt.graph.relations)
    assert set(axes) <= set(seen), seen  # each chosen direction is used
    if "horizontal" in axes:
        assert seen["left_of"] + seen["right_of"] > 0 and seen["next_to"] + seen["between"] > 0


def test_all_axes_is_the_default_and_leaves_prompts_unchanged():
    from ml.spatial.generator import AXES

    for seed in range(40):
        kwargs = {"seed": seed, "n_objects": 2 + seed % 7, "n_relations": 1 + seed % 4}
        assert generate_prompt(**kwargs) == generate_prompt(**kwargs, axes=AXES)
        # The order the axes are given in does not matter.
        assert (generate_prompt(**kwargs, axes=("vertical", "horizontal"))
                == generate_prompt(**kwargs, axes=("horizontal", "vertical")))
    kinds = Counter(_axis(r) for p in sample(200) for r in p.graph.relations)
    assert min(kinds["horizontal"], kinds["depth"], kinds["vertical"]) > 20, kinds


@pytest.mark.parametrize("axes", [(), "horizontal", ("horizontal", "sideways"), None])
def test_bad_axes_are_named(axes):
    with pytest.raises(ValueError, match="axes must be a non-empty list drawn from horizontal, depth, vertical"):
        generate_prompt(seed=1, n_objects=2, n_relations=1, axes=axes)


def test_too_many_relations_for_the_chosen_axes_are_refused_by_count():
    assert max_relations(2, ("horizontal",)) == 3 < max_relations(2)
    with pytest.raises(ValueError, match="n_relations=4 is more than 3, .* 2 objects along depth"):
        generate_prompt(seed=1, n_objects=2, n_relations=4, axes=("depth",))
    # The most the count allows can be written.
    for seed in range(10):
        prompt = generate_prompt(seed=seed, n_objects=2, n_relations=3, axes=("depth",))
        assert len(prompt.graph.relations) == 3 and {_axis(r) for r in prompt.graph.relations} == {"depth"}


def test_plain_prompts_are_one_sentence_at_their_simplest_and_other_styles_are_unchanged():
    plain = [generate_prompt(seed=seed, n_objects=2 + seed % 4, n_relations=1 + seed % 4, style="plain",
                             colours="every" if seed % 2 else "some") for seed in range(120)]
    for prompt in plain:
        assert prompt.style == "plain" and prompt.text.count(".") == 1 and prompt.text.endswith(".")
        assert not prompt.text.startswith(("In ", "At "))  # no scene opener
        for obj in prompt.graph.objects:
            assert obj.count == 1 and set(obj.attributes) <= set(lx.COLOURS)
        for rel in prompt.graph.relations:  # each relation in its kind's first phrase
            phrase = prompt.text[rel.span.start:rel.span.end]
            if rel.kind in lx.BINARY_PHRASES:
                assert phrase == lx.BINARY_PHRASES[rel.kind][0]
        assert parse(prompt.text).same_scene(prompt.graph), prompt.text
    assert sum(any(o.attributes for o in p.graph.objects) for p in plain) > 60  # colour words are kept
    two = [generate_prompt(seed=seed, n_objects=2, n_relations=1, style="plain", colours="every",
                           category="kitchen", axes=("horizontal",)).text for seed in range(200)]
    shape = re.compile(r"An? \w+ [\w ]+ is (to the left of|to the right of|next to) an? \w+ [\w ]+\.")
    assert all(shape.fullmatch(text) for text in two), [t for t in two if not shape.fullmatch(t)][:3]
    assert len(set(two)) > 150
    # short prompts keep their openers, phrasings, counts and size words
    short = [generate_prompt(seed=seed, n_objects=3, n_relations=2, style="short") for seed in range(120)]
    assert any(p.text.startswith(("In ", "At ")) for p in short)
    assert any(o.count > 1 for p in short for o in p.graph.objects)


def test_prompt_records_its_arguments():
    prompt = generate_prompt(seed=3, n_objects=4, n_relations=5, category="kitchen", style="short")
    assert (prompt.category, prompt.style, prompt.seed) == ("kitchen", "short", 3)
    assert prompt.graph.text == prompt.text
    names = {o.name for o in prompt.graph.objects}
    assert names <= {singular for singular, _ in lx.SCENES["kitchen"]}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"n_objects": 1}, "n_objects"),
    ({"n_objects": 13}, "n_objects"),
    ({"n_objects": "4"}, "n_objects"),
    ({"n_relations": 0}, "n_relations"),
    ({"n_relations": 12}, "n_relations"),
    ({"n_objects": 2, "n_relations": 6}, "n_relations=6 is more than 5"),
    ({"category": "moon"}, "category"),
    ({"style": "medium"}, "style"),
    ({"seed": "1"}, "seed"),
    ({"seed": 1.5}, "seed"),
])
def test_bad_arguments_raise_clear_value_errors(kwargs, field):
    arguments = {"seed": 1, **kwargs}
    with pytest.raises(ValueError, match=field):
        generate_prompt(**arguments)


def test_more_relations_than_possible_is_refused_and_the_limit_is_reachable():
    assert max_relations(2) == 5 and max_relations(3) == 11 and max_relations(12) == 11
    for seed in range(30):
        assert len(generate_prompt(seed=seed, n_objects=2, n_relations=5).graph.relations) == 5
    with pytest.raises(ValueError, match="n_relations"):
        generate_prompt(seed=0, n_objects=2, n_relations=6)


@settings(max_examples=150, deadline=None)
@given(seed=seeds, size=sizes, category=categories, style=styles)
def test_graph_matches_the_request_and_carries_exact_spans(seed, size, category, style):
    n_objects, n_relations = size
    prompt = feasible_prompt(seed=seed, n_objects=n_objects, n_relations=n_relations, category=category,
                             style=style)
    graph, text = prompt.graph, prompt.text
    assert len(graph.objects) == n_objects
    assert len(graph.relations) == n_relations
    assert len({o.key for o in graph.objects}) == n_objects  # distinct keys
    assert [o.id for o in graph.objects] == [f"o{i + 1}" for i in range(n_objects)]
    assert [o.mentions[0].start for o in graph.objects] == sorted(o.mentions[0].start for o in graph.objects)
    plural = {s: p for pairs in lx.SCENES.values() for s, p in pairs}
    numbers = {v: k for k, v in lx.NUMBERS.items() if " " not in k}
    for obj in graph.objects:
        head = obj.name if obj.count == 1 else plural[obj.name]
        for mention in obj.mentions:
            words = mention.text(text).lower().split()
            assert " ".join(words).endswith(head)
            assert words[0] in ("a", "an", "the", numbers.get(obj.count))
            assert sorted(w for w in words[:-len(head.split())] if w not in ("a", "an", "the", numbers.get(
                obj.count))) == sorted(obj.attributes)
    # every object takes part in a relation, and the relation phrases are the lexicon's
    members = {r.subject for r in graph.relations} | {a for r in graph.relations for a in r.anchors}
    assert members - {None} == {o.id for o in graph.objects}
    for relation in graph.relations:
        phrase = relation.span.text(text).lower()
        if relation.kind in lx.BINARY_PHRASES:
            assert phrase in lx.BINARY_PHRASES[relation.kind]
        elif relation.kind == RelationKind.BETWEEN:
            assert phrase in lx.BETWEEN_PHRASES
        elif relation.kind == RelationKind.IN_MIDDLE:
            assert phrase in lx.MIDDLE_PHRASES
        elif relation.kind == RelationKind.ALIGNED:
            assert phrase in {t.format(edge=relation.param) for t in lx.ALIGNED_TEMPLATES}
        elif relation.kind == RelationKind.EXTREME:
            assert phrase in lx.EXTREME_WORDS[relation.param]
        else:
            assert any(p in phrase for p in lx.SEQUENCE_PHRASES[relation.param])
            inside = [o for o in graph.objects if any(relation.span.start <= m.start and m.end <= relation.span.end
                                                      for m in o.mentions)]
            assert {o.id for o in inside} == set(relation.anchors)
    words = len(text.split())
    if style == "long":
        assert LONG_WORDS[0] <= words <= LONG_WORDS[1]
    else:
        assert text.endswith(".") and text.count(".") == 1  # one sentence
    assert text[0].isupper()


def test_relations_are_true_in_one_layout_so_never_contradict():
    from ml.spatial.perturb import _facts  # pairwise order facts: ("x", a, b) = a left of b

    for prompt in sample(200):
        graph = prompt.graph
        facts = {f for r in graph.relations for f in _facts(graph.canonical_relation(r))}
        assert not {(axis, b, a) for axis, a, b in facts} & facts, prompt.text
        canonical = [graph.canonical_relation(r) for r in graph.relations]
        assert len(set(canonical)) == len(canonical)


def test_text_uses_varied_phrasing():
    prompts = sample(400, style="long") + sample(200, style="short")
    variants: Counter = Counter()
    for prompt in prompts:
        for relation in prompt.graph.relations:
            variants[(relation.kind, relation.span.text(prompt.text).lower().split(":")[0])] += 1
    kinds = {kind for kind, _ in variants}
    assert kinds == set(RelationKind)
    for kind, phrases in lx.BINARY_PHRASES.items():
        assert {p for k, p in variants if k == kind} == set(phrases), kind
    texts = " ".join(p.text for p in prompts)
    assert any(text.startswith(("In a", "At a")) for text in (p.text for p in prompts))
    assert " in a row from " in texts and ": " in texts
    assert any(filler in texts for filler in FILLERS)
    objects = [o for p in prompts for o in p.graph.objects]
    assert any(o.count > 1 for o in objects) and any(o.attributes for o in objects)
    assert any(len(o.attributes) == 2 for o in objects)
    # two objects of one kind told apart by colour
    assert any(len({o.name for o in p.graph.objects}) < len(p.graph.objects) for p in prompts)


def test_fillers_and_openers_carry_no_spatial_or_object_words():
    spatial = {w for phrases in lx.BINARY_PHRASES.values() for p in phrases for w in p.split()}
    spatial -= {"the", "of", "to", "in", "side"}
    spatial |= {"left", "right", "between", "middle", "center", "centre", "centered", "aligned", "edge", "row",
                "top", "bottom", "front", "back", "corner", "near", "across", "background", "foreground",
                *(w for ws in lx.EXTREME_WORDS.values() for w in ws)}
    nouns = {w for pairs in lx.SCENES.values() for pair in pairs for n in pair for w in n.split()}
    banned = spatial | nouns | {*lx.COLOURS, *lx.MATERIALS, *lx.SIZES, *lx.NUMBERS, "a", "an", "the"}
    for filler in FILLERS:
        words = set(re.findall(r"[a-z]+", filler.lower()))
        assert not words & banned, filler
    for preposition, adjectives in OPENERS.values():
        assert not set(adjectives) & banned
        assert preposition.lower() not in spatial


def test_indefinite_article():
    assert [indefinite_article(w) for w in ("apple", "umbrella", "mug", "orange", "one", "unicorn", "euro")] == [
        "an", "an", "a", "an", "a", "a", "a"]
    for prompt in sample(100):
        assert not re.search(r"\ba [aeio]", prompt.text.lower()), prompt.text
        assert not re.search(r"\ban [^aeiou]", prompt.text.lower()), prompt.text


def test_generate_prompts_is_a_deterministic_stream():
    first = list(generate_prompts(seed=5, count=6, n_objects=4, n_relations=4, style="short"))
    again = list(generate_prompts(seed=5, count=6, n_objects=4, n_relations=4, style="short"))
    assert first == again and len(first) == 6
    assert len({p.text for p in first}) == 6
    assert list(generate_prompts(seed=6, count=6, n_objects=4, n_relations=4))[0].text != first[0].text
    # each prompt can be regenerated alone from its own seed
    assert generate_prompt(seed=first[3].seed, n_objects=4, n_relations=4, style="short") == first[3]
    assert len({p.category for p in generate_prompts(seed=1, count=40)}) > 4
    with pytest.raises(ValueError, match="count"):
        list(generate_prompts(seed=1, count=-1))


def test_long_prompts_are_about_sixty_words_on_average():
    words = [len(p.text.split()) for p in sample(300, style="long")]
    assert 50 <= sum(words) / len(words) <= 90
    assert min(words) >= 40 and max(words) <= 120


# --- against the parser -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(seed=seeds, size=sizes, category=categories, style=styles)
def test_parse_gives_back_the_graph_the_text_was_written_from(seed, size, category, style):
    prompt = feasible_prompt(seed=seed, n_objects=size[0], n_relations=size[1], category=category, style=style)
    parsed = parse(prompt.text)
    assert parsed.same_scene(prompt.graph), (prompt.text, prompt.graph.diff(parsed))


def test_parsed_mentions_and_relations_agree_with_the_generated_spans():
    for prompt in sample(120) + sample(60, style="short"):
        parsed = parse(prompt.text)
        assert parsed.same_scene(prompt.graph), (prompt.text, prompt.graph.diff(parsed))
        by_key = {o.key: o for o in parsed.objects}
        for obj in prompt.graph.objects:
            # Each parsed mention lies inside a written one (the parser may leave the article out).
            parsed_mentions = by_key[obj.key].mentions
            assert len(parsed_mentions) == len(obj.mentions), (prompt.text, obj.key)
            for written, read in zip(obj.mentions, parsed_mentions, strict=True):
                assert written.start <= read.start < read.end == written.end, (prompt.text, obj.key)
