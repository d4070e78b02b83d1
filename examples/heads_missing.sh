#!/usr/bin/env bash
# Reproduce the README figures on missing modalities, the papers' recipes and paired
# intervals (alignment heads section).
#   ./examples/heads_missing.sh [OUT_DIR]        default OUT_DIR: demo/heads-missing
# Set SEEDS="0" for a quicker single-seed run. About an hour on 2 busy CPU cores
# (one torch thread per run, THREADS=1: on a shared machine more threads were slower).
set -euo pipefail
OUT=${1:-demo/heads-missing}
SEEDS=${SEEDS:-"0 1 2"}
MMPREP=${MMPREP:-.venv/bin/mmprep}
PYTHON=${PYTHON:-"${MMPREP%mmprep}python"}
mkdir -p "$OUT"

gen() {  # name, then sample-features options
  local name=$1; shift
  [ -f "$OUT/$name.h5" ] || $MMPREP sample-features "$OUT/$name.h5" "$@" > /dev/null
}
# the default generator, and a second setting with other noise levels and seed
SECOND=(--seed 1 --set "obs_noise={video: 0.2, audio: 0.8, text: 0.5}"
        --set "noise={video: 0.8, audio: 1.5, text: 0.8}")
gen complete
gen missing15 --missing-audio 0.15            # same clips, 15% of them without audio
gen second "${SECOND[@]}"
gen second-missing15 "${SECOND[@]}" --missing-audio 0.15

train() {  # features name, run name, then train-head options
  local feats=$1 name=$2; shift 2
  [ -f "$OUT/runs-$feats/$name/metrics.json" ] || \
    $MMPREP train-head "$OUT/$feats.h5" -o "$OUT/runs-$feats/$name" --overwrite -q \
      --threads "${THREADS:-1}" "$@" > /dev/null
}
for seed in $SEEDS; do  # the defaults, every seed first
  for loss in gram pmrl infonce; do
    train complete "$loss-s$seed" --loss "$loss" --seed "$seed"
    train missing15 "$loss-s$seed" --loss "$loss" --seed "$seed"
  done
done
for loss in gram infonce; do  # the second generator setting
  train second "$loss-s0" --loss "$loss"
  train second-missing15 "$loss-s0" --loss "$loss"
done
train complete gram-paper-s0 --recipe gram-paper
train complete pmrl-paper-s0 --recipe pmrl-paper
train missing15 gram-complete-only-s0 --loss gram --complete-only
"$PYTHON" "$(dirname "$0")/heads_missing_table.py" "$OUT"
