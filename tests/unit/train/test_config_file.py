"""``--config FILE``: typed training configs from TOML, YAML or JSON, flags on top."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest

from omnirm.errors import UsageError
from omnirm.media import MediaLimits
from omnirm.train.bt import BTConfig
from omnirm.train.config_file import read_config_file, resolve_config

TOML = """
model = "base"
data = "train.jsonl"
output = "rm"
epochs = 3              # an int where a float is expected
lora-layers = 8         # dashes as on the command line
warmup_ratio = 0.1      # no flag of its own
ties = "davidson"

[media_limits]
max_image_pixels = 1024
"""


def test_a_toml_file_fills_the_config_and_flags_override_it(tmp_path: Path) -> None:
    path = tmp_path / "bt.toml"
    path.write_text(TOML)
    config = resolve_config(
        BTConfig, path, {"epochs": 0.5, "media_limits": {"max_video_frames": 7}}
    )
    assert (config.model, config.data, config.output) == ("base", "train.jsonl", "rm")
    assert config.epochs == 0.5 and config.lora_layers == 8 and config.warmup_ratio == 0.1
    assert config.ties == "davidson" and config.batch_size == 8  # untouched default
    assert isinstance(config.media_limits, MediaLimits)
    assert config.media_limits.max_image_pixels == 1024  # from the file
    assert config.media_limits.max_video_frames == 7  # from a flag
    assert config.media_limits.max_file_bytes == MediaLimits().max_file_bytes


def test_yaml_reads_numbers_written_as_yaml_strings(tmp_path: Path) -> None:
    path = tmp_path / "bt.yaml"
    path.write_text("model: base\ndata: d.jsonl\noutput: out\nlr: 5e-4\nbf16: null\n")
    config = resolve_config(BTConfig, path, {})
    assert config.lr == pytest.approx(5e-4) and config.bf16 is None


def test_a_saved_training_config_is_a_valid_config(tmp_path: Path) -> None:
    saved = BTConfig(model="base", data="d.jsonl", output="old", epochs=2.0, lora_alpha=4)
    path = tmp_path / "training_config.json"
    path.write_text(json.dumps(asdict(saved)))
    again = resolve_config(BTConfig, path, {"output": "new"})
    assert asdict(again) == {**asdict(saved), "output": "new"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model = 'b'\nlora_rank = 4\n", "unknown setting 'lora_rank' (did you mean lora_r?)"),
        ("model = 'b'\nepochs = 'many'\n", "epochs: expected a number, got 'many'"),
        ("model = 'b'\nfull = 1\n", "full: expected true/false, got 1"),
        ("model = 'b'\nbatch_size = 2.5\n", "batch_size: expected an integer, got 2.5"),
        ("model = 'b'\nmedia_limits = 3\n", "media_limits must be a table of settings"),
        ("model = [\n", "not valid TOML"),
    ],
)
def test_mistakes_name_the_file_and_the_setting(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        resolve_config(BTConfig, path, {"data": "d", "output": "o"})
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_required_fields_from_neither_source_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bt.toml"
    path.write_text("model = 'base'\n")
    with pytest.raises(UsageError, match="missing --data, --output: give it on the command"):
        resolve_config(BTConfig, path, {})


def test_other_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bt.ini").write_text("[x]\n")
    with pytest.raises(UsageError, match=r"expected a \.toml, \.yaml, \.yml or \.json file"):
        read_config_file(tmp_path / "bt.ini")
    with pytest.raises(UsageError, match="no such file"):
        read_config_file(tmp_path / "none.toml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="expected a table of settings"):
        read_config_file(tmp_path / "list.yaml")


def test_the_command_line_defaults_are_the_configs_defaults() -> None:
    """Flags not given leave the config's defaults, so the help must show those same values."""
    import inspect

    from omnirm.cli.train import bt

    defaults = {f.name: f.default for f in fields(BTConfig)}
    checked = 0
    for name, parameter in inspect.signature(bt).parameters.items():
        field = {"eval_data": "eval"}.get(name, name)
        if field in defaults and field not in ("model", "data", "output"):
            assert parameter.default == defaults[field], name
            checked += 1
    limits = MediaLimits()
    for name in (f.name for f in fields(MediaLimits)):
        assert inspect.signature(bt).parameters[name].default == getattr(limits, name), name
    assert checked >= 30


def test_r1_flags_default_to_its_config_and_lists_are_read(tmp_path: Path) -> None:
    import inspect

    from omnirm.cli.train import r1
    from omnirm.train.r1.config import R1Config

    defaults = {f.name: f.default for f in fields(R1Config)}
    checked = 0
    for name, parameter in inspect.signature(r1).parameters.items():
        if name in defaults and name not in ("model", "data", "output"):
            assert parameter.default == defaults[name], name
            checked += 1
    assert checked >= 30
    path = tmp_path / "r1.toml"
    path.write_text('model = "m"\ndata = "d"\noutput = "o"\nreward_fns = ["a:f", "b.py:g"]\n')
    assert resolve_config(R1Config, path, {}).reward_fns == ["a:f", "b.py:g"]
    path.write_text('model = "m"\ndata = "d"\noutput = "o"\nreward_fns = ["a:f", 3]\n')
    with pytest.raises(UsageError, match=r"reward_fns\[1\]: expected a string, got 3"):
        resolve_config(R1Config, path, {})
