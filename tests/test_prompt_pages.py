"""The researcher pages for prompt sets, perturbation previews and runs, perturbed prompts and rules.

Uploads and the generator store a set or nothing (each bad line named); the detail page's plots come from two
aggregate queries; search, detail and the perturbed-prompt list keep a constant number of queries however many
prompts there are; every text is escaped piece by piece around its <mark> highlights; annotators get 403
everywhere and change nothing.
"""

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from spatiallab.jobs.models import Job, JobStatus
from spatiallab.prompts import selectors
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule, PerturbedPrompt, Prompt, PromptSet
from spatiallab.prompts.selectors import Mark, highlight
from spatiallab.prompts.services import (
    edit_count,
    perturb_text,
    perturbed_prompts_store,
    prompt_set_create,
)
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

# Prompts the parser reads: one relation each (plus a sequence), and one prompt it cannot perturb.
TEXTS = [
    "The mug is to the left of the laptop.",
    "A lamp is above the table.",
    "The book is in front of the vase. The cup is behind the vase.",
]
DEFAULT_RULES = [
    ("Flip direction", "flip_direction", {}, 3.0),
    ("Swap objects", "swap_objects", {}, 2.0),
    ("Reverse sequence", "reverse_sequence", {}, 1.0),
]


@pytest.fixture
def rules(db):
    """The rules the pages offer. Created here: a transactional test elsewhere may have flushed the ones the
    data migration makes."""
    made = {}
    for name, kind, params, weight in DEFAULT_RULES:
        made[kind] = PerturbationRule.objects.update_or_create(
            name=name, defaults={"kind": kind, "params": params, "weight": weight, "enabled": True})[0]
    PerturbationRule.objects.exclude(pk__in=[r.pk for r in made.values()]).delete()
    return made


@pytest.fixture
def res_client(client, researcher):
    client.force_login(researcher)
    return client


@pytest.fixture
def prompt_set(researcher):
    return prompt_set_create(name="Kitchen", prompts=TEXTS, created_by=researcher).prompt_set


def url(name, *args):
    return reverse(name, args=args)


def html(response) -> str:
    return response.content.decode()


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def bulk_prompts(prompt_set: PromptSet, count: int, *, start: int = 0) -> list[Prompt]:
    """`count` prompts with hand-made graphs and varied stats, stored without the parser (fast, and the page
    tests of query counts do not depend on what the parser reads)."""
    rows = []
    for i in range(start, start + count):
        text = f"Item {i} is left of box {i}. Then qq{i}."
        relation_start = text.index("left of")
        unread = text.index("qq")
        kinds = {"left_of": 1 + i % 3, "above": i % 2}
        rows.append(Prompt(
            prompt_set=prompt_set, position=i, text=text, normalized_text=text.lower(), word_count=7 + i % 5,
            object_count=2 + i % 4, relation_count=sum(kinds.values()), unparsed_count=1,
            relation_kinds={k: v for k, v in kinds.items() if v}, category="test",
            graph={"objects": [], "relations": [{"kind": "left_of", "subject": "o1", "anchors": ["o2"], "param": "",
                                                 "span": [relation_start, relation_start + 7]}],
                   "unparsed": [[unread, unread + len(f"qq{i}")]]},
        ))
    return Prompt.objects.bulk_create(rows)


# --- Who may open what --------------------------------------------------------------------------------------

GET_PAGES = ["prompt-set-list", "prompt-set-detail", "prompt-set-search", "prompt-set-preview",
             "prompt-set-runs", "prompt-set-perturbed", "perturbation-rule-list"]
POST_ACTIONS = ["prompt-set-upload", "prompt-set-generate", "prompt-set-perturb", "perturbation-rule-create",
                "perturbation-rule-toggle"]


def _url_for(name, prompt_set, rules):
    if name in ("prompt-set-list", "prompt-set-upload", "prompt-set-generate", "perturbation-rule-list",
                "perturbation-rule-create"):
        return url(name)
    if name == "perturbation-rule-toggle":
        return url(name, rules["flip_direction"].pk)
    return url(name, prompt_set.pk)


@pytest.mark.parametrize("name", GET_PAGES)
def test_pages_are_for_researchers_and_admins_only(name, client, annotator, researcher, admin_user, prompt_set,
                                                   rules):
    path = _url_for(name, prompt_set, rules)
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    client.force_login(annotator)
    response = client.get(path)
    assert response.status_code == 403
    assert b"Your role does not give access to this page." in response.content
    for user in (researcher, admin_user):
        client.force_login(user)
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("name", POST_ACTIONS)
def test_annotators_change_nothing(name, client, annotator, prompt_set, rules):
    client.force_login(annotator)
    before = (PromptSet.objects.count(), Prompt.objects.count(), Job.objects.count(),
              list(PerturbationRule.objects.values_list("name", "enabled")))
    data = {"name": "New", "count": 3, "seed": 1, "min_objects": 3, "max_objects": 4, "min_relations": 2,
            "max_relations": 3, "style": "short", "edits": "1", "variants": 1, "kind": "flip_direction",
            "params": "{}", "weight": 1, "file": SimpleUploadedFile("p.txt", b"A mug left of a cup.\n")}
    response = client.post(_url_for(name, prompt_set, rules), data)
    assert response.status_code == 403
    assert before == (PromptSet.objects.count(), Prompt.objects.count(), Job.objects.count(),
                      list(PerturbationRule.objects.values_list("name", "enabled")))


