"""Reading uploaded prompt files: every bad line is reported by number, all at once."""

import pytest

from spatiallab.prompts.importers import MAX_PROMPT_CHARS, PromptFileError, detect_format, read_prompt_file

LONG = "The mug is to the left of the laptop."


def texts(prompts):
    return [(p.line, p.text, p.category) for p in prompts]


def test_jsonl_accepts_text_or_prompt_keys_categories_and_skips_blank_lines():
    data = (b'{"text": "A mug   left of a laptop.", "category": "office desk"}\n\n'
            b'{"prompt": "A lamp behind the sofa."}\n')
    assert texts(read_prompt_file(data, filename="p.jsonl")) == [
        (1, "A mug left of a laptop.", "office desk"), (3, "A lamp behind the sofa.", "")]


def test_csv_finds_the_text_column_by_header_and_handles_quoted_commas():
    data = b'id,Prompt,category\n1,"A mug, red, left of a laptop.",kitchen\n2,A lamp behind the sofa.,\n'
    assert texts(read_prompt_file(data, filename="p.csv")) == [
        (2, "A mug, red, left of a laptop.", "kitchen"), (3, "A lamp behind the sofa.", "")]


def test_plain_text_is_one_prompt_per_line_with_a_utf8_bom_tolerated():
    data = "\ufeffA mug left of a laptop.\n\n  A lamp behind the sofa.  \n".encode()
    assert texts(read_prompt_file(data, filename="p.txt")) == [
        (1, "A mug left of a laptop.", ""), (3, "A lamp behind the sofa.", "")]


def test_every_bad_jsonl_line_is_reported_with_its_number():
    data = (b'{"text": "ok"}\n{"text": \n[1, 2]\n{"title": "x"}\n{"text": ""}\n{"text": 5}\n'
            + b'{"text": "' + b"x" * (MAX_PROMPT_CHARS + 1) + b'"}\n')
    with pytest.raises(PromptFileError) as info:
        read_prompt_file(data, filename="p.jsonl")
    lines = [line for line, _ in info.value.errors]
    assert lines == [2, 3, 4, 5, 6, 7]
    messages = info.value.messages()
    assert messages[0].startswith("line 2: not valid JSON")
    assert messages[1] == 'line 3: each line must be a JSON object such as {"text": "..."}'
    assert messages[2] == 'line 4: missing field "text" (or "prompt")'
    assert messages[3] == "line 5: the prompt is empty"
    assert messages[4] == "line 6: the prompt must be a string, not int"
    assert messages[5] == f"line 7: the prompt has {MAX_PROMPT_CHARS + 1} characters; the limit is {MAX_PROMPT_CHARS}"


def test_csv_errors_name_the_line():
    with pytest.raises(PromptFileError, match='line 1: the header needs a "text"'):
        read_prompt_file(b"title\nx\n", filename="p.csv")
    with pytest.raises(PromptFileError) as info:
        read_prompt_file(b"text,category\nfine,kitchen\nextra,col,umn\n", filename="p.csv")
    assert info.value.errors == [(3, "expected 2 columns, found 3")]


def test_non_utf8_names_the_line_and_empty_files_are_refused():
    with pytest.raises(PromptFileError) as info:
        read_prompt_file(b"fine\nalso fine\n\xff\xfe broken\n", filename="p.txt")
    assert info.value.errors == [(3, "the file is not UTF-8 text")]
    with pytest.raises(PromptFileError, match="the file holds no prompts"):
        read_prompt_file(b"\n\n", filename="p.txt")


def test_too_many_errors_are_summarised():
    data = b"\n".join(b"not json" for _ in range(80))
    with pytest.raises(PromptFileError) as info:
        read_prompt_file(data, filename="p.jsonl")
    assert len(info.value.errors) == 80
    assert info.value.messages()[-1] == "... and 30 more problems"


@pytest.mark.parametrize(("name", "fmt"), [("a.jsonl", "jsonl"), ("a.NDJSON", "jsonl"), ("a.csv", "csv"),
                                           ("a.txt", "txt"), ("prompts", "txt")])
def test_format_from_the_file_name(name, fmt):
    assert detect_format(name) == fmt


def test_unknown_extension_is_refused():
    with pytest.raises(PromptFileError, match=r"unknown file type '\.xlsx'"):
        detect_format("prompts.xlsx")
