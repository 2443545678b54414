"""The layers (engineering.md): ml/ never imports Django, platform/ never imports torch, workers/ joins them and
imports torch only inside task code; nothing at the top level shadows the standard library."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Top-level module names each .py file under `folder` imports (anywhere in the file)."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def module_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_ml_never_imports_django_or_the_platform():
    offenders = {f: names & {"django", "rest_framework", "spatiallab", "workers", "celery"}
                 for f, names in imported_modules(REPO / "ml").items()}
    assert not {f: n for f, n in offenders.items() if n}


def imported_from(folder: Path) -> dict[str, set[str]]:
    """Full dotted module names each .py file under `folder` imports."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


# The pure-Python parts of ml/ that the web process may use; everything else in ml/ may need torch.
PURE_ML = ("ml.spatial", "ml.paths", "ml.generation.settings")


def test_platform_never_imports_torch_or_the_torch_parts_of_ml():
    heavy = {"torch", "diffusers", "transformers", "peft", "accelerate", "safetensors"}
    offenders = {}
    for path, names in imported_from(REPO / "platform").items():
        bad = {n for n in names if n.split(".")[0] in heavy
               or (n.split(".")[0] == "ml" and not n.startswith(PURE_ML))}
        if bad:
            offenders[path] = bad
    assert not offenders


def test_pure_ml_parts_import_neither_django_nor_torch():
    for prefix in PURE_ML:
        folder = REPO / Path(*prefix.split("."))
        files = imported_modules(folder) if folder.is_dir() else {prefix: imported_modules(folder.parent)[
            str(folder.with_suffix(".py").relative_to(REPO))]}
        for path, names in files.items():
            assert not names & {"torch", "django", "rest_framework", "numpy", "spatiallab", "workers"}, path


def test_worker_modules_import_torch_only_inside_task_code():
    heavy = {"torch", "diffusers", "transformers", "peft", "accelerate"}
    for path in (REPO / "workers").rglob("*.py"):
        assert not module_level_imports(path) & heavy, path


def test_web_process_and_worker_start_without_loading_torch():
    """Importing the whole web app (every URL and view) and the Celery tasks must not load torch: the web
    process stays light and a GPU worker initialises CUDA only inside the task, never in a forked parent."""
    code = (
        "import sys, django; django.setup();"
        "from django.urls import get_resolver; get_resolver().url_patterns;"
        "import spatiallab.urls, workers.tasks, workers.runner, workers.handlers;"
        "print('torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "spatiallab.settings"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_platform_is_a_source_folder_not_a_package():
    assert not (REPO / "platform" / "__init__.py").exists()
    import platform

    # The standard-library module, not our folder.
    assert hasattr(platform, "python_version")
    assert "site-packages" not in platform.__file__ and "/platform/" not in platform.__file__.replace("\\", "/")


TOP_LEVEL = sorted(p.name for p in REPO.iterdir() if p.is_dir() and (p / "__init__.py").exists())


@pytest.mark.parametrize("name", TOP_LEVEL + ["spatiallab"])
def test_top_level_packages_do_not_shadow_stdlib_or_dependencies(name):
    from importlib.metadata import packages_distributions

    assert name not in sys.stdlib_module_names
    # Only this project's own distribution provides a top-level module of that name.
    assert set(packages_distributions().get(name, ["spatiallab"])) == {"spatiallab"}


def test_ruff_checks_stdlib_shadowing():
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "A005" in config["select"] + config["extend-select"]
