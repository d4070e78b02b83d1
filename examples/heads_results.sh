#!/usr/bin/env bash
# Reproduce the README tables of `mmprep train-head` (alignment heads section).
#   ./examples/heads_results.sh [OUT_DIR]        default OUT_DIR: demo/heads
# Set SEEDS="0" for a quicker single-seed run, SCALING=1 to add the 50k-clip rows.
set -euo pipefail
OUT=${1:-demo/heads}
SEEDS=${SEEDS:-"0 1 2"}
MMPREP=${MMPREP:-.venv/bin/mmprep}
PYTHON=${PYTHON:-"${MMPREP%mmprep}python"}
mkdir -p "$OUT"
FEATS="$OUT/features.h5"
[ -f "$FEATS" ] || $MMPREP sample-features "$FEATS"

train() {  # name, then train-head options
  local name=$1; shift
  [ -f "$OUT/runs/$name/metrics.json" ] || \
    $MMPREP train-head "$FEATS" -o "$OUT/runs/$name" --overwrite -q "$@" > /dev/null
}
for seed in $SEEDS; do
  train "gram-s$seed" --loss gram --seed "$seed"
  train "pmrl-s$seed" --loss pmrl --seed "$seed"
  train "infonce-s$seed" --loss infonce --seed "$seed"
done
train gram-pure-s0 --loss gram --pure
train pmrl-pure-s0 --loss pmrl --pure
train pmrl-pure-tau0.1-s0 --loss pmrl --pure --tau-sv 0.1
train infonce-allpairs-s0 --loss infonce --pairs all
# the sign flip of the pure objectives shows with the wide MLP heads
train gram-pure-mlp-s0 --loss gram --pure --head mlp --epochs 30
train pmrl-pure-mlp-tau0.1-s0 --loss pmrl --pure --head mlp --epochs 30 --tau-sv 0.1
for run in gram-pure-s0 pmrl-pure-s0 pmrl-pure-tau0.1-s0 gram-pure-mlp-s0 \
           pmrl-pure-mlp-tau0.1-s0; do
  $MMPREP eval-head "$OUT/runs/$run" "$FEATS" --pair-score volume --json \
    -o "$OUT/runs/$run/eval-volume.json" > /dev/null
done

if [ "${SCALING:-0}" = 1 ]; then
  BIG="$OUT/features-50k.h5"
  [ -f "$BIG" ] || $MMPREP sample-features "$BIG" --n 52000
  for loss in gram pmrl infonce; do
    [ -f "$OUT/runs-50k/$loss-s0/metrics.json" ] || \
      $MMPREP train-head "$BIG" --loss "$loss" -o "$OUT/runs-50k/$loss-s0" --overwrite -q > /dev/null
  done
  [ -f "$OUT/runs-50k-mlp/pmrl-mlp-s0/metrics.json" ] || \
    $MMPREP train-head "$BIG" --loss pmrl --head mlp -o "$OUT/runs-50k-mlp/pmrl-mlp-s0" \
      --overwrite -q > /dev/null
fi
"$PYTHON" "$(dirname "$0")/heads_table.py" "$OUT"/runs*/