def test_the_rules_page_lives_under_the_dashboard():
    assert url("perturbation-rule-list") == "/dashboard/perturbation-rules/"
    assert url("prompt-set-list") == "/dashboard/prompt-sets/"


# --- List, upload, generate -----------------------------------------------------------------------------------


def test_list_shows_each_set_with_its_counts_and_both_forms(res_client, prompt_set):
    other = PromptSet.objects.create(name="Empty <b>set</b>")
    content = html(res_client.get(url("prompt-set-list")))
    row = re.search(rf'<tr id="prompt-set-{prompt_set.pk}">(.*?)</tr>', content, re.S).group(1)
    assert f'href="{url("prompt-set-detail", prompt_set.pk)}">Kitchen</a>' in row
    assert '<td class="num">3</td>' in row
    assert "Empty &lt;b&gt;set&lt;/b&gt;" in content and "<b>set</b>" not in content
    assert re.search(rf'<tr id="prompt-set-{other.pk}">.*?<td class="num">0</td>', content, re.S)
    assert 'id="upload-form"' in content and 'enctype="multipart/form-data"' in content
    assert 'id="generate-form"' in content and 'name="categories"' in content


UPLOADS = {
    "p.jsonl": b'{"text": "The mug is to the left of the laptop."}\n\n{"text": "A lamp is above the table.",'
               b' "category": "office desk"}\n{"prompt": "the MUG is to the left of   the laptop."}\n',
    "p.csv": b'id,text\n1,The mug is to the left of the laptop.\n2,A lamp is above the table.\n'
             b'3,The mug is to the left of the laptop.\n',
    "p.txt": b"The mug is to the left of the laptop.\nA lamp is above the table.\n"
             b"The mug is to the left of the laptop.\n",
}


@pytest.mark.parametrize("filename", list(UPLOADS))
def test_upload_stores_the_set_counts_duplicates_and_opens_it(filename, res_client, researcher):
    response = res_client.post(url("prompt-set-upload"), {
        "name": f"Upload {filename}", "description": "mine", "file": SimpleUploadedFile(filename, UPLOADS[filename]),
    })
    prompt_set = PromptSet.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("prompt-set-detail", prompt_set.pk)
    assert flash(response) == ["2 prompts stored, 1 duplicate skipped."]
    assert (prompt_set.name, prompt_set.description, prompt_set.created_by) == (f"Upload {filename}", "mine",
                                                                               researcher)
    assert list(prompt_set.prompts.values_list("text", flat=True)) == [
        "The mug is to the left of the laptop.", "A lamp is above the table."]
    assert prompt_set.source_info["duplicates_skipped"] == 1
    # The message shows on the page the redirect leads to.
    assert "2 prompts stored, 1 duplicate skipped." in html(res_client.get(response["Location"]))


def test_upload_with_bad_lines_names_every_line_and_stores_nothing(res_client):
    data = (b'{"text": "The mug is to the left of the laptop."}\n{"text": \n[1, 2]\n'
            b'{"text": "A lamp is above the table."}\n{"title": "x"}\n')
    response = res_client.post(url("prompt-set-upload"), {"name": "Broken",
                                                          "file": SimpleUploadedFile("bad.jsonl", data)})
    assert response.status_code == 400
    content = html(response)
    errors = re.search(r'<ul class="errors" id="id_file-errors" role="alert">(.*?)</ul>', content, re.S).group(1)
    assert [int(n) for n in re.findall(r"line (\d+):", errors)] == [2, 3, 5]
    assert "not valid JSON" in errors and 'missing field &quot;text&quot;' in errors
    assert not PromptSet.objects.exists() and not Prompt.objects.exists()
    # The form keeps what was typed.
    assert 'value="Broken"' in content


def test_upload_problems_are_named_by_field(res_client, prompt_set):
    response = res_client.post(url("prompt-set-upload"), {"name": "Kitchen",
                                                          "file": SimpleUploadedFile("p.txt", b"A cup.\n")})
    assert response.status_code == 400
    assert re.search(r'id_name-errors.*?Name:</span> A prompt set named &#x27;Kitchen&#x27; already exists',
                     html(response), re.S)
    response = res_client.post(url("prompt-set-upload"), {"name": "No file"})
    assert response.status_code == 400
    assert re.search(r"id_file-errors.*?File:</span> This field is required", html(response), re.S)
    response = res_client.post(url("prompt-set-upload"), {"name": "Blank",
                                                          "file": SimpleUploadedFile("p.txt", b"\n \n")})
    assert response.status_code == 400
    assert "the file holds no prompts" in html(response) or "The submitted file is empty" in html(response)
    response = res_client.post(url("prompt-set-upload"), {"name": "Odd",
                                                          "file": SimpleUploadedFile("p.docx", b"x")})
    assert response.status_code == 400
    assert "unknown file type &#x27;.docx&#x27;" in html(response)
    assert list(PromptSet.objects.values_list("name", flat=True)) == ["Kitchen"]


