from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_record


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "media").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "media" / "ok.png")
    Image.fromarray(np.zeros((300, 300, 3), dtype=np.uint8)).save(root / "media" / "big.png")
    (root / "media" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "outside.png").write_bytes((root / "media" / "ok.png").read_bytes())
    return root


def _image_record(record_id: str, path: str) -> dict:  # type: ignore[type-arg]
    return make_record(
        record_id, prompt=[{"type": "text", "text": "look"}, {"type": "image", "path": path}]
    )


def test_check_media_finds_every_problem(cli, media_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import write_jsonl

    path = write_jsonl(
        media_dir / "records.jsonl",
        [
            _image_record("good", "media/ok.png"),
            _image_record("missing", "media/nope.png"),
            _image_record("corrupt", "media/broken.png"),
            _image_record("escape", "../outside.png"),
            make_record(
                "big-response",
                responses=[
                    [{"type": "image", "path": "media/ok.png"}],
                    [{"type": "image", "path": "media/big.png"}],
                ],
            ),
        ],
    )
    # without --check-media, only the schema is checked
    assert cli("data", "validate", str(path)).code == 0

    result = cli("data", "validate", "--check-media", "--max-image-pixels", "10000", str(path))
    assert result.code == 1
    err = result.stderr
    assert "record 'missing': prompt[1]" in err and "media/nope.png" in err
    assert "record 'corrupt': prompt[1]" in err and "media/broken.png" in err
    assert "record 'escape': prompt[1]" in err and "--allow-outside-root" in err
    assert "record 'big-response': responses[1][0]" in err and "--max-image-pixels" in err
    assert "5 records: 1 valid, 4 invalid, 1 media files ok" in err


def test_media_root_and_allow_outside_root(cli, media_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import write_jsonl

    # records somewhere else; paths relative to --media-root
    path = write_jsonl(tmp_path / "elsewhere.jsonl", [_image_record("a", "media/ok.png")])
    assert cli("data", "validate", "--check-media", str(path)).code == 1
    ok = cli("data", "validate", "--check-media", "--media-root", str(media_dir), str(path))
    assert ok.code == 0, ok.stderr
    escape = write_jsonl(media_dir / "escape.jsonl", [_image_record("e", "../outside.png")])
    allowed = cli("data", "validate", "--check-media", "--allow-outside-root", str(escape))
    assert allowed.code == 0, allowed.stderr
