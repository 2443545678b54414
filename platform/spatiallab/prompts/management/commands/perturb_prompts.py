import json
import sys
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ml.spatial.perturb import PerturbationError, perturb
from spatiallab.prompts.importers import FORMATS, PromptFileError, read_prompt_file
from spatiallab.prompts.models import PerturbationRule
from spatiallab.prompts.services import (
    EDIT_SUBSETS,
    perturb_for_subset,
    perturbation_edits,
    perturbation_seed,
    rule_to_ml,
    rules_selected,
    validation_error_text,
)

EDIT_CHOICES = [*EDIT_SUBSETS, "2", "3"]



class Command(BaseCommand):
    help = (
        "Perturbs prompts from a file (one per line, JSONL with a text or prompt key, or CSV) or from stdin ('-') "
        'and writes one JSON line per prompt to stdout: {"prompt", "perturbed", "edits", "rule"}. Prompts that '
        "cannot be perturbed are reported on stderr and skipped. The same seed gives the same output; prompt i "
        "gets the seed a perturbation job would give the prompt at position i of a prompt set."
    )

    def add_arguments(self, parser):
        parser.add_argument("input", help="Input file, or - for stdin.")
        parser.add_argument("--format", choices=FORMATS, default=None,
                            help="Input format; default: from the file extension (stdin: JSONL if the first "
                                 "line starts with '{', else one prompt per line).")
        parser.add_argument("--edits", choices=EDIT_CHOICES, default="1",
                            help="Edits per prompt: 1, 2 or 3, or the subset 2-3 (2 or 3, chosen by the seed).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--rules", action="append", default=[], metavar="NAMES",
                            help="Rule names, comma-separated or repeated; default: every enabled rule.")

    def handle(self, *args, **options):
        prompts = self._read(options["input"], options["format"])
        rules = self._rules(options["rules"])
        ml_rules = [rule_to_ml(rule) for rule in rules]
        done = failed = 0
        bar = tqdm(prompts, file=sys.stderr, disable=not sys.stderr.isatty(), unit="prompt")
        for position, item in enumerate(bar):
            seed = perturbation_seed(options["seed"], position, 0)
            edits = options["edits"]
            try:
                if edits in EDIT_SUBSETS:
                    result = perturb_for_subset(item.text, rules=ml_rules, edits=edits, seed=seed)
                else:
                    result = perturb(item.text, rules=ml_rules, n_edits=int(edits), seed=seed)
            except PerturbationError as exc:
                failed += 1
                reasons = sorted({f"{r.rule}: {r.reason}" if r.rule else r.reason for r in exc.reasons})
                self._note(bar, f"line {item.line}: cannot perturb: {'; '.join(reasons) or 'no edit applies'}")
                continue
            names = list(dict.fromkeys(edit.rule for edit in result.edits))
            line = {"prompt": item.text, "perturbed": result.perturbed,
                    "edits": perturbation_edits(result, original=item.text, rules=rules), "rule": " + ".join(names)}
            self.stdout.write(json.dumps(line, ensure_ascii=False))
            done += 1
        bar.close()
        self.stderr.write(f"Perturbed {done} of {len(prompts)} prompts; {failed} could not be perturbed.")

    def _read(self, source: str, file_format: str | None):
        if source == "-":
            stream = sys.stdin
            data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode("utf-8")
            if file_format is None:
                first = next((line for line in data.splitlines() if line.strip()), b"")
                file_format = "jsonl" if first.lstrip().startswith(b"{") else "txt"
            filename = "stdin"
        else:
            path = Path(source)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CommandError(f"Cannot read {source}: {exc.strerror}.") from None
            filename = path.name
        try:
            return read_prompt_file(data, filename=filename, file_format=file_format)
        except PromptFileError as exc:
            raise CommandError(f"{source}: " + "; ".join(exc.messages())) from None

    def _rules(self, options: list[str]) -> list[PerturbationRule]:
        names = [name.strip() for option in options for name in option.split(",") if name.strip()]
        ids = []
        if names:
            by_name = dict(PerturbationRule.objects.filter(name__in=names).values_list("name", "pk"))
            unknown = [name for name in names if name not in by_name]
            if unknown:
                known = ", ".join(PerturbationRule.objects.values_list("name", flat=True))
                raise CommandError(f"Unknown rules: {', '.join(unknown)}. Known rules: {known}.")
            ids = [by_name[name] for name in names]
        try:
            return rules_selected(ids)
        except ValidationError as exc:
            raise CommandError(validation_error_text(exc)) from None

    def _note(self, bar, message: str) -> None:
        if bar.disable:
            self.stderr.write(message)
        else:
            bar.write(message, file=sys.stderr)  # above the bar, not through it