def test_generator_form_stores_a_set_and_reports_duplicates(res_client):
    response = res_client.post(url("prompt-set-generate"), {
        "name": "Generated", "count": 12, "seed": 7, "min_objects": 3, "max_objects": 4, "min_relations": 2,
        "max_relations": 3, "style": "short",
    })
    assert response.status_code == 302, html(response)[:2000]
    prompt_set = PromptSet.objects.get(name="Generated")
    assert response["Location"] == url("prompt-set-detail", prompt_set.pk)
    stored = prompt_set.prompts.count()
    assert flash(response) == [f"{stored} prompt{'s' if stored != 1 else ''} stored, "
                               f"{12 - stored} duplicate{'' if 12 - stored == 1 else 's'} skipped."]
    assert prompt_set.source == "generator"
    assert prompt_set.source_info["generator"]["seed"] == 7
    assert set(prompt_set.prompts.values_list("object_count", flat=True)) <= {3, 4}
    assert prompt_set.source_info["generator"]["colours"] == "some"  # the default, with the field left out


def test_generator_form_can_give_every_object_a_colour(res_client):
    from ml.spatial import lexicon as lx
    from ml.spatial.parser import parse

    response = res_client.get(url("prompt-set-list"))
    assert '<select name="colours"' in html(response)
    response = res_client.post(url("prompt-set-generate"), {
        "name": "Coloured", "count": 8, "seed": 3, "min_objects": 2, "max_objects": 3, "min_relations": 1,
        "max_relations": 2, "style": "short", "colours": "every",
    })
    assert response.status_code == 302, html(response)[:2000]
    prompt_set = PromptSet.objects.get(name="Coloured")
    assert prompt_set.source_info["generator"]["colours"] == "every"
    for text in prompt_set.prompts.values_list("text", flat=True):
        objects = parse(text).objects
        assert all(set(o.attributes) & set(lx.COLOURS) for o in objects), text


def test_generator_form_can_keep_relations_to_chosen_directions(res_client):
    from ml.spatial.parser import parse

    response = res_client.get(url("prompt-set-list"))
    assert 'name="axes" value="depth"' in html(response)
    response = res_client.post(url("prompt-set-generate"), {
        "name": "Sideways", "count": 12, "seed": 3, "min_objects": 2, "max_objects": 3, "min_relations": 1,
        "max_relations": 2, "style": "short", "axes": ["horizontal"],
    })
    assert response.status_code == 302, html(response)[:2000]
    prompt_set = PromptSet.objects.get(name="Sideways")
    assert prompt_set.source_info["generator"]["axes"] == ["horizontal"]
    kinds = {r.kind.value for text in prompt_set.prompts.values_list("text", flat=True)
             for r in parse(text).relations}
    assert "left_of" in kinds or "right_of" in kinds
    assert kinds.isdisjoint({"in_front_of", "behind", "above", "below", "on_top_of", "under"}), kinds
    # None ticked: all three, as before.
    res_client.post(url("prompt-set-generate"), {
        "name": "Everywhere", "count": 3, "seed": 3, "min_objects": 2, "max_objects": 3, "min_relations": 1,
        "max_relations": 2, "style": "short"})
    assert PromptSet.objects.get(name="Everywhere").source_info["generator"]["axes"] == [
        "horizontal", "depth", "vertical"]


def test_generator_form_names_the_bad_field_and_stores_nothing(res_client):
    from ml.spatial.generator import CATEGORIES

    base = {"name": "Generated", "count": 5, "seed": 1, "min_objects": 3, "max_objects": 4, "min_relations": 2,
            "max_relations": 3, "style": "long", "categories": [CATEGORIES[0]]}
    for change, field in [({"min_objects": 6}, "max_objects"), ({"count": 0}, "count"),
                          ({"categories": ["moon base"]}, "categories"), ({"style": "poem"}, "style"),
                          ({"colours": "rainbow"}, "colours"), ({"axes": ["sideways"]}, "axes"),
                          ({"min_relations": 5}, "max_relations")]:
        response = res_client.post(url("prompt-set-generate"), {**base, **change})
        assert response.status_code == 400, change
        assert f'id="id_{field}-errors"' in html(response), change
    assert not PromptSet.objects.exists()


# --- Detail: stats and plots ------------------------------------------------------------------------------------


def _plot_data(content: str) -> dict:
    return json.loads(re.search(r'<script id="plot-data" type="application/json">(.*?)</script>', content,
                                re.S).group(1))


