"""The prompt endpoints of /api/v1/: prompt sets (upload, JSON, generator), prompts with their parsed graphs,
perturbation rules, perturbed prompts with their edits, and the synchronous perturbation of posted text.

Bad input gets a 400 naming the field, or every bad line of an upload by number, and stores nothing.
"""

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from ml.spatial.lexicon import COLOURS
from ml.spatial.parser import parse
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule, PerturbedPrompt, Prompt, PromptSet
from spatiallab.prompts.services import prompt_set_create
from tests.factories import token_client

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
SETS = "/api/v1/prompt-sets/"
PROMPTS = "/api/v1/prompts/"
RULES = "/api/v1/perturbation-rules/"
PERTURBED = "/api/v1/perturbed-prompts/"
PERTURB = "/api/v1/perturb/"

# Phrases straight from ml.spatial.lexicon, one relation per clause, so the parser reads every one of them.
MUG = "A red mug is to the left of a kettle."
LAMP = "A lamp is above a table. A cat is under the table."
PLANT = "A plant is behind a sofa. A rug is in front of the sofa. A lamp is next to the sofa."
NO_RELATION = "A quiet and sunny morning."


def upload(api, filename: str, content: str | bytes, name: str = "Upload", **fields):
    data = content.encode() if isinstance(content, str) else content
    payload = {"name": name, "file": SimpleUploadedFile(filename, data), **fields}
    return api.post(SETS, payload, format="multipart")


def stored_counts() -> tuple[int, int]:
    return PromptSet.objects.count(), Prompt.objects.count()


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- Creating prompt sets by upload ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content", "categories", "lines"),
    [
        ("prompts.jsonl",
         json.dumps({"text": MUG, "category": "kitchen"}) + "\n\n" + json.dumps({"prompt": LAMP}) + "\n",
         ["kitchen", ""], [1, 3]),
        ("prompts.csv", f'category,text\nkitchen,{MUG}\n,"{LAMP}"\n', ["kitchen", ""], [2, 3]),
        ("prompts.txt", f"{MUG}\n\n   \n{LAMP}\n", ["", ""], [1, 4]),
    ],
    ids=["jsonl", "csv", "txt"],
)
def test_upload_each_format_stores_the_prompts_with_their_lines(filename, content, categories, lines, api,
                                                                researcher):
    response = upload(api, filename, content, name="Kitchen", description="two prompts")
    assert response.status_code == 201, response.content
    body = response.json()
    prompt_set = PromptSet.objects.get()
    assert {k: body[k] for k in ("id", "name", "description", "source", "prompt_count", "created", "duplicates",
                                 "created_by")} == {
        "id": prompt_set.pk, "name": "Kitchen", "description": "two prompts", "source": f"upload: {filename}",
        "prompt_count": 2, "created": 2, "duplicates": 0, "created_by": "res",
    }
    assert body["source_info"] == {"filename": filename, "lines": 2, "prompts": 2, "duplicates_skipped": 0}
    assert prompt_set.created_by == researcher
    rows = list(prompt_set.prompts.order_by("position").values_list("position", "text", "category", "source_line"))
    assert rows == [(0, MUG, categories[0], lines[0]), (1, LAMP, categories[1], lines[1])]


def test_upload_format_field_overrides_the_extension(api):
    response = upload(api, "prompts.data", f"{MUG}\n{LAMP}\n", format="txt")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == 2


def test_upload_counts_and_skips_duplicates_by_normalised_text(api):
    content = f"{MUG}\n{LAMP}\n  {MUG.upper()}  \n{MUG.replace(' ', '   ')}\n{PLANT}\n"
    response = upload(api, "prompts.txt", content)
    assert response.status_code == 201, response.content
    assert (response.json()["created"], response.json()["duplicates"], response.json()["prompt_count"]) == (3, 2, 3)
    prompt_set = PromptSet.objects.get()
    assert list(prompt_set.prompts.values_list("text", flat=True)) == [MUG, LAMP, PLANT]
    assert prompt_set.source_info["duplicates_skipped"] == 2


