import pytest

from ml.paths import resolve_model_dir


def test_relative_names_resolve_below_models_dir_and_absolute_paths_as_given(tmp_path):
    flux = tmp_path / "models" / "FLUX.1-dev"
    flux.mkdir(parents=True)
    (flux / "model_index.json").write_text("{}")
    qwen = tmp_path / "elsewhere" / "qwen"
    qwen.mkdir(parents=True)
    (qwen / "config.json").write_text("{}")
    assert resolve_model_dir("FLUX.1-dev", tmp_path / "models") == flux.resolve()
    assert resolve_model_dir(str(qwen), tmp_path / "models") == qwen.resolve()


def test_missing_or_incomplete_folders_name_the_model_and_the_place(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'sd35' not found: .*/sd35 is not a folder"):
        resolve_model_dir("sd35", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="neither config.json"):
        resolve_model_dir("empty", tmp_path)