def test_detail_shows_stats_and_the_four_plots_with_their_data(res_client, researcher):
    prompt_set = PromptSet.objects.create(name="Bulk")
    prompts = bulk_prompts(prompt_set, 40)
    content = html(res_client.get(url("prompt-set-detail", prompt_set.pk)))
    plots = _plot_data(content)

    def expected(values):
        counter = Counter(values)
        labels = list(range(min(counter), max(counter) + 1))
        return {"labels": [str(v) for v in labels], "counts": [counter.get(v, 0) for v in labels]}

    assert plots["relations"] == expected([p.relation_count for p in prompts])
    assert plots["objects"] == expected([p.object_count for p in prompts])
    assert plots["words"] == expected([p.word_count for p in prompts])
    kinds = Counter()
    for p in prompts:
        kinds.update(p.relation_kinds)
    assert dict(zip(plots["relation_kinds"]["labels"], plots["relation_kinds"]["counts"], strict=True)) == kinds
    assert plots["relation_kinds"]["counts"] == sorted(kinds.values(), reverse=True)

    for key in ("relations", "relation_kinds", "words", "objects"):
        assert f'<canvas data-plot="{key}"' in content
    assert 'src="/static/vendor/chartjs/chart.umd.min.js"' in content
    assert 'src="/static/js/prompts.js"' in content
    assert "cdn" not in content.lower() and "https://" not in content
    assert '<dd data-stat="prompts">40</dd>' in content
    mean_relations = sum(p.relation_count for p in prompts) / 40
    assert f"{mean_relations:.2f} on average" in content
    assert '<dd data-stat="with-unparsed">40 prompts</dd>' in content


def test_the_vendored_chart_library_and_page_script_are_static_files():
    root = Path(settings.BASE_DIR) / "static"
    chart = (root / "vendor/chartjs/chart.umd.min.js").read_text()
    assert "Chart.js v4" in chart[:200] and "sourceMappingURL" not in chart
    assert (root / "vendor/chartjs/LICENSE.md").read_text().startswith("The MIT License")
    assert "htmx:beforeSwap" in (root / "js/app.js").read_text()  # loaded by base.html on every page


def test_histograms_keep_empty_values_and_bin_wide_ranges():
    assert selectors.histogram(Counter({1: 2, 4: 1})).rows == [("1", 2), ("2", 0), ("3", 0), ("4", 1)]
    wide = selectors.histogram(Counter({v: 1 for v in range(10, 100)}), max_bins=30)
    assert len(wide.labels) == 30 and wide.labels[0] == "10–12" and sum(wide.counts) == 90
    assert selectors.histogram(Counter()).rows == []


def test_relation_kinds_are_summed_by_the_database(prompt_set):
    other = PromptSet.objects.create(name="Other")
    bulk_prompts(other, 5)
    expected = Counter()
    for kinds in Prompt.objects.filter(prompt_set=prompt_set).values_list("relation_kinds", flat=True):
        expected.update(kinds)
    with CaptureQueriesContext(connection) as queries:
        totals = selectors.relation_kind_totals(prompt_set)
    assert totals == dict(expected) and sum(totals.values()) >= 3
    assert len(queries) == 1


def test_stats_take_two_queries_whatever_the_size_of_the_set():
    prompt_set = PromptSet.objects.create(name="Bulk")
    bulk_prompts(prompt_set, 200)
    with CaptureQueriesContext(connection) as queries:
        stats = selectors.prompt_set_stats(prompt_set)
    assert stats.prompts == 200
    assert len(queries) == 2, [q["sql"] for q in queries]
    # Neither query reads the graphs.
    assert not any('"graph"' in q["sql"] for q in queries)


@pytest.mark.parametrize("name", ["prompt-set-detail", "prompt-set-search"])
def test_detail_and_search_keep_a_constant_number_of_queries(name, res_client, rules):
    prompt_set = PromptSet.objects.create(name="Bulk")
    bulk_prompts(prompt_set, 3)
    JobFactory(kind="perturb_prompt_set", params={"prompt_set": prompt_set.pk, "rules": [], "edits": "1",
                                                  "seed": 0, "variants": 1})
    path = url(name, prompt_set.pk)
    with CaptureQueriesContext(connection) as few:
        assert res_client.get(path).status_code == 200
    bulk_prompts(prompt_set, 60, start=3)
    for _ in range(3):
        JobFactory(kind="perturb_prompt_set", created_by=UserFactory(role="researcher"),
                   params={"prompt_set": prompt_set.pk, "rules": [], "edits": "1", "seed": 0, "variants": 1})
    with CaptureQueriesContext(connection) as many:
        response = res_client.get(path)
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert len(many) <= (13 if name == "prompt-set-detail" else 6)
    assert html(response).count('<li id="prompt-') == selectors.PROMPTS_PER_PAGE


# --- Search ---------------------------------------------------------------------------------------------------


