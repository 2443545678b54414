"""The prompt management commands: generate_prompts (JSONL to stdout, or a stored prompt set) and perturb_prompts
(file or stdin in, JSONL out). Output is deterministic for a seed; problems go to stderr, never into the JSONL."""

import io
import json
import sys

import pytest
from django.core.management import CommandError, call_command

from ml.spatial.lexicon import COLOURS
from ml.spatial.parser import parse
from spatiallab.prompts.models import PerturbationRule, Prompt, PromptSet

pytestmark = pytest.mark.django_db

MUG = "A red mug is to the left of a kettle."
LAMP = "A lamp is above a table. A cat is under the table."
PLANT = "A plant is behind a sofa. A rug is in front of the sofa. A lamp is next to the sofa."
NO_RELATION = "A quiet and sunny morning."
EDIT_KEYS = {"position", "rule", "rule_name", "rule_kind", "relation_kind", "relation_before", "relation_after",
             "span_before", "span_after", "text_before", "text_after"}


def run(*args, stdin: str | None = None, monkeypatch=None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def jsonl(text: str) -> list[dict]:
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


# --- generate_prompts -----------------------------------------------------------------------------------


def test_generate_writes_jsonl_text_and_category():
    out, err = run("generate_prompts", "--count", "5", "--seed", "3")
    rows = jsonl(out)
    assert len(rows) == 5
    assert all(set(row) == {"text", "category"} for row in rows)
    assert all(isinstance(row["text"], str) and row["text"] for row in rows)
    assert err == ""
    assert not PromptSet.objects.exists()


def test_generate_is_deterministic_for_a_seed():
    args = ("generate_prompts", "--count", "4", "--min-relations", "2", "--max-relations", "5")
    first, _ = run(*args, "--seed", "9")
    again, _ = run(*args, "--seed", "9")
    other, _ = run(*args, "--seed", "10")
    assert first == again
    assert first != other


def test_generate_honours_sizes_category_and_style():
    out, _ = run("generate_prompts", "--count", "6", "--seed", "1", "--min-objects", "3", "--max-objects", "4",
                 "--min-relations", "2", "--max-relations", "3", "--category", "kitchen,garden", "--style", "short")
    rows = jsonl(out)
    assert {row["category"] for row in rows} <= {"kitchen", "garden"}
    for row in rows:
        stats = parse(row["text"]).stats()
        assert 3 <= stats["objects"] <= 4, row
        assert 2 <= stats["relations"] <= 3, row
    out, _ = run("generate_prompts", "--count", "2", "--category", "beach", "--category", "street")
    assert {row["category"] for row in jsonl(out)} <= {"beach", "street"}
    out, _ = run("generate_prompts", "--count", "4", "--seed", "2", "--min-objects", "2", "--max-objects", "3",
                 "--min-relations", "1", "--max-relations", "2", "--colours", "every")
    for row in jsonl(out):
        objects = parse(row["text"]).objects
        assert all(len(set(o.attributes) & set(COLOURS)) == 1 for o in objects), row
    out, _ = run("generate_prompts", "--count", "6", "--seed", "2", "--min-objects", "2", "--max-objects", "3",
                 "--min-relations", "1", "--max-relations", "2", "--axes", "depth")
    for row in jsonl(out):
        kinds = {r.kind.value for r in parse(row["text"]).relations}
        assert kinds and kinds <= {"in_front_of", "behind", "aligned", "sequence", "extreme"}, row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "0"], "count: must be between 1 and 100000."),
        (["--count", "2", "--min-objects", "5", "--max-objects", "3"],
         "max_objects: objects must satisfy 2 <= min <= max <= 12."),
        (["--count", "2", "--min-relations", "0"], "max_relations: relations must satisfy 1 <= min <= max <= 11."),
        (["--count", "2", "--category", "moon"], "categories: unknown: moon; known: "),
    ],
    ids=["count", "objects", "relations", "category"],
)
def test_generate_refuses_bad_settings(args, message):
    with pytest.raises(CommandError) as error:
        run("generate_prompts", *args)
    assert str(error.value).startswith(message)
    assert not PromptSet.objects.exists()