@pytest.mark.parametrize(
    ("filename", "content", "errors"),
    [
        ("p.jsonl",
         f'{json.dumps({"text": MUG})}\n{{"text": }}\n[1, 2]\n{{"category": "kitchen"}}\n{{"text": 5}}\n'
         f'{{"text": "   "}}\n{{"text": "{MUG}", "category": 3}}\n',
         ["line 2: not valid JSON: Expecting value (column 10)",
          'line 3: each line must be a JSON object such as {"text": "..."}',
          'line 4: missing field "text" (or "prompt")',
          "line 5: the prompt must be a string, not int",
          "line 6: the prompt is empty",
          'line 7: field "category" must be a string']),
        ("p.csv", f"text,category\n{MUG},kitchen\nonly one column\n{LAMP},a,b\n",
         ["line 3: expected 2 columns, found 1", "line 4: expected 2 columns, found 3"]),
        ("p.csv", f"prompt_text,category\n{MUG},kitchen\n", ['line 1: the header needs a "text" (or "prompt") column']),
        ("p.txt", f"{MUG}\n{'x' * 4001}\n{LAMP}\n", ["line 2: the prompt has 4001 characters; the limit is 4000"]),
        ("p.txt", MUG.encode() + b"\n" + LAMP.encode() + b"\n\xff\xfe bad\n", ["line 3: the file is not UTF-8 text"]),
        ("p.txt", "\n  \n", ["the file holds no prompts"]),
        ("p.pdf", MUG, ["unknown file type '.pdf': use .jsonl, .csv or .txt"]),
        # PostgreSQL stores no NUL in text: refused by line, not a 500 on insert.
        ("p.txt", f"{MUG}\n{LAMP}\x00\n", ["line 2: the prompt contains a NUL character"]),
        ("p.jsonl", json.dumps({"text": MUG, "category": "a\x00"}) + "\n",
         ['line 1: field "category" contains a NUL character']),
        ("p.csv", f"text,category\n{MUG},a\x00\n", ['line 2: column "category" contains a NUL character']),
    ],
    ids=["jsonl-every-kind", "csv-columns", "csv-header", "txt-too-long", "not-utf8", "empty", "unknown-type",
         "txt-nul", "jsonl-category-nul", "csv-category-nul"],
)
def test_bad_upload_reports_every_bad_line_by_number_and_stores_nothing(filename, content, errors, api):
    PromptSet.objects.create(name="Existing")
    before = stored_counts()
    response = upload(api, filename, content)
    assert response.status_code == 400
    assert response.json() == {"file": errors}
    assert stored_counts() == before


def test_upload_reports_at_most_fifty_problems_and_how_many_more(api):
    content = "\n".join(["{bad"] * 60)
    response = upload(api, "p.jsonl", content)
    assert response.status_code == 400
    messages = response.json()["file"]
    assert len(messages) == 51
    assert messages[0].startswith("line 1: not valid JSON") and messages[49].startswith("line 50: ")
    assert messages[50] == "... and 10 more problems"
    assert stored_counts() == (0, 0)


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"name": "New"}, {"file": ["No file was submitted."]}),
        ({"name": "", "file": SimpleUploadedFile("p.txt", MUG.encode())}, {"name": ["This field may not be blank."]}),
        ({"name": "Existing", "file": SimpleUploadedFile("p.txt", MUG.encode())},
         {"name": ["A prompt set named 'Existing' already exists."]}),
        ({"name": "New", "file": SimpleUploadedFile("p.txt", MUG.encode()), "format": "pdf"},
         {"format": ['"pdf" is not a valid choice.']}),
    ],
    ids=["no-file", "blank-name", "taken-name", "unknown-format"],
)
def test_bad_upload_fields_get_400_naming_the_field(payload, errors, api):
    PromptSet.objects.create(name="Existing")
    before = stored_counts()
    response = api.post(SETS, payload, format="multipart")
    assert response.status_code == 400
    assert response.json() == errors
    assert stored_counts() == before


# --- Creating prompt sets from JSON and the generator ---------------------------------------------------