def test_search_filters_by_words_and_relation_kind_and_pages(res_client):
    prompt_set = PromptSet.objects.create(name="Bulk")
    bulk_prompts(prompt_set, 45)
    search = url("prompt-set-search", prompt_set.pk)

    content = html(res_client.get(search, {"q": " QQ7  item "}))
    assert re.findall(r'<li id="prompt-(\d+)"', content) == [str(Prompt.objects.get(position=7).pk)]
    assert "1 prompt matching “QQ7  item”" in content

    content = html(res_client.get(search, {"relation_kind": "above"}))
    assert 'data-count="22"' in content  # odd positions have an "above" relation

    page1 = html(res_client.get(search))
    page3 = html(res_client.get(search, {"page": 3}))
    assert 'data-count="45"' in page1 and "Page 1 of 3" in page1
    assert len(re.findall(r'<li id="prompt-', page3)) == 5 and 'start="41"' in page3
    assert f'hx-get="{search}?page=2"' in page1
    filtered = html(res_client.get(search, {"q": "box", "relation_kind": "left_of"}))
    assert f'hx-get="{search}?q=box&amp;relation_kind=left_of&amp;page=2"' in filtered
    # Out-of-range and junk pages fall back to a valid page instead of failing.
    assert res_client.get(search, {"page": 99}).status_code == 200
    assert res_client.get(search, {"page": "x"}).status_code == 200


def test_detail_page_renders_search_results_without_javascript(res_client, prompt_set):
    content = html(res_client.get(url("prompt-set-detail", prompt_set.pk), {"q": "lamp", "relation_kind": "above"}))
    assert 'value="lamp"' in content and '<option value="above" selected>' in content
    assert len(re.findall(r'<li id="prompt-', content)) == 1
    search = url("prompt-set-search", prompt_set.pk)
    assert re.search(rf'<input type="search" name="q"[^>]*hx-get="{search}" '
                     r'hx-trigger="keyup changed delay:300ms, search"', content)
    assert re.search(rf'<select name="relation_kind" hx-get="{search}" hx-trigger="change"', content)


def test_list_keeps_a_constant_number_of_queries(res_client, researcher):
    bulk_prompts(PromptSet.objects.create(name="Set 0", created_by=researcher), 3)
    with CaptureQueriesContext(connection) as few:
        res_client.get(url("prompt-set-list"))
    for i in range(1, 8):
        bulk_prompts(PromptSet.objects.create(name=f"Set {i}", created_by=UserFactory()), 3)
    with CaptureQueriesContext(connection) as many:
        content = html(res_client.get(url("prompt-set-list")))
    assert len(many) == len(few)
    assert content.count('<tr id="prompt-set-') == 8


def test_prompts_show_relation_phrases_and_unread_text_marked(res_client):
    prompt_set = PromptSet.objects.create(name="Bulk")
    bulk_prompts(prompt_set, 1)
    content = html(res_client.get(url("prompt-set-search", prompt_set.pk)))
    assert ('Item 0 is <mark class="rel rel-left_of" title="left of">left of</mark> box 0. '
            'Then <mark class="unparsed" title="not understood by the parser">qq0</mark>.') in content


def test_parsed_prompts_get_their_relation_phrases_marked(res_client, prompt_set):
    content = html(res_client.get(url("prompt-set-search", prompt_set.pk), {"q": "mug"}))
    assert re.search(r'The mug is <mark class="rel rel-left_of" title="left of">[^<]*left of[^<]*</mark>', content)


def test_prompt_text_is_escaped_around_its_highlights(res_client):
    prompt_set = PromptSet.objects.create(name="Hostile")
    text = '<script>alert("x")</script> is left of <img src=x onerror=alert(1)> & "q"'
    start = text.index("left of")
    Prompt.objects.create(prompt_set=prompt_set, position=0, text=text, normalized_text=text.lower(),
                          graph={"relations": [{"kind": "left_of", "span": [start, start + 7]}],
                                 "unparsed": [[0, 8]]})
    content = html(res_client.get(url("prompt-set-search", prompt_set.pk)))
    assert "<script>alert" not in content and "<img src=x" not in content
    assert ('<mark class="unparsed" title="not understood by the parser">&lt;script&gt;</mark>alert(&quot;x&quot;)'
            '&lt;/script&gt; is <mark class="rel rel-left_of" title="left of">left of</mark> '
            '&lt;img src=x onerror=alert(1)&gt; &amp; &quot;q&quot;') in content


def test_highlight_escapes_every_piece_and_copes_with_odd_spans():
    assert highlight("a <b> & c", [Mark(2, 5, "x", 'say "hi"')]) == (
        'a <mark class="x" title="say &quot;hi&quot;">&lt;b&gt;</mark> &amp; c')
    # Overlaps: the earlier span wins; spans past the end are clipped; empty and reversed ones are dropped.
    assert highlight("abcdef", [Mark(3, 5, "b"), Mark(1, 4, "a"), Mark(5, 99, "c"), Mark(2, 2, "d"),
                                Mark(4, 1, "e")]) == (
        'a<mark class="a">bcd</mark><mark class="b">e</mark><mark class="c">f</mark>')
    assert highlight("<x>", []) == "&lt;x&gt;"


# --- Perturbation preview -----------------------------------------------------------------------------------------


def _preview(client, prompt_set, **params):
    return client.get(url("prompt-set-preview", prompt_set.pk), params, HTTP_HX_REQUEST="true")


