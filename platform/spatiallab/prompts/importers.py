"""Reading uploaded prompt files: JSONL, CSV, or plain text with one prompt per line.

Every problem is reported with its line number, all of them at once, and the caller stores nothing unless the
whole file is clean.
"""

import csv
import io
import json
from dataclasses import dataclass
from pathlib import PurePath

FORMATS = ("jsonl", "csv", "txt")
TEXT_FIELDS = ("text", "prompt")  # accepted names of the prompt column / key
MAX_PROMPT_CHARS = 4000
MAX_ERRORS = 50  # report this many, then say how many more
NUL = "\x00"


@dataclass(frozen=True)
class IncomingPrompt:
    line: int
    text: str
    category: str = ""


class PromptFileError(Exception):
    def __init__(self, errors: list[tuple[int, str]]):
        self.errors = errors
        shown = "; ".join(f"line {line}: {message}" if line else message for line, message in errors[:MAX_ERRORS])
        more = f"; and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
        super().__init__(shown + more)

    def messages(self) -> list[str]:
        lines = [f"line {line}: {message}" if line else message for line, message in self.errors[:MAX_ERRORS]]
        if len(self.errors) > MAX_ERRORS:
            lines.append(f"... and {len(self.errors) - MAX_ERRORS} more problems")
        return lines


def detect_format(filename: str) -> str:
    suffix = PurePath(filename or "").suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix == "csv":
        return "csv"
    if suffix in ("txt", "text", ""):
        return "txt"
    raise PromptFileError([(0, f"unknown file type '.{suffix}': use .jsonl, .csv or .txt")])


def _check_text(line: int, text, errors: list) -> str | None:
    if not isinstance(text, str):
        errors.append((line, f"the prompt must be a string, not {type(text).__name__}"))
        return None
    if NUL in text:  # PostgreSQL stores no NUL in text
        errors.append((line, "the prompt contains a NUL character"))
        return None
    text = " ".join(text.split())
    if not text:
        errors.append((line, "the prompt is empty"))
        return None
    if len(text) > MAX_PROMPT_CHARS:
        errors.append((line, f"the prompt has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}"))
        return None
    return text


def _read_jsonl(content: str, errors: list) -> list[IncomingPrompt]:
    prompts = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append((number, f"not valid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(item, dict):
            errors.append((number, 'each line must be a JSON object such as {"text": "..."}'))
            continue
        field = next((name for name in TEXT_FIELDS if name in item), None)
        if field is None:
            errors.append((number, 'missing field "text" (or "prompt")'))
            continue
        text = _check_text(number, item[field], errors)
        category = item.get("category", "")
        if not isinstance(category, str):
            errors.append((number, 'field "category" must be a string'))
            continue
        if NUL in category:
            errors.append((number, 'field "category" contains a NUL character'))
            continue
        if text:
            prompts.append(IncomingPrompt(number, text, category.strip()[:40]))
    return prompts


def _read_csv(content: str, errors: list) -> list[IncomingPrompt]:
    reader = csv.reader(io.StringIO(content))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        return []
    except csv.Error as exc:
        errors.append((1, f"not valid CSV ({exc})"))
        return []
    column = next((header.index(name) for name in TEXT_FIELDS if name in header), None)
    if column is None:
        errors.append((1, 'the header needs a "text" (or "prompt") column'))
        return []
    category_column = header.index("category") if "category" in header else None
    prompts = []
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                errors.append((number, f"expected {len(header)} columns, found {len(row)}"))
                continue
            text = _check_text(number, row[column], errors)
            category = row[category_column].strip()[:40] if category_column is not None else ""
            if NUL in category:
                errors.append((number, 'column "category" contains a NUL character'))
                continue
            if text:
                prompts.append(IncomingPrompt(number, text, category))
    except csv.Error as exc:
        errors.append((reader.line_num, f"not valid CSV ({exc})"))
    return prompts


def _read_txt(content: str, errors: list) -> list[IncomingPrompt]:
    prompts = []
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        text = _check_text(number, raw, errors)
        if text:
            prompts.append(IncomingPrompt(number, text))
    return prompts


READERS = {"jsonl": _read_jsonl, "csv": _read_csv, "txt": _read_txt}


def read_prompt_file(data: bytes, *, filename: str = "", file_format: str | None = None) -> list[IncomingPrompt]:
    """All prompts of the file, or PromptFileError listing every bad line. Blank lines are skipped."""
    fmt = file_format or detect_format(filename)
    if fmt not in READERS:
        raise PromptFileError([(0, f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")])
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PromptFileError([(line, "the file is not UTF-8 text")]) from None
    errors: list[tuple[int, str]] = []
    prompts = READERS[fmt](content, errors)
    if errors:
        raise PromptFileError(errors)
    if not prompts:
        raise PromptFileError([(0, "the file holds no prompts")])
    return prompts
