"""The datasheet (README.md) generated for every frozen version; it travels with every export (the tar's
README.md, the Parquet file's metadata, the JSONL download's `Link` header and the job's sibling file)."""

from __future__ import annotations

from spatiallab.datasets.canonical import SPLITS


def _table(title: str, counts: dict, total: int) -> list[str]:
    lines = [f"### {title}", "", "| value | pairs | share |", "|---|---:|---:|"]
    for key, count in counts.items():
        share = f"{100 * count / total:.1f} %" if total else "–"
        lines.append(f"| {key} | {count:,} | {share} |")
    return [*lines, ""]


def _number(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_readme(version) -> str:
    card, criteria = version.card, version.criteria
    total = version.entry_count
    out = [
        f"# {version.name}",
        "",
        version.description.strip() or "A dataset of human-verified spatial preference pairs made with SpatialLab.",
        "",
        "## Summary",
        "",
        f"- Entries (preference pairs): {total:,}",
        f"- Content hash (SHA-256 over the canonical entry lines): `{version.content_hash}`",
        f"- Frozen: {version.frozen_at:%Y-%m-%d %H:%M UTC}" if version.frozen_at else "- Frozen: no",
        f"- Parent version: {version.parent.name} (`{version.parent.content_hash}`)" if version.parent_id
        else "- Parent version: none",
        "",
        "Each entry is one prompt with two images made by the same generator from the same seed: `chosen` was "
        "generated from the prompt and verified by annotators to follow it, `rejected` was generated from a copy "
        "of the prompt with one to three spatial relations changed (`perturbed_prompt`, `edits`). Gold (quality "
        "control) pairs are never part of a dataset.",
        "",
        "## How the entries were selected",
        "",
        f"- Verification queues: {', '.join(map(str, criteria.get('queues', []))) or 'all'}",
        f"- Generators: {', '.join(map(str, criteria.get('generators', []))) or 'all'}",
        f"- Perturbation rules: {', '.join(map(str, criteria.get('rules', []))) or 'all'}",
        f"- Number of edits: {criteria.get('n_edits') or 'all'}",
        f"- Minimum agreement: {criteria.get('min_agreement', 0):.2f}",
        f"- Adjudicated pairs count: {'yes' if criteria.get('include_adjudicated', True) else 'no'}",
        "",
        "A pair enters when at least one of its items in those queues was verified (by quorum, or by "
        "adjudication where that counts) and none was rejected or disputed.",
        "",
        "## Splits",
        "",
        "Splits are assigned by the perfect prompt (SHA-256 of the salt and the normalised prompt text), so all "
        "pairs and seeds of one prompt are in the same split and nothing leaks between them.",
        "",
        f"- Ratios: {', '.join(f'{split} {version.ratios.get(split, 0):.2f}' for split in SPLITS)}",
        f"- Salt: `{version.split_salt}`",
        "",
    ]
    if card:
        out += _table("Pairs per split", card.get("split", {}), total)
        out += _table("Number of edits", card.get("n_edits", {}), total)
        out += _table("Edited relation type (a pair counts once per type it edits)", card.get("relation_kind", {}),
                      total)
        out += _table("Generator", card.get("generator", {}), total)
        out += _table("Scene category", card.get("category", {}), total)
        out += _table("Agreement (share of answers saying only the chosen image follows)", card.get("agreement", {}),
                      total)
        queues = card.get("queues", [])
        if queues:
            out += ["## Annotator agreement in the source queues", "",
                    "| queue | overlap / quorum | verdicts | percent agreement | Fleiss' kappa "
                    "| Krippendorff's alpha |",
                    "|---|---|---:|---:|---:|---:|"]
            out += [f"| {q['name']} | {q['overlap']} / {q['quorum']} | {q['verdicts']:,} | "
                    f"{_number(q['percent_agreement'])} | {_number(q['fleiss_kappa'])} | "
                    f"{_number(q['krippendorff_alpha'])} |" for q in queues]
            out.append("")
    if version.diff:
        diff = version.diff
        out += ["## Changes against the parent", "",
                f"- Added pairs: {diff['added']:,}", f"- Removed pairs: {diff['removed']:,}",
                f"- Relabelled pairs (other split or verification): {diff['relabelled']:,}", ""]
    out += [
        "## Files and loading",
        "",
        "- JSONL: one entry per line, keys sorted; its SHA-256 equals the content hash above. Image `path`s are "
        "storage names (relative paths inside the tar export), each with the SHA-256 of the image's bytes.",
        "- Parquet: `prompt`, `chosen`, `rejected` (images embedded) and the entry's other fields; "
        "`datasets.load_dataset(\"parquet\", data_files=...)` loads it with the images as `Image` features.",
        "- Tar: this README, `entries.jsonl`, the images under their paths, `manifest.json` and `SHA256SUMS` "
        "(`sha256sum -c SHA256SUMS` checks every file).",
        "",
    ]
    return "\n".join(out)
