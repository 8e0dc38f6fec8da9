#!/usr/bin/env bash
# Regenerate the shell completions (completions/) and man pages (man/man1/) from the CLI.
# Run it after changing a command, an option or a help text; tests/cli/test_docgen.py fails
# until the committed files match the command line again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m omnirm.cli.docgen --write "$@"
