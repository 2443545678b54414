"""Where model weights come from: local folders only (no downloads at run time)."""

from pathlib import Path


def resolve_model_dir(name: str, models_dir: Path) -> Path:
    """The folder holding model `name`: an absolute path as given, else a folder below `models_dir`.

    Raises FileNotFoundError naming both the name and where it was looked for, so a misconfigured generator
    fails with a message an operator can act on.
    """
    candidate = Path(name).expanduser()
    if not candidate.is_absolute():
        candidate = Path(models_dir) / candidate
    candidate = candidate.resolve()
    if not candidate.is_dir():
        raise FileNotFoundError(
            f"model {name!r} not found: {candidate} is not a folder (set MODELS_DIR or give an absolute path)"
        )
    if not (candidate / "config.json").exists() and not (candidate / "model_index.json").exists():
        raise FileNotFoundError(
            f"model {name!r} at {candidate} has neither config.json (transformers) nor model_index.json (diffusers)"
        )
    return candidate
