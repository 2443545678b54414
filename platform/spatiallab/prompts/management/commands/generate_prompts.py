import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ml.spatial.generator import AXES, COLOUR_MODES, STYLES
from spatiallab.prompts.services import (
    AXES_HELP,
    COLOURS_HELP,
    STYLE_HELP,
    GeneratorSettings,
    generated_prompts,
    prompt_set_generate,
    validation_error_text,
)

DEFAULTS = GeneratorSettings(count=1)



class Command(BaseCommand):
    help = (
        'Generates spatial prompts and writes them to stdout as JSON lines {"text", "category"}, or stores them '
        "as a prompt set with --save. The same settings and seed give the same prompts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True, help="Prompts to generate.")
        parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
        parser.add_argument("--min-objects", type=int, default=DEFAULTS.min_objects)
        parser.add_argument("--max-objects", type=int, default=DEFAULTS.max_objects)
        parser.add_argument("--min-relations", type=int, default=DEFAULTS.min_relations)
        parser.add_argument("--max-relations", type=int, default=DEFAULTS.max_relations)
        parser.add_argument("--category", action="append", default=[], metavar="CATEGORY",
                            help="Scene category, comma-separated or repeated; default: all.")
        parser.add_argument("--style", choices=STYLES, default=DEFAULTS.style, help=STYLE_HELP)
        parser.add_argument("--colours", choices=COLOUR_MODES, default=DEFAULTS.colours, help=COLOURS_HELP)
        parser.add_argument("--axes", nargs="+", choices=AXES, default=list(AXES), help=AXES_HELP)
        parser.add_argument("--save", metavar="NAME", help="Store the prompts as a prompt set with this name.")
        parser.add_argument("--description", default="", help="Description of the saved prompt set.")

    def handle(self, *args, **options):
        categories = tuple(c.strip() for option in options["category"] for c in option.split(",") if c.strip())
        settings = GeneratorSettings(
            count=options["count"], seed=options["seed"], min_objects=options["min_objects"],
            max_objects=options["max_objects"], min_relations=options["min_relations"],
            max_relations=options["max_relations"], categories=categories, style=options["style"],
            colours=options["colours"], axes=tuple(options["axes"]),
        )
        try:
            settings.validate()
        except ValidationError as exc:
            raise CommandError(validation_error_text(exc)) from None
        bar = tqdm(total=settings.count, file=sys.stderr, disable=not sys.stderr.isatty(), unit="prompt")
        if options["save"]:
            self._save(options["save"], options["description"], settings, bar)
            return
        for prompt in generated_prompts(settings):
            self.stdout.write(json.dumps({"text": prompt.text, "category": prompt.category}, ensure_ascii=False))
            bar.update()
        bar.close()

    def _save(self, name: str, description: str, settings: GeneratorSettings, bar) -> None:
        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        try:
            result = prompt_set_generate(name=name, settings=settings, description=description, progress=progress)
        except ValidationError as exc:
            raise CommandError(validation_error_text(exc)) from None
        finally:
            bar.close()
        self.stdout.write(
            f"Saved prompt set {result.prompt_set.name!r} (id {result.prompt_set.pk}): {result.created} prompts, "
            f"{result.duplicates} duplicates skipped."
        )