def test_create_from_a_json_list_of_texts_and_objects(api):
    payload = {"name": "Posted", "description": "from a script",
               "prompts": [MUG, {"text": LAMP, "category": "living room"}, {"prompt": f"  {MUG.lower()} "}]}
    response = api.post(SETS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["name"], body["source"], body["created"], body["duplicates"]) == ("Posted", "api", 2, 1)
    assert body["source_info"] == {"prompts_posted": 3, "prompts": 2, "duplicates_skipped": 1}
    rows = list(Prompt.objects.values_list("text", "category", "source_line"))
    assert rows == [(MUG, "", 1), (LAMP, "living room", 2)]


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"name": "X", "prompts": [MUG, " ", 7, {"category": "kitchen"}, {"text": MUG, "category": 1}, "y" * 4001]},
         {"prompts": ["prompt 2: the prompt is empty", "prompt 3: the prompt must be a string, not int",
                      'prompt 4: missing field "text" (or "prompt")', 'prompt 5: field "category" must be a string',
                      "prompt 6: the prompt has 4001 characters; the limit is 4000"]}),
        ({"name": "X", "prompts": []}, {"prompts": ["This list may not be empty."]}),
        ({"name": "X", "prompts": MUG}, {"prompts": ['Expected a list of items but got type "str".']}),
        ({"prompts": [MUG]}, {"name": ["This field is required."]}),
        ({"name": "X", "prompts": [MUG + "\x00", {"text": MUG, "category": "a\x00"}]},
         {"prompts": ["prompt 1: the prompt contains a NUL character",
                      'prompt 2: field "category" contains a NUL character']}),
    ],
    ids=["bad-items", "empty", "not-a-list", "no-name", "nul"],
)
def test_bad_json_create_gets_400_naming_the_field_and_stores_nothing(payload, errors, api):
    response = api.post(SETS, payload, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert stored_counts() == (0, 0)


def test_generate_creates_a_deterministic_prompt_set(api):
    settings = {"count": 6, "seed": 11, "min_objects": 3, "max_objects": 5, "min_relations": 2, "max_relations": 4,
                "categories": ["kitchen", "garden"], "style": "short"}
    first = api.post(f"{SETS}generate/", {"name": "Gen A", **settings}, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["source"], body["created"] + body["duplicates"]) == ("generator", 6)
    assert body["source_info"]["generator"] == {**settings, "colours": "some",  # the defaults, recorded
                                                "axes": ["horizontal", "depth", "vertical"]}
    second = api.post(f"{SETS}generate/", {"name": "Gen B", **settings}, format="json")
    assert second.status_code == 201

    texts_a = list(Prompt.objects.filter(prompt_set_id=body["id"]).values_list("text", "category"))
    texts_b = list(Prompt.objects.filter(prompt_set_id=second.json()["id"]).values_list("text", "category"))
    assert texts_a == texts_b
    assert {category for _, category in texts_a} <= {"kitchen", "garden"}
    for prompt in Prompt.objects.filter(prompt_set_id=body["id"]):
        assert 2 <= prompt.relation_count <= 4, prompt.text
        assert 3 <= prompt.object_count <= 5, prompt.text


# Small scenes with a colour word for every object, for the generate tests below.
COLOURED = {"min_objects": 2, "max_objects": 3, "min_relations": 1, "max_relations": 2, "colours": "every"}


def _generate(api, name: str, **settings) -> tuple[dict, list[str]]:
    """POST a generate request that must succeed; the new set's body and its prompts' texts."""
    response = api.post(f"{SETS}generate/", {"name": name, **settings}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    return body, list(Prompt.objects.filter(prompt_set_id=body["id"]).values_list("text", flat=True))


def test_generate_can_give_every_object_a_colour_and_names_a_bad_choice(api):
    settings = {**COLOURED, "count": 4, "seed": 5, "style": "short"}
    body, texts = _generate(api, "Coloured", **settings)
    assert body["source_info"]["generator"]["colours"] == "every"
    assert len(texts) == 4
    for text in texts:
        assert all(len(set(o.attributes) & set(COLOURS)) == 1 for o in parse(text).objects), text
    refused = api.post(f"{SETS}generate/", {"name": "Rainbow", **settings, "colours": "rainbow"}, format="json")
    assert refused.status_code == 400 and "colours" in refused.json(), refused.content


def test_generate_writes_plain_prompts_and_names_a_bad_style(api):
    settings = {**COLOURED, "count": 6, "seed": 3, "style": "plain"}
    body, texts = _generate(api, "Plain", **settings)
    assert body["source_info"]["generator"]["style"] == "plain"
    assert len(texts) == 6
    for text in texts:
        assert text.count(".") == 1 and not text.startswith(("In ", "At ")), text
        assert all(o.count == 1 and len(o.attributes) == 1 and o.attributes[0] in COLOURS
                   for o in parse(text).objects), text
    refused = api.post(f"{SETS}generate/", {"name": "Epic", **settings, "style": "epic"}, format="json")
    assert refused.status_code == 400 and "style" in refused.json(), refused.content
    assert not PromptSet.objects.filter(name="Epic").exists()


def test_generate_keeps_relations_to_the_chosen_axes_and_names_a_bad_one(api):
    from ml.spatial.parser import parse

    settings = {"count": 10, "seed": 5, "min_objects": 2, "max_objects": 3, "min_relations": 1, "max_relations": 2,
                "style": "short"}
    response = api.post(f"{SETS}generate/", {"name": "Stacked", **settings, "axes": ["vertical"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["source_info"]["generator"]["axes"] == ["vertical"]
    for text in Prompt.objects.filter(prompt_set_id=response.json()["id"]).values_list("text", flat=True):
        kinds = {r.kind.value for r in parse(text).relations}
        assert kinds and kinds <= {"above", "below", "on_top_of", "under", "aligned", "sequence", "extreme"}, text
    default = api.post(f"{SETS}generate/", {"name": "All", **settings}, format="json")
    assert default.json()["source_info"]["generator"]["axes"] == ["horizontal", "depth", "vertical"]
    for axes in (["sideways"], []):
        refused = api.post(f"{SETS}generate/", {"name": "Bad", **settings, "axes": axes}, format="json")
        assert refused.status_code == 400 and "axes" in refused.json(), refused.content


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"count": 0}, {"count": ["Ensure this value is greater than or equal to 1."]}),
        ({"count": 3, "min_objects": 6, "max_objects": 4},
         {"max_objects": ["objects must satisfy 2 <= min <= max <= 12."]}),
        ({"count": 3, "max_relations": 12}, {"max_relations": ["relations must satisfy 1 <= min <= max <= 11."]}),
        ({"count": 3, "categories": ["moon"]}, {"categories": {"0": ['"moon" is not a valid choice.']}}),
        ({"count": 3, "style": "medium"}, {"style": ['"medium" is not a valid choice.']}),
    ],
    ids=["count", "objects", "relations", "category", "style"],
)
def test_generate_with_bad_settings_gets_400_naming_the_field(fields, errors, api):
    response = api.post(f"{SETS}generate/", {"name": "Gen", **fields}, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert stored_counts() == (0, 0)


# --- Reading prompt sets and prompts --------------------------------------------------------------------


@pytest.fixture
def two_sets(researcher):
    kitchen = prompt_set_create(name="Kitchen", prompts=[MUG, LAMP, NO_RELATION], created_by=researcher,
                                source="demo").prompt_set
    living = prompt_set_create(name="Living", prompts=[PLANT, MUG], source="upload: living.txt").prompt_set
    Prompt.objects.filter(prompt_set=living, text=PLANT).update(category="living room")
    return kitchen, living


def test_prompt_set_list_and_detail(api, two_sets):
    kitchen, living = two_sets
    response = api.get(SETS)
    assert ids(response) == [living.pk, kitchen.pk]  # newest first
    rows = {row["name"]: row for row in response.json()["results"]}
    assert (rows["Kitchen"]["prompt_count"], rows["Kitchen"]["created_by"], rows["Kitchen"]["source"]) == (
        3, "res", "demo")
    assert (rows["Living"]["prompt_count"], rows["Living"]["created_by"]) == (2, None)
    assert rows["Living"]["source_info"] == {"prompts": 2, "duplicates_skipped": 0}
    detail = api.get(f"{SETS}{kitchen.pk}/")
    assert detail.status_code == 200
    assert detail.json() == rows["Kitchen"]
    assert (rows["Kitchen"]["perturbed_count"], rows["Living"]["perturbed_count"]) == (0, 0)
    add_perturbed(kitchen.prompts.get(text=MUG), "mug flipped", [(_rule("Flip direction"), "left_of")])
    assert api.get(f"{SETS}{kitchen.pk}/").json()["perturbed_count"] == 1
    assert ids(api.get(SETS + "?q=kitch")) == [kitchen.pk]
    assert ids(api.get(SETS + "?source=upload")) == [living.pk]
    assert api.get(f"{SETS}{living.pk + 100}/").status_code == 404


def test_each_prompt_stores_its_parsed_graph_and_stats(api, two_sets):
    for prompt in Prompt.objects.all():
        graph = parse(prompt.text)
        stats = graph.stats()
        assert prompt.graph == graph.to_dict()
        assert (prompt.object_count, prompt.relation_count, prompt.unparsed_count, prompt.relation_kinds,
                prompt.word_count) == (stats["objects"], stats["relations"], stats["unparsed"],
                                       stats["relation_kinds"], stats["words"])
    mug = Prompt.objects.get(text=MUG, prompt_set__name="Kitchen")
    assert (mug.object_count, mug.relation_count, mug.relation_kinds) == (2, 1, {"left_of": 1})
    lamp = Prompt.objects.get(text=LAMP)
    assert (lamp.object_count, lamp.relation_count, lamp.relation_kinds) == (3, 2, {"above": 1, "under": 1})
    plant = Prompt.objects.get(text=PLANT)
    assert (plant.object_count, plant.relation_count) == (4, 3)
    assert plant.relation_kinds == {"behind": 1, "in_front_of": 1, "next_to": 1}
    assert Prompt.objects.get(text=NO_RELATION).relation_count == 0

    detail = api.get(f"{PROMPTS}{mug.pk}/").json()
    assert detail["graph"] == parse(MUG).to_dict()
    assert [(r["kind"], r["span"]) for r in detail["graph"]["relations"]] == [
        ("left_of", [MUG.index("to the left of"), MUG.index("to the left of") + len("to the left of")])]
    assert {o["name"]: o["attributes"] for o in detail["graph"]["objects"]} == {"mug": ["red"], "kettle": []}
    assert {key: detail[key] for key in ("prompt_set", "position", "text", "object_count", "relation_count",
                                         "relation_kinds")} == {
        "prompt_set": mug.prompt_set_id, "position": 0, "text": MUG, "object_count": 2, "relation_count": 1,
        "relation_kinds": {"left_of": 1}}


def test_prompt_list_leaves_the_graph_to_the_detail(api, two_sets):
    row = api.get(PROMPTS).json()["results"][0]
    assert "graph" not in row
    assert set(row) == {"id", "prompt_set", "position", "text", "category", "word_count", "object_count",
                        "relation_count", "unparsed_count", "relation_kinds", "source_line"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", [("Kitchen", MUG), ("Kitchen", LAMP), ("Kitchen", NO_RELATION), ("Living", PLANT), ("Living", MUG)]),
        ("?prompt_set={living}", [("Living", PLANT), ("Living", MUG)]),
        ("?min_relations=2", [("Kitchen", LAMP), ("Living", PLANT)]),
        ("?max_relations=1", [("Kitchen", MUG), ("Kitchen", NO_RELATION), ("Living", MUG)]),
        ("?min_relations=1&max_relations=2", [("Kitchen", MUG), ("Kitchen", LAMP), ("Living", MUG)]),
        ("?min_objects=4", [("Living", PLANT)]),
        ("?relation_kind=left_of", [("Kitchen", MUG), ("Living", MUG)]),
        ("?relation_kind=under", [("Kitchen", LAMP)]),
        ("?relation_kind=above&relation_kind=under", [("Kitchen", LAMP)]),
        ("?relation_kind=above&relation_kind=behind", []),
        ("?relation_kind=between", []),
        ("?category=living room", [("Living", PLANT)]),
        ("?q=RED   mug", [("Kitchen", MUG), ("Living", MUG)]),
        ("?q=sofa&prompt_set={kitchen}", []),
        ("?prompt_set={kitchen}&relation_kind=left_of", [("Kitchen", MUG)]),
    ],
)
def test_prompt_filters_return_exactly_the_expected_rows(query, expected, api, two_sets):
    kitchen, living = two_sets
    response = api.get(PROMPTS + query.format(kitchen=kitchen.pk, living=living.pk))
    assert response.status_code == 200, response.content
    got = [(Prompt.objects.get(pk=row["id"]).prompt_set.name, row["text"]) for row in response.json()["results"]]
    assert got == expected
    assert response.json()["count"] == len(expected)


def test_prompt_filters_refuse_unknown_values(api, two_sets):
    response = api.get(PROMPTS + "?relation_kind=sideways")
    assert response.status_code == 400
    assert response.json() == {"relation_kind": ["Select a valid choice. sideways is not one of the available "
                                                 "choices."]}
    assert api.get(PROMPTS + "?min_relations=many").json() == {"min_relations": ["Enter a whole number."]}
    assert api.get(PERTURBED + "?prompt_set=1.5").json() == {"prompt_set": ["Enter a whole number."]}
    # Beyond a 64-bit id: a 400, not an overflow in the database driver.
    assert api.get(PERTURBED + f"?prompt_set={2**63}").json() == {
        "prompt_set": ["Ensure this value is less than or equal to 9223372036854775807."]}


# --- Perturbation rules ---------------------------------------------------------------------------------


def test_rules_list_holds_the_default_rules(api):
    rows = api.get(RULES).json()["results"]
    assert [(r["name"], r["kind"], r["enabled"]) for r in rows] == [
        ("Flip direction", "flip_direction", True), ("Move anchor", "move_anchor", True),
        ("Reverse sequence", "reverse_sequence", True), ("Rotate sequence", "rotate_sequence", True),
        ("Swap objects", "swap_objects", True)]


def test_rule_create_update_delete(api, researcher):
    response = api.post(RULES, {"name": "Flip only left-right", "kind": "flip_direction", "weight": 2.5},
                        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    rule = PerturbationRule.objects.get(pk=body["id"])
    assert (rule.name, rule.kind, rule.params, rule.weight, rule.enabled, rule.created_by) == (
        "Flip only left-right", "flip_direction", {}, 2.5, True, researcher)
    assert (body["created_by"], body["params"]) == ("res", {})

    response = api.patch(f"{RULES}{rule.pk}/", {"enabled": False, "description": "off for now"}, format="json")
    assert response.status_code == 200, response.content
    rule.refresh_from_db()
    assert (rule.enabled, rule.description, rule.weight) == (False, "off for now", 2.5)

    response = api.put(f"{RULES}{rule.pk}/", {"name": "Renamed", "kind": "swap_objects", "weight": 1},
                       format="json")
    assert response.status_code == 200, response.content
    rule.refresh_from_db()
    assert (rule.name, rule.kind, rule.weight) == ("Renamed", "swap_objects", 1.0)

    assert api.delete(f"{RULES}{rule.pk}/").status_code == 204
    assert not PerturbationRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        ({"name": "R", "kind": "teleport"}, {"kind": ['"teleport" is not a valid choice.']}),
        ({"name": "R", "kind": "flip_direction", "weight": 0}, {"weight": ["The weight must be greater than 0."]}),
        ({"name": "R", "kind": "flip_direction", "params": [1]}, {"params": ["Parameters must be a JSON object."]}),
        ({"name": "Flip direction", "kind": "flip_direction"},
         {"name": ["perturbation rule with this name already exists."]}),
        ({"kind": "flip_direction"}, {"name": ["This field is required."]}),
    ],
    ids=["kind", "weight", "params", "taken-name", "no-name"],
)
def test_bad_rule_gets_400_naming_the_field_and_stores_nothing(payload, errors, api):
    before = PerturbationRule.objects.count()
    response = api.post(RULES, payload, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert PerturbationRule.objects.count() == before


def test_a_partial_rule_update_answers_the_whole_rule(api):
    rule = PerturbationRule.objects.get(name="Swap objects")  # built in: no creator
    response = api.patch(f"{RULES}{rule.pk}/", {"enabled": False}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == api.get(f"{RULES}{rule.pk}/").json()
    assert response.json()["created_by"] is None


def test_bad_rule_update_changes_nothing(api):
    rule = PerturbationRule.objects.get(name="Swap objects")
    response = api.patch(f"{RULES}{rule.pk}/", {"weight": -1, "enabled": False}, format="json")
    assert response.status_code == 400
    assert response.json() == {"weight": ["The weight must be greater than 0."]}
    rule.refresh_from_db()
    assert (rule.weight, rule.enabled) == (2.0, True)
    response = api.patch(f"{RULES}{rule.pk}/", {"name": "Flip direction"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["perturbation rule with this name already exists."]}


# --- Perturbed prompts ----------------------------------------------------------------------------------


def _rule(name: str) -> PerturbationRule:
    return PerturbationRule.objects.get(name=name)


def add_perturbed(prompt: Prompt, text: str, edits: list[tuple[PerturbationRule | None, str]]) -> PerturbedPrompt:
    """A perturbed prompt with one edit per (rule, relation kind), stored as the job would store it."""
    perturbed = PerturbedPrompt.objects.create(prompt=prompt, text=text, normalized_text=text.lower(),
                                               n_edits=len(edits), seed=7)
    PerturbationEdit.objects.bulk_create([
        PerturbationEdit(perturbed=perturbed, position=i, rule=rule, rule_kind=rule.kind if rule else "swap_objects",
                         relation_kind=kind, relation_before={"kind": kind}, relation_after={"kind": kind},
                         span_before=[0, 5], span_after=[0, 5])
        for i, (rule, kind) in enumerate(edits)
    ])
    return perturbed


@pytest.fixture
def perturbed(two_sets):
    kitchen, living = two_sets
    flip, swap, move = _rule("Flip direction"), _rule("Swap objects"), _rule("Move anchor")
    mug = Prompt.objects.get(prompt_set=kitchen, text=MUG)
    lamp = Prompt.objects.get(prompt_set=kitchen, text=LAMP)
    plant = Prompt.objects.get(prompt_set=living, text=PLANT)
    return {
        "mug-flip": add_perturbed(mug, "mug flipped", [(flip, "left_of")]),
        "mug-swap": add_perturbed(mug, "mug swapped", [(swap, "left_of")]),
        "lamp-two": add_perturbed(lamp, "lamp two", [(flip, "above"), (swap, "under")]),
        "plant-three": add_perturbed(plant, "plant three", [(flip, "behind"), (flip, "in_front_of"),
                                                            (move, "next_to")]),
        "plant-one": add_perturbed(plant, "plant one", [(None, "behind")]),  # its rule was deleted
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["mug-flip", "mug-swap", "lamp-two", "plant-three", "plant-one"]),
        ("?prompt_set={kitchen}", ["mug-flip", "mug-swap", "lamp-two"]),
        ("?prompt={plant}", ["plant-three", "plant-one"]),
        ("?rule={flip}", ["mug-flip", "lamp-two", "plant-three"]),  # plant-three has two flips: listed once
        ("?rule={swap}", ["mug-swap", "lamp-two"]),
        ("?rule_kind=flip_direction", ["mug-flip", "lamp-two", "plant-three"]),
        ("?rule_kind=swap_objects", ["mug-swap", "lamp-two", "plant-one"]),
        ("?rule_kind=reverse_sequence", []),
        ("?n_edits=1", ["mug-flip", "mug-swap", "plant-one"]),
        ("?n_edits=3", ["plant-three"]),
        ("?edits=2-3", ["lamp-two", "plant-three"]),
        ("?edits=1", ["mug-flip", "mug-swap", "plant-one"]),
        ("?relation_kind=left_of", ["mug-flip", "mug-swap"]),
        ("?relation_kind=behind", ["plant-three", "plant-one"]),
        ("?relation_kind=between", []),
        # The edit filters describe one edit: rule 'Swap objects' changed an 'under' relation.
        ("?rule={swap}&relation_kind=under", ["lamp-two"]),
        ("?rule={swap}&relation_kind=above", []),
        ("?rule={flip}&relation_kind=behind&prompt_set={living}", ["plant-three"]),
        ("?prompt_set={kitchen}&n_edits=1&rule={flip}", ["mug-flip"]),
    ],
)
def test_perturbed_prompt_filters_return_exactly_the_expected_rows(query, expected, api, perturbed, two_sets):
    kitchen, living = two_sets
    plant = perturbed["plant-one"].prompt_id
    url = PERTURBED + query.format(kitchen=kitchen.pk, living=living.pk, plant=plant,
                                   flip=_rule("Flip direction").pk, swap=_rule("Swap objects").pk)
    response = api.get(url)
    names = {p.pk: name for name, p in perturbed.items()}
    assert [names[i] for i in ids(response)] == expected
    assert response.json()["count"] == len(expected)


def test_perturbed_prompt_filters_refuse_unknown_values(api, perturbed):
    assert api.get(PERTURBED + "?relation_kind=sideways").status_code == 400
    response = api.get(PERTURBED + "?edits=4")
    assert response.status_code == 400
    assert response.json() == {"edits": ["Select a valid choice. 4 is not one of the available choices."]}


def test_perturbed_prompt_carries_its_prompt_and_edits(api, perturbed, two_sets):
    item = perturbed["lamp-two"]
    body = api.get(f"{PERTURBED}{item.pk}/").json()
    flip, swap = _rule("Flip direction"), _rule("Swap objects")
    assert body == {
        "id": item.pk, "prompt": item.prompt_id, "prompt_set": two_sets[0].pk, "original": LAMP,
        "text": "lamp two", "n_edits": 2, "seed": 7, "job": None, "created_at": body["created_at"],
        "edits": [
            {"position": 0, "rule": flip.pk, "rule_name": "Flip direction", "rule_kind": "flip_direction",
             "relation_kind": "above", "relation_before": {"kind": "above"}, "relation_after": {"kind": "above"},
             "span_before": [0, 5], "span_after": [0, 5]},
            {"position": 1, "rule": swap.pk, "rule_name": "Swap objects", "rule_kind": "swap_objects",
             "relation_kind": "under", "relation_before": {"kind": "under"}, "relation_after": {"kind": "under"},
             "span_before": [0, 5], "span_after": [0, 5]},
        ],
    }
    orphan = api.get(f"{PERTURBED}{perturbed['plant-one'].pk}/").json()
    assert (orphan["edits"][0]["rule"], orphan["edits"][0]["rule_name"]) == (None, None)


def test_perturbed_prompt_list_queries_do_not_grow_with_rows(api, two_sets):
    kitchen, _ = two_sets
    flip, swap = _rule("Flip direction"), _rule("Swap objects")
    prompts = list(Prompt.objects.filter(prompt_set=kitchen))

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = api.get(PERTURBED + f"?prompt_set={kitchen.pk}&rule={flip.pk}")
        assert response.status_code == 200
        return len(queries), response.json()["count"]

    add_perturbed(prompts[0], "first", [(flip, "left_of"), (swap, "left_of")])
    one = count_queries()
    for i in range(19):
        add_perturbed(prompts[i % len(prompts)], f"more {i}", [(flip, "left_of"), (swap, "above")])
    twenty = count_queries()
    assert (one[1], twenty[1]) == (1, 20)
    assert one[0] == twenty[0], (one, twenty)
    assert twenty[0] <= 8


# --- Synchronous perturbation ---------------------------------------------------------------------------


def test_perturb_flips_the_one_relation(api):
    flip = _rule("Flip direction")
    response = api.post(PERTURB, {"text": f"  {MUG}  ", "rules": [flip.pk], "edits": "1", "seed": 5}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"original", "perturbed", "n_edits", "edits", "seed"}
    assert (body["original"], body["seed"], body["n_edits"]) == (MUG, 5, 1)
    assert body["perturbed"] != MUG
    assert "right" in body["perturbed"]
    [edit] = body["edits"]
    assert {k: edit[k] for k in ("position", "rule", "rule_name", "rule_kind", "relation_kind")} == {
        "position": 0, "rule": flip.pk, "rule_name": "Flip direction", "rule_kind": "flip_direction",
        "relation_kind": "left_of"}
    assert edit["relation_after"]["kind"] == "right_of"
    assert edit["text_before"] == MUG[edit["span_before"][0]:edit["span_before"][1]]
    assert edit["text_after"] == body["perturbed"][edit["span_after"][0]:edit["span_after"][1]]
    assert "left" in edit["text_before"] and "right" in edit["text_after"]
    assert parse(body["perturbed"]).relations[0].kind == "right_of"
    # The same seed gives the same answer; nothing is stored.
    assert api.post(PERTURB, {"text": MUG, "rules": [flip.pk], "seed": 5}, format="json").json() == body
    assert not PerturbedPrompt.objects.exists()


def test_perturb_two_or_three_edits_with_all_enabled_rules(api):
    text = f"{PLANT} {LAMP}"
    for seed in range(5):
        response = api.post(PERTURB, {"text": text, "edits": "2-3", "seed": seed}, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["n_edits"] in (2, 3) and len(body["edits"]) == body["n_edits"]
        assert body["perturbed"] != text
        assert not parse(body["perturbed"]).same_scene(parse(text))


def test_perturb_without_a_seed_returns_the_seed_it_used(api):
    body = api.post(PERTURB, {"text": MUG}, format="json").json()
    assert isinstance(body["seed"], int)
    again = api.post(PERTURB, {"text": MUG, "seed": body["seed"]}, format="json").json()
    assert again == body


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": NO_RELATION, "seed": 1}, "text"),
        ({"text": MUG, "rules": [999_999]}, "rules"),
        ({"text": MUG, "rules": ["{disabled}"]}, "rules"),
        ({"text": MUG, "edits": "4"}, "edits"),
        ({"text": MUG, "seed": -1}, "seed"),
        ({"text": ""}, "text"),
        ({"rules": []}, "text"),
        ({"text": "x" * 4001}, "text"),
        ({"text": MUG, "rules": [2**63]}, "rules"),
    ],
    ids=["no-relation", "unknown-rule", "disabled-rule", "bad-edits", "bad-seed", "blank", "missing", "too-long",
         "rule-id-overflow"],
)
def test_perturb_bad_input_gets_400_naming_the_field(payload, field, api):
    disabled = PerturbationRule.objects.create(name="Off", kind="swap_objects", enabled=False)
    payload = {k: [disabled.pk] if v == ["{disabled}"] else v for k, v in payload.items()}
    response = api.post(PERTURB, payload, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert all(isinstance(m, str) and m for m in response.json()[field])


def test_perturb_messages_say_why(api):
    response = api.post(PERTURB, {"text": MUG, "rules": [999_999]}, format="json")
    assert response.json() == {"rules": ["Unknown rule ids: 999999."]}
    off = PerturbationRule.objects.create(name="Off", kind="swap_objects", enabled=False)
    response = api.post(PERTURB, {"text": MUG, "rules": [off.pk]}, format="json")
    assert response.json() == {"rules": ["Disabled rules: Off."]}
    # A sequence rule cannot change a prompt without a sequence.
    reverse = _rule("Reverse sequence")
    response = api.post(PERTURB, {"text": MUG, "rules": [reverse.pk], "seed": 3}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["text"]


# --- Permissions ----------------------------------------------------------------------------------------

ENDPOINTS = [
    ("get", SETS), ("get", SETS + "{set}/"), ("post", SETS), ("post", SETS + "generate/"),
    ("get", PROMPTS), ("get", PROMPTS + "{prompt}/"),
    ("get", RULES), ("post", RULES), ("get", RULES + "{rule}/"), ("patch", RULES + "{rule}/"),
    ("delete", RULES + "{rule}/"),
    ("get", PERTURBED), ("get", PERTURBED + "{perturbed}/"), ("post", PERTURB),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS, ids=[f"{m}-{u}" for m, u in ENDPOINTS])
def test_annotators_get_403_and_anonymous_401(method, url, annotator, perturbed, two_sets):
    item = perturbed["mug-flip"]
    url = url.format(set=two_sets[0].pk, prompt=item.prompt_id, rule=_rule("Swap objects").pk, perturbed=item.pk)
    before = (stored_counts(), PerturbationRule.objects.count(), PerturbedPrompt.objects.count())
    payload = {"name": "X", "kind": "flip_direction", "text": MUG, "count": 2, "prompts": [MUG]}

    anonymous = getattr(APIClient(), method)(url, payload, format="json")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"
    refused = getattr(token_client(annotator), method)(url, payload, format="json")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Your role does not give access to this endpoint."}
    assert (stored_counts(), PerturbationRule.objects.count(), PerturbedPrompt.objects.count()) == before


@pytest.mark.parametrize("url", [SETS, PROMPTS, RULES, PERTURBED])
def test_researchers_and_admins_read_with_a_token(url, api, admin_user, perturbed):
    assert api.get(url).status_code == 200
    assert token_client(admin_user).get(url).status_code == 200


def test_lists_are_paginated_by_the_project_settings(api, two_sets):
    body = api.get(PROMPTS + "?limit=2").json()
    assert (body["count"], len(body["results"])) == (5, 2)
    assert body["next"] == "http://testserver/api/v1/prompts/?limit=2&offset=2"


# --- OpenAPI schema -------------------------------------------------------------------------------------


def test_schema_lists_the_prompt_endpoints(api):
    schema = json.loads(api.get("/api/v1/schema/?format=json").content)
    assert {
        "/api/v1/prompt-sets/", "/api/v1/prompt-sets/{id}/", "/api/v1/prompt-sets/generate/", "/api/v1/prompts/",
        "/api/v1/prompts/{id}/", "/api/v1/perturbation-rules/", "/api/v1/perturbation-rules/{id}/",
        "/api/v1/perturbed-prompts/", "/api/v1/perturbed-prompts/{id}/", "/api/v1/perturb/",
    } <= set(schema["paths"])
    create = schema["paths"]["/api/v1/prompt-sets/"]["post"]["requestBody"]["content"]
    assert set(create) == {"multipart/form-data", "application/json"}
    filters = {p["name"] for p in schema["paths"]["/api/v1/perturbed-prompts/"]["get"]["parameters"]}
    assert {"prompt_set", "rule", "rule_kind", "n_edits", "edits", "relation_kind", "limit", "offset"} <= filters
    filters = {p["name"] for p in schema["paths"]["/api/v1/prompts/"]["get"]["parameters"]}
    assert {"prompt_set", "min_relations", "max_relations", "relation_kind", "category", "q"} <= filters
