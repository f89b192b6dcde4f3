#!/usr/bin/env bash
# `make demo`: the whole pipeline on CPU on an embedded synthetic UCF-101 sample, ending with the
# held-out accuracy of the untrained and the trained tiny model on the same validation records.
# On a GPU node, the same commands with `--model microsoft/Phi-3.5-vision-instruct` are the real job.
set -euo pipefail
OUT="${DEMO_DIR:-demo-output}"
rm -rf "$OUT"
export PYTHONHASHSEED=0
STEPS="${DEMO_STEPS:-200}"

echo "== 1/7 sample: a synthetic UCF-101 in the official layout (a colour, stripes and a motion per class)"
phi3v-data sample ucf101 "$OUT/raw/UCF-101"
echo "== 2/7 convert: frame sampling into conversations JSONL"
phi3v-data convert ucf101 "$OUT/raw/UCF-101" "$OUT/data" --frames 1 --val-groups 1
echo "== 3/7 validate"
phi3v-data validate "$OUT/data/ucf101_train.jsonl" "$OUT/data/ucf101_val.jsonl" --num-crops 1 --max-length 4096
echo "== 4/7 stats"
phi3v-data stats "$OUT/data/ucf101_train.jsonl" --num-crops 1
echo "== 5/7 evaluate the untrained tiny model (random weights, seed 0) on the validation clips"
phi3v-train eval --model tiny --data "$OUT/data/ucf101_val.jsonl" --num-crops 1 --constrained \
  --output "$OUT/eval_untrained"
echo "== 6/7 train: the same tiny model, all weights, CPU"
phi3v-train run --model tiny --mode full --train-file "$OUT/data/ucf101_train.jsonl" \
  --eval-file "$OUT/data/ucf101_val.jsonl" --output-dir "$OUT/run" --num-crops 1 --max-steps "$STEPS" --seed 0 \
  --no-gradient-checkpointing
echo "== 7/7 evaluate the trained model on the same clips"
phi3v-train eval --model "$OUT/run" --data "$OUT/data/ucf101_val.jsonl" --num-crops 1 --constrained \
  --output "$OUT/eval_trained"

before=$(phi3v-train score "$OUT/eval_untrained/predictions.jsonl" --metric accuracy --format json)
after=$(phi3v-train score "$OUT/eval_trained/predictions.jsonl" --metric accuracy --format json)
records=$(grep -c . "$OUT/data/ucf101_val.jsonl")
echo
echo "Held-out validation accuracy ($records clips of unseen groups, 3 classes, chance 0.3333; answer = most probable label)"
printf '  %-24s %.4f\n' "untrained tiny model" "${before//[^0-9.]/}" "after $STEPS steps" "${after//[^0-9.]/}"