def test_preview_shows_both_texts_with_the_changed_spans_marked(res_client, prompt_set, rules):
    flip = rules["flip_direction"]
    response = _preview(res_client, prompt_set, text="The mug is to the left of the laptop.",
                        rules=[flip.pk], edits="1", seed=3)
    assert response.status_code == 200, html(response)
    content = html(response)
    original = re.search(r'data-side="original">(.*?)</p>', content, re.S).group(1)
    perturbed = re.search(r'data-side="perturbed">(.*?)</p>', content, re.S).group(1)
    assert re.fullmatch(r'The mug is <mark class="edit" title="edit 1: Flip direction">[^<]*left[^<]*</mark>'
                        r'[^<]*', original), original
    assert re.fullmatch(r'The mug is <mark class="edit" title="edit 1: Flip direction">[^<]*right[^<]*</mark>'
                        r'[^<]*', perturbed), perturbed
    assert "<span class=\"badge\">Flip direction</span>" in content
    assert re.search(r"left of\(mug, laptop\)</code> → <code[^>]*>right of\(mug, laptop\)", content)
    # The same settings give the same preview.
    assert html(_preview(res_client, prompt_set, text="The mug is to the left of the laptop.", rules=[flip.pk],
                         edits="1", seed=3)) == content


def test_preview_matches_the_service_for_a_prompt_of_the_set(res_client, prompt_set, rules):
    prompt = prompt_set.prompts.get(position=2)  # two relations: room for two edits, not three
    seed = next(seed for seed in range(100) if edit_count("2-3", seed) == 2)
    response = _preview(res_client, prompt_set, prompt=prompt.pk, edits="2-3", seed=seed)
    assert response.status_code == 200, html(response)
    result = perturb_text(text=prompt.text, rules=list(PerturbationRule.objects.filter(enabled=True)),
                          edits="2-3", seed=seed)
    content = html(response)
    assert content.count('<li data-relation-kind=') == len(result.edits) >= 2
    plain = re.sub(r"<[^>]+>", "", re.search(r'data-side="perturbed">(.*?)</p>', content, re.S).group(1))
    assert plain == result.perturbed


def test_preview_errors_are_shown_in_the_partial_with_400(res_client, prompt_set, rules):
    response = _preview(res_client, prompt_set, text="A cat sleeps.", edits="1", seed=0)
    assert response.status_code == 400
    content = html(response)
    assert 'role="alert"' in content and "No perturbation" in content
    assert re.search(r'<span class="field-name">Text:</span> \S', content)

    response = _preview(res_client, prompt_set, text="", edits="1", seed=0)
    assert response.status_code == 400
    assert "Text:</span> Paste a prompt or pick one from the list." in html(response)

    other = prompt_set_create(name="Other", prompts=["A cup is on the desk."]).prompt_set
    foreign = other.prompts.get().pk
    response = _preview(res_client, prompt_set, prompt=foreign, edits="1", seed=0)
    assert response.status_code == 400
    assert f"No prompt with id {foreign} in this set." in html(response)

    rules["flip_direction"].enabled = False
    rules["flip_direction"].save()
    response = _preview(res_client, prompt_set, text=TEXTS[0], rules=[rules["flip_direction"].pk], edits="1")
    assert response.status_code == 400
    assert "Rules:</span> Select a valid choice." in html(response)
    assert not PerturbedPrompt.objects.exists()


def test_preview_escapes_the_pasted_text(res_client, prompt_set, rules):
    text = "The <b>mug</b> is to the left of the laptop & the <i>cup</i>."
    response = _preview(res_client, prompt_set, text=text, rules=[rules["flip_direction"].pk], edits="1", seed=1)
    content = html(response)
    assert "<b>mug</b>" not in content and "<i>cup</i>" not in content
    assert "&lt;b&gt;mug&lt;/b&gt;" in content


def test_preview_page_works_without_javascript(res_client, prompt_set, rules):
    path = url("prompt-set-preview", prompt_set.pk)
    content = html(res_client.get(path))
    assert 'id="preview-form"' in content and 'data-side="original"' not in content
    response = res_client.get(path, {"text": TEXTS[0], "edits": "1", "seed": 2})
    assert response.status_code == 200
    assert "<h1>Perturbation preview</h1>" in html(response) and 'data-side="perturbed"' in html(response)


# --- Perturbation runs -----------------------------------------------------------------------------------------


def test_launching_a_run_creates_the_job_and_links_to_it(res_client, researcher, prompt_set, rules,
                                                         django_capture_on_commit_callbacks):
    picked = sorted([rules["flip_direction"].pk, rules["swap_objects"].pk])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = res_client.post(url("prompt-set-perturb", prompt_set.pk),
                                   {"rules": picked, "edits": "2-3", "seed": 11, "variants": 2})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == url("job-detail", job.pk)
    assert (job.kind, job.created_by, job.status) == ("perturb_prompt_set", researcher, JobStatus.QUEUED)
    assert job.params == {"prompt_set": prompt_set.pk, "rules": picked, "edits": "2-3", "seed": 11, "variants": 2}
    assert len(callbacks) == 1

    # With htmx: the form comes back with a link to the job, and the runs panel is told to reload.
    with django_capture_on_commit_callbacks(execute=False):
        response = res_client.post(url("prompt-set-perturb", prompt_set.pk),
                                   {"edits": "1", "seed": 0, "variants": 1}, HTTP_HX_REQUEST="true")
    second = Job.objects.latest("pk")
    assert response.status_code == 200 and response["HX-Trigger"] == "perturbation-runs-changed"
    assert f'Job <a href="{url("job-detail", second.pk)}">{second.pk}</a> queued.' in html(response)
    assert second.params["rules"] == sorted(r.pk for r in rules.values())

    panel = html(res_client.get(url("prompt-set-runs", prompt_set.pk)))
    assert f'<li id="run-{job.pk}" data-status="queued">' in panel
    assert f'<li id="run-{second.pk}" data-status="queued">' in panel
    assert 'role="progressbar"' in panel and 'hx-trigger="every 2s"' in panel
    Job.objects.update(status=JobStatus.SUCCEEDED)
    assert "hx-trigger" not in html(res_client.get(url("prompt-set-runs", prompt_set.pk)))


