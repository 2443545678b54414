import json
from dataclasses import dataclass
from importlib import resources

from django.db import transaction

from spatiallab.prompts.models import Prompt, PromptSet


def normalize_prompt(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass
class PromptSetCreated:
    prompt_set: PromptSet
    created: int
    duplicates: int


@transaction.atomic
def prompt_set_create(*, name: str, texts: list[str], description: str = "", created_by=None) -> PromptSetCreated:
    """Stores a prompt set; prompts with the same normalised text as an earlier one are counted and skipped."""
    prompt_set = PromptSet.objects.create(name=name, description=description, created_by=created_by)
    seen: set[str] = set()
    rows = []
    for text in texts:
        normalized = normalize_prompt(text)
        if not normalized or normalized in seen:
            continue
        seen.add(normalized)
        rows.append(
            Prompt(
                prompt_set=prompt_set,
                position=len(rows),
                text=" ".join(text.split()),
                normalized_text=normalized,
                word_count=len(normalized.split()),
            )
        )
    Prompt.objects.bulk_create(rows)
    return PromptSetCreated(prompt_set=prompt_set, created=len(rows), duplicates=len(texts) - len(rows))


DEMO_PROMPT_SET = "Demo: kitchen and living room"


def demo_prompt_texts() -> list[str]:
    data = resources.files("spatiallab.prompts").joinpath("demo_prompts.jsonl").read_text(encoding="utf-8")
    return [json.loads(line)["text"] for line in data.splitlines() if line.strip()]


def prompt_set_ensure_demo(*, created_by=None) -> PromptSet:
    existing = PromptSet.objects.filter(name=DEMO_PROMPT_SET).first()
    if existing:
        return existing
    return prompt_set_create(
        name=DEMO_PROMPT_SET,
        texts=demo_prompt_texts(),
        description="Long spatial prompts for trying the pipeline end to end.",
        created_by=created_by,
    ).prompt_set
