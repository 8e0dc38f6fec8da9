"""The generated files, and the ``--write`` / ``--check`` command line that keeps them current."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omnirm.cli.docgen.bash import bash_completion
from omnirm.cli.docgen.fish import fish_completion
from omnirm.cli.docgen.man import man_pages
from omnirm.cli.docgen.spec import PROG
from omnirm.cli.docgen.zsh import zsh_completion

REGEN_HINT = "run `bash scripts/gen_docs.sh` to regenerate them"

BASH_FILE = "completions/omnirm.bash"
ZSH_FILE = "completions/_omnirm"
FISH_FILE = "completions/omnirm.fish"
MAN_DIR = "man/man1"


def generated_files(cmd: Any, prog: str = PROG) -> dict[str, str]:
    """Every generated file: repo-relative path -> content."""
    files = {
        BASH_FILE: bash_completion(cmd, prog),
        ZSH_FILE: zsh_completion(cmd, prog),
        FISH_FILE: fish_completion(cmd, prog),
    }
    for name, text in sorted(man_pages(cmd, prog).items()):
        files[f"{MAN_DIR}/{name}"] = text
    return files


def stale_files(root: Path, files: Mapping[str, str], prog: str = PROG) -> list[str]:
    """Generated man pages under ``root`` that no command produces any more."""
    man_dir = root / MAN_DIR
    if not man_dir.is_dir():
        return []
    ours = (
        p.name
        for p in man_dir.glob("*.1")
        if p.is_file() and (p.name == f"{prog}.1" or p.name.startswith(f"{prog}-"))
    )
    return sorted(path for path in (f"{MAN_DIR}/{name}" for name in ours) if path not in files)


def check(root: Path, files: Mapping[str, str], prog: str = PROG) -> list[str]:
    """Problems with the files under ``root``: ``"PATH (differs|missing|stale)"``; empty if none."""
    problems = []
    for path, text in sorted(files.items()):
        target = root / path
        if not target.is_file():
            problems.append(f"{path} (missing)")
        elif target.read_text(encoding="utf-8") != text:
            problems.append(f"{path} (differs)")
    problems += [f"{path} (stale)" for path in stale_files(root, files, prog)]
    return problems


def write(root: Path, files: Mapping[str, str], prog: str = PROG) -> list[str]:
    """Write ``files`` under ``root`` and remove stale man pages; returns the paths changed."""
    changed = []
    for path, text in sorted(files.items()):
        target = root / path
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        changed.append(path)
    for path in stale_files(root, files, prog):
        (root / path).unlink()
        changed.append(f"{path} (removed)")
    return changed


def _default_root() -> Path:
    """The repository this package sits in (omnirm/cli/docgen/), else the working directory."""
    repo = Path(__file__).resolve().parents[3]
    return repo if (repo / "pyproject.toml").is_file() else Path.cwd()


def _cli_command() -> Any:
    from omnirm.cli.main import build_command

    return build_command()


def main(argv: Sequence[str] | None = None, command: Callable[[], Any] = _cli_command) -> int:
    """``--write`` the generated files, or ``--check`` them (exit 1 when out of date)."""
    parser = argparse.ArgumentParser(
        prog="python -m omnirm.cli.docgen",
        description="Generate omnirm's shell completions and man pages.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="write the files under --root")
    mode.add_argument("--check", action="store_true", help="exit 1 when a file is out of date")
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    args = parser.parse_args(argv)
    root: Path = args.root or _default_root()
    files = generated_files(command())
    if args.check:
        problems = check(root, files)
        if problems:
            print("generated docs are out of date:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            print(REGEN_HINT, file=sys.stderr)
            return 1
        print(f"{len(files)} generated files up to date", file=sys.stderr)
        return 0
    changed = write(root, files)
    for path in changed:
        print(f"  {path}", file=sys.stderr)
    print(f"{len(files)} generated files under {root}, {len(changed)} changed", file=sys.stderr)
    return 0
