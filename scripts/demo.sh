#!/usr/bin/env bash
# `make demo`: the whole pipeline on CPU on an embedded synthetic UCF-101 sample.
# On a GPU node, the same commands with `--model microsoft/Phi-3.5-vision-instruct` are the real job.
set -euo pipefail
OUT="${DEMO_DIR:-demo-output}"
rm -rf "$OUT"
export PYTHONHASHSEED=0

echo "== 1/6 sample: a synthetic UCF-101 in the official layout"
phi3v-data sample ucf101 "$OUT/raw/UCF-101"
echo "== 2/6 convert: frame sampling into conversations JSONL"
phi3v-data convert ucf101 "$OUT/raw/UCF-101" "$OUT/data" --frames 4 --val-groups 1
echo "== 3/6 validate"
phi3v-data validate "$OUT/data/ucf101_train.jsonl" "$OUT/data/ucf101_val.jsonl" --num-crops 1 --max-length 4096
echo "== 4/6 stats"
phi3v-data stats "$OUT/data/ucf101_train.jsonl" --num-crops 1
echo "== 5/6 train: tiny model, LoRA, CPU"
phi3v-train run --model tiny --mode lora --train-file "$OUT/data/ucf101_train.jsonl" \
  --eval-file "$OUT/data/ucf101_val.jsonl" --output-dir "$OUT/run" --num-crops 1 --max-steps 40 --seed 0
echo "== 6/6 evaluate"
phi3v-train eval --model "$OUT/run" --data "$OUT/data/ucf101_val.jsonl" --num-crops 1
