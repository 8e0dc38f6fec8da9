#!/usr/bin/env bash
# The project's checks: lint, types, tests (the default run: fast, no GPU, no slow models).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m ruff check omnirm tests benchmarks scripts
"$PY" -m ruff format --check omnirm tests benchmarks scripts
"$PY" -m mypy
"$PY" -m pytest -q "$@"
