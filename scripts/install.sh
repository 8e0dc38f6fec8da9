#!/usr/bin/env bash
# Install omnirm with its development tools into the current Python environment.
# torch and torchvision are pinned to the CPU-runnable pair this project is tested with; on a GPU
# machine any recent CUDA build of torch works too (install it first, then this skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
"$PY" -m pip install -q -e ".[dev]"