def test_a_bad_run_form_names_the_field_and_queues_nothing(res_client, prompt_set, rules,
                                                           django_capture_on_commit_callbacks):
    rules["reverse_sequence"].enabled = False
    rules["reverse_sequence"].save()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for data, field in [({"edits": "4", "seed": 0, "variants": 1}, "edits"),
                            ({"edits": "1", "seed": -1, "variants": 1}, "seed"),
                            ({"edits": "1", "seed": 0, "variants": 11}, "variants"),
                            ({"rules": [rules["reverse_sequence"].pk], "edits": "1", "seed": 0, "variants": 1},
                             "rules")]:
            response = res_client.post(url("prompt-set-perturb", prompt_set.pk), data, HTTP_HX_REQUEST="true")
            assert response.status_code == 400, data
            assert f'id="id_{field}-errors"' in html(response), data
            assert 'id="perturb-run-form"' in html(response)
        response = res_client.post(url("prompt-set-perturb", prompt_set.pk), {"edits": "x"})
        assert response.status_code == 400 and "<h1>Kitchen</h1>" in html(response)
    assert not Job.objects.exists() and callbacks == []


def test_job_service_errors_land_on_the_run_form_fields(res_client, prompt_set, rules):
    PerturbationRule.objects.update(enabled=False)
    response = res_client.post(url("prompt-set-perturb", prompt_set.pk), {"edits": "1", "seed": 0, "variants": 1},
                               HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert re.search(r'id_rules-errors.*?No perturbation rule is enabled', html(response), re.S)
    assert not Job.objects.exists()


# --- Perturbed prompts ----------------------------------------------------------------------------------------


def _store_perturbations(prompt_set, rules, *, seeds=range(4), edits="1"):
    items = []
    for prompt in prompt_set.prompts.all():
        for seed in seeds:
            try:
                items.append((prompt, perturb_text(text=prompt.text, rules=list(rules.values()), edits=edits,
                                                   seed=seed)))
            except Exception:  # noqa: BLE001 - a prompt some seeds cannot perturb is fine here
                continue
    return perturbed_prompts_store(items=items, rules_by_name={r.name: r for r in rules.values()})


def test_perturbed_prompts_are_listed_with_highlights_and_filters(res_client, prompt_set, rules):
    assert _store_perturbations(prompt_set, rules) > 0
    _store_perturbations(prompt_set, rules, seeds=range(10, 14), edits="2-3")
    path = url("prompt-set-perturbed", prompt_set.pk)
    total = PerturbedPrompt.objects.count()
    content = html(res_client.get(path))
    assert f'data-count="{total}"' in content
    first = PerturbedPrompt.objects.order_by("prompt__position", "pk").first()
    block = re.search(rf'<li id="perturbed-{first.pk}"(.*?)</ol>', content, re.S).group(1)
    assert block.count('<mark class="edit"') == 2 * first.edits.count()

    flip = rules["flip_direction"]
    expected = PerturbedPrompt.objects.filter(edits__rule=flip).distinct().count()
    assert f'data-count="{expected}"' in html(res_client.get(path, {"rule": flip.pk}))
    expected = PerturbedPrompt.objects.filter(n_edits=1).count()
    assert f'data-count="{expected}"' in html(res_client.get(path, {"n_edits": 1}))
    kind = PerturbationEdit.objects.values_list("relation_kind", flat=True).first()
    expected = PerturbedPrompt.objects.filter(edits__relation_kind=kind).distinct().count()
    response = res_client.get(path, {"relation_kind": kind}, HTTP_HX_REQUEST="true")
    assert f'data-count="{expected}"' in html(response) and "<h1>" not in html(response)
    unused = PerturbationRule.objects.create(name="never used", kind="rotate_sequence")
    assert 'data-count="0"' in html(res_client.get(path, {"rule": unused.pk}))  # an empty page is counted too

    response = res_client.get(path, {"rule": 99999, "n_edits": 7})
    assert response.status_code == 400
    assert "Rule:</span> Select a valid choice." in html(response) and "Edits:</span>" in html(response)


def test_perturbed_list_keeps_a_constant_number_of_queries(res_client, rules):
    prompt_set = PromptSet.objects.create(name="Bulk")
    prompts = bulk_prompts(prompt_set, 25)
    flip = rules["flip_direction"]

    def add(prompt):
        row = PerturbedPrompt.objects.create(prompt=prompt, text=prompt.text.replace("left", "right"),
                                             normalized_text=prompt.normalized_text + "!", n_edits=1, seed=1)
        start = prompt.text.index("left")
        PerturbationEdit.objects.create(perturbed=row, position=0, rule=flip, rule_kind=flip.kind,
                                        relation_kind="left_of", relation_before={"kind": "left_of"},
                                        relation_after={"kind": "right_of"}, span_before=[start, start + 4],
                                        span_after=[start, start + 5])

    add(prompts[0])
    path = url("prompt-set-perturbed", prompt_set.pk)
    with CaptureQueriesContext(connection) as one:
        assert res_client.get(path, {"rule": flip.pk}).status_code == 200
    for prompt in prompts[1:]:
        add(prompt)
    with CaptureQueriesContext(connection) as many:
        response = res_client.get(path, {"rule": flip.pk})
    assert len(many) == len(one), [q["sql"] for q in many.captured_queries]
    assert html(response).count('<li id="perturbed-') == selectors.PERTURBED_PER_PAGE
    assert '<mark class="edit" title="edit 1: Flip direction">right</mark>' in html(response)


# --- Rules ----------------------------------------------------------------------------------------------------


def test_rules_page_lists_rules_and_toggles_them_with_htmx(res_client, rules):
    flip = rules["flip_direction"]
    content = html(res_client.get(url("perturbation-rule-list")))
    assert f'<tr id="rule-{flip.pk}" data-enabled="true">' in content
    assert f'hx-post="{url("perturbation-rule-toggle", flip.pk)}"' in content

    response = res_client.post(url("perturbation-rule-toggle", flip.pk), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert html(response).lstrip().startswith(f'<tr id="rule-{flip.pk}" data-enabled="false">')
    assert 'aria-checked="false"' in html(response)
    flip.refresh_from_db()
    assert flip.enabled is False
    response = res_client.post(url("perturbation-rule-toggle", flip.pk))
    assert response.status_code == 302
    flip.refresh_from_db()
    assert flip.enabled is True


def test_rules_page_creates_a_rule(res_client, researcher, rules):
    response = res_client.post(url("perturbation-rule-create"), {
        "name": "Rotate twice", "kind": "rotate_sequence", "params": '{"steps": 2}', "weight": "0.5",
        "description": "two places", "enabled": "on"})
    rule = PerturbationRule.objects.get(name="Rotate twice")
    assert response.status_code == 302
    assert response["Location"] == f"{url('perturbation-rule-list')}#rule-{rule.pk}"
    assert (rule.kind, rule.params, rule.weight, rule.enabled, rule.created_by) == (
        "rotate_sequence", {"steps": 2}, 0.5, True, researcher)
    assert "<code>{&quot;steps&quot;: 2}</code>" in html(res_client.get(url("perturbation-rule-list")))


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"params": "{steps: 2}"}, "params", "Not valid JSON (Expecting property name enclosed in double quotes at "
                                         "line 1, column 2)."),
    ({"params": "[1]"}, "params", "Must be a JSON object"),
    ({"weight": "0"}, "weight", "The weight must be greater than 0."),
    ({"weight": "nan"}, "weight", "Enter a number."),
    ({"kind": "explode"}, "kind", "Select a valid choice."),
    ({"name": "Flip direction"}, "name", "A rule named &#x27;Flip direction&#x27; already exists."),
    ({"name": ""}, "name", "This field is required."),
])
def test_rule_form_errors_name_the_field_and_store_nothing(change, field, message, res_client, rules):
    before = list(PerturbationRule.objects.values_list("name", "kind", "params", "weight"))
    data = {"name": "New rule", "kind": "flip_direction", "params": "{}", "weight": "1", **change}
    response = res_client.post(url("perturbation-rule-create"), data)
    assert response.status_code == 400
    errors = re.search(rf'<ul class="errors" id="id_{field}-errors" role="alert">(.*?)</ul>', html(response),
                       re.S)
    assert errors and message in errors.group(1), html(response)[:3000]
    assert list(PerturbationRule.objects.values_list("name", "kind", "params", "weight")) == before


def test_rule_params_the_engine_refuses_are_reported_on_params(res_client, rules):
    response = res_client.post(url("perturbation-rule-create"), {
        "name": "Bad steps", "kind": "rotate_sequence", "params": '{"steps": "many"}', "weight": "1"})
    assert response.status_code == 400
    assert 'id="id_params-errors"' in html(response)
    assert not PerturbationRule.objects.filter(name="Bad steps").exists()


def test_rules_page_keeps_a_constant_number_of_queries(res_client, rules, researcher):
    path = url("perturbation-rule-list")
    with CaptureQueriesContext(connection) as few:
        res_client.get(path)
    for i in range(10):
        PerturbationRule.objects.create(name=f"Extra {i}", kind="swap_objects", created_by=UserFactory())
    with CaptureQueriesContext(connection) as many:
        content = html(res_client.get(path))
    assert len(many) == len(few)
    assert content.count('<tr id="rule-') == 13
