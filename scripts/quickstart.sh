#!/usr/bin/env bash
# Install omnirm, then run the data pipeline end to end on real human-preference data:
# convert Vicuna80 → validate → statistics → train/validation/test split, into quickstart-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh

DATA=${OMNIRM_DATA:-../shared/data}/prd-vicuna80
[ -d "$DATA" ] || DATA=examples/prd-vicuna80-excerpt
OUT=${OUT:-quickstart-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
omnirm() { "$PY" -m omnirm "$@"; }

echo "== convert $DATA" >&2
omnirm data convert --from prd-vicuna80 "$DATA" -o "$OUT/vicuna80.jsonl"
echo "== validate" >&2
omnirm data validate "$OUT/vicuna80.jsonl"
echo "== stats" >&2
omnirm data stats "$OUT/vicuna80.jsonl"
echo "== split" >&2
omnirm data split "$OUT/vicuna80.jsonl" --ratios 0.8,0.1,0.1 --seed 0 -d "$OUT/splits" --force
echo "done: $OUT/vicuna80.jsonl and $OUT/splits/{train,validation,test}.jsonl" >&2
