"""The pure parts of dataset versions (issue 6, first piece): split assignment by perfect prompt, the canonical
entry encoding and content hash, and the diff of two versions, each against an independent computation."""

import hashlib
import json
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spatiallab.datasets.canonical import (
    DEFAULT_RATIOS,
    SPLITS,
    canonical_line,
    check_ratios,
    content_hash,
    diff_entries,
    split_for,
)


@pytest.mark.parametrize(("ratios", "message"), [
    ({"train": 0.8, "validation": 0.1}, "add up to 1"),
    ({"train": 1.2, "validation": -0.1, "test": -0.1}, "not negative"),
    ({"train": 0.5, "dev": 0.5}, "unknown splits"),
    ({"train": float("nan"), "test": 1.0}, "finite"),
])
def test_bad_ratios_say_what_is_wrong(ratios, message):
    with pytest.raises(ValueError, match=message):
        check_ratios(ratios)


def test_ratios_fill_in_missing_splits():
    assert check_ratios({"train": 0.9, "test": 0.1}) == {"train": 0.9, "validation": 0.0, "test": 0.1}


def test_splits_follow_the_ratios_and_never_a_zero_share():
    rng = random.Random(4)
    texts = [f"a {rng.random()} mug left of a laptop" for _ in range(20_000)]
    ratios = check_ratios({"train": 0.7, "validation": 0.0, "test": 0.3})
    counts = {split: 0 for split in SPLITS}
    for text in texts:
        counts[split_for(text, ratios)] += 1
    assert counts["validation"] == 0
    n = len(texts)
    sigma = math.sqrt(n * 0.7 * 0.3)
    assert abs(counts["train"] - 0.7 * n) < 5 * sigma  # binomial, five standard deviations


def test_a_prompts_pairs_share_one_split_and_the_salt_reshuffles():
    prompts = [f"prompt {i}: a red cube on top of a blue box" for i in range(200)]
    pairs = [(prompt, seed, edit) for prompt in prompts for seed in range(4) for edit in range(3)]
    split_of_pair = {pair: split_for(pair[0], DEFAULT_RATIOS) for pair in pairs}
    for prompt in prompts:
        assert len({split_of_pair[p] for p in pairs if p[0] == prompt}) == 1  # nothing leaks across splits
    assert [split_for(p, DEFAULT_RATIOS) for p in prompts] == [split_for(p, DEFAULT_RATIOS) for p in prompts]
    salted = [split_for(p, DEFAULT_RATIOS, salt="v2") for p in prompts]
    assert salted != [split_for(p, DEFAULT_RATIOS) for p in prompts]


@given(st.text(), st.floats(0.0, 1.0))
def test_every_prompt_gets_a_split_with_a_share(text, train):
    ratios = check_ratios({"train": train, "test": 1.0 - train})
    assert ratios[split_for(text, ratios)] > 0


def test_canonical_lines_ignore_key_order_and_keep_unicode():
    a = canonical_line({"prompt": "ein Würfel links", "pair": 3, "edits": [{"b": 1, "a": 2}]})
    b = canonical_line({"edits": [{"a": 2, "b": 1}], "pair": 3, "prompt": "ein Würfel links"})
    assert a == b == '{"edits":[{"a":2,"b":1}],"pair":3,"prompt":"ein Würfel links"}'.encode()
    with pytest.raises(ValueError):
        canonical_line({"score": float("nan")})


def test_content_hash_equals_an_independent_sha256_and_streams():
    entries = [{"pair": i, "split": split_for(str(i), DEFAULT_RATIOS), "label": i % 3 == 0} for i in range(1000)]
    independent = hashlib.sha256(
        "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in entries).encode()).hexdigest()
    assert content_hash(entries) == independent
    assert content_hash(entry for entry in entries) == independent  # a generator: constant memory
    changed = [dict(e) for e in entries]
    changed[500]["label"] = not changed[500]["label"]
    assert content_hash(changed) != independent
    assert content_hash(reversed(entries)) != independent  # order is part of the content
    assert content_hash([]) == hashlib.sha256(b"").hexdigest()


entry_lists = st.dictionaries(st.integers(1, 200), st.sampled_from(["verified", "rejected"]), max_size=60)


@given(entry_lists, entry_lists)
def test_diff_equals_a_set_computation(old, new):
    diff = diff_entries(sorted(old.items()), sorted(new.items()))
    assert diff.added == sorted(set(new) - set(old))
    assert diff.removed == sorted(set(old) - set(new))
    assert diff.relabelled == [(p, old[p], new[p]) for p in sorted(set(old) & set(new)) if old[p] != new[p]]
    assert diff.unchanged == (old == new)


def test_diff_refuses_unsorted_streams():
    with pytest.raises(ValueError, match="increasing pair id order"):
        diff_entries([(2, "a"), (1, "a")], [])