def test_generate_save_stores_a_prompt_set():
    printed, _ = run("generate_prompts", "--count", "5", "--seed", "3")
    out, _ = run("generate_prompts", "--count", "5", "--seed", "3", "--save", "Generated", "--description", "cli")
    prompt_set = PromptSet.objects.get()
    assert (prompt_set.name, prompt_set.description, prompt_set.source) == ("Generated", "cli", "generator")
    assert prompt_set.source_info["generator"]["seed"] == 3
    created = prompt_set.prompts.count()
    duplicates = prompt_set.source_info["duplicates_skipped"]
    assert created + duplicates == 5
    assert out == (f"Saved prompt set 'Generated' (id {prompt_set.pk}): {created} prompts, {duplicates} duplicates "
                   "skipped.\n")
    # The stored prompts are the printed ones, in order, with their parsed graphs.
    printed_texts = list(dict.fromkeys(row["text"] for row in jsonl(printed)))
    assert list(prompt_set.prompts.order_by("position").values_list("text", flat=True)) == printed_texts
    assert all(p.relation_count >= 2 for p in Prompt.objects.all())


def test_generate_save_refuses_a_taken_name():
    PromptSet.objects.create(name="Taken")
    with pytest.raises(CommandError, match="name: A prompt set named 'Taken' already exists."):
        run("generate_prompts", "--count", "2", "--save", "Taken")
    assert PromptSet.objects.count() == 1


# --- perturb_prompts ------------------------------------------------------------------------------------


@pytest.fixture
def prompts_txt(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text(f"{MUG}\n{NO_RELATION}\n\n{LAMP}\n{PLANT}\n")
    return path


def test_perturb_writes_one_json_line_per_perturbed_prompt(prompts_txt):
    out, err = run("perturb_prompts", str(prompts_txt), "--seed", "4")
    rows = jsonl(out)
    assert [row["prompt"] for row in rows] == [MUG, LAMP, PLANT]
    names = set(PerturbationRule.objects.values_list("name", flat=True))
    for row in rows:
        assert set(row) == {"prompt", "perturbed", "edits", "rule"}
        assert row["perturbed"] != row["prompt"]
        assert not parse(row["perturbed"]).same_scene(parse(row["prompt"]))
        [edit] = row["edits"]
        assert set(edit) == EDIT_KEYS
        assert row["rule"] == edit["rule_name"] and row["rule"] in names
        assert edit["text_before"] == row["prompt"][slice(*edit["span_before"])]
        assert edit["text_after"] == row["perturbed"][slice(*edit["span_after"])]
    # The prompt without a relation is reported by line, and the others still came out.
    lines = err.splitlines()
    assert lines[0].startswith("line 2: cannot perturb: ")
    assert lines[-1] == "Perturbed 3 of 4 prompts; 1 could not be perturbed."
    assert len(lines) == 2


def test_perturb_is_deterministic_for_a_seed(prompts_txt):
    first, _ = run("perturb_prompts", str(prompts_txt), "--seed", "4", "--edits", "2-3")
    again, _ = run("perturb_prompts", str(prompts_txt), "--seed", "4", "--edits", "2-3")
    assert first == again
    others = {run("perturb_prompts", str(prompts_txt), "--seed", str(seed), "--edits", "2-3")[0]
              for seed in range(5, 9)}
    assert len(others | {first}) > 1


@pytest.mark.parametrize(("edits", "counts"), [("1", {1}), ("2", {2}), ("3", {3}), ("2-3", {2, 3})])
def test_perturb_edit_counts(edits, counts, tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(f"{PLANT} {LAMP}\n{LAMP} {PLANT} {MUG}\n")
    out, err = run("perturb_prompts", str(path), "--edits", edits, "--seed", "2")
    rows = jsonl(out)
    assert len(rows) == 2, err
    assert {len(row["edits"]) for row in rows} <= counts


def test_perturb_reads_jsonl_and_stdin(tmp_path, monkeypatch):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"text": MUG}) + "\n" + json.dumps({"prompt": LAMP, "category": "x"}) + "\n")
    from_file, _ = run("perturb_prompts", str(path), "--seed", "1")
    assert [row["prompt"] for row in jsonl(from_file)] == [MUG, LAMP]

    from_stdin_jsonl, _ = run("perturb_prompts", "-", "--seed", "1", stdin=path.read_text(), monkeypatch=monkeypatch)
    from_stdin_text, _ = run("perturb_prompts", "-", "--seed", "1", stdin=f"{MUG}\n{LAMP}\n", monkeypatch=monkeypatch)
    assert from_stdin_jsonl == from_stdin_text == from_file


def test_perturb_uses_only_the_named_rules(prompts_txt):
    out, _ = run("perturb_prompts", str(prompts_txt), "--rules", "Flip direction", "--seed", "3")
    rows = jsonl(out)
    assert rows and all(row["rule"] == "Flip direction" for row in rows)
    assert all(edit["rule_kind"] == "flip_direction" for row in rows for edit in row["edits"])
    out, _ = run("perturb_prompts", str(prompts_txt), "--rules", "Flip direction,Swap objects", "--rules",
                 "Move anchor", "--edits", "3", "--seed", "3")
    used = {name for row in jsonl(out) for name in row["rule"].split(" + ")}
    assert used <= {"Flip direction", "Swap objects", "Move anchor"}


def test_perturb_names_several_rules_in_edit_order(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text(f"{PLANT} {LAMP}\n")
    out, _ = run("perturb_prompts", str(path), "--rules", "Flip direction,Swap objects", "--edits", "3", "--seed",
                 "0")
    [row] = jsonl(out)
    assert row["rule"] == " + ".join(dict.fromkeys(edit["rule_name"] for edit in row["edits"]))


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--rules", "Teleport"], "Unknown rules: Teleport. Known rules: "),
        ("disable", ["--rules", "Swap objects"], "rules: Disabled rules: Swap objects."),
        ("disable-all", [], "rules: No perturbation rule is enabled."),
    ],
    ids=["unknown-rule", "disabled-rule", "none-enabled"],
)
def test_perturb_refuses_bad_rules(setup, args, message, prompts_txt):
    if setup == "disable":
        PerturbationRule.objects.filter(name="Swap objects").update(enabled=False)
    elif setup == "disable-all":
        PerturbationRule.objects.update(enabled=False)
    with pytest.raises(CommandError) as error:
        run("perturb_prompts", str(prompts_txt), *args)
    assert str(error.value).startswith(message)


def test_perturb_refuses_bad_input_naming_the_lines(tmp_path, monkeypatch):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"text": MUG}) + '\n{"text": \n{"other": 1}\n')
    with pytest.raises(CommandError) as error:
        run("perturb_prompts", str(path))
    assert str(error.value) == (f"{path}: line 2: not valid JSON: Expecting value (column 10); "
                                'line 3: missing field "text" (or "prompt")')
    with pytest.raises(CommandError, match=r"Cannot read .*missing.txt: No such file or directory\."):
        run("perturb_prompts", str(tmp_path / "missing.txt"))
    with pytest.raises(CommandError, match="the file holds no prompts"):
        run("perturb_prompts", "-", stdin="\n\n", monkeypatch=monkeypatch)


def test_perturb_refuses_an_unknown_edit_count(prompts_txt):
    with pytest.raises(CommandError, match="argument --edits: invalid choice: '4'"):
        run("perturb_prompts", str(prompts_txt), "--edits", "4")


def test_no_progress_bar_when_stderr_is_not_a_terminal(prompts_txt, capsys):
    run("perturb_prompts", str(prompts_txt))
    run("generate_prompts", "--count", "3")
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
