#!/usr/bin/env bash
# Quickstart on built-in data: synthetic clips -> WebDataset shards -> inspection.
# Run from the repository root through `make quickstart` (which sets up .venv).
set -euo pipefail
MMPREP=${MMPREP:-.venv/bin/mmprep}
OUT=${OUT:-demo}
N=${N:-32}

$MMPREP sample-data "$OUT/raw" --n "$N"
$MMPREP extract "$OUT/raw/manifest.jsonl" -o "$OUT/shards" --pipeline gram-vast --shard-size 16
echo
echo "Shards: $(ls "$OUT"/shards/*.tar | tr '\n' ' ')"
"${MMPREP%mmprep}python" - "$OUT/shards" <<'PY'
import sys, webdataset as wds
from mmprep.shards import shard_files
ds = wds.WebDataset(shard_files(sys.argv[1]), shardshuffle=False).decode("rgb8")
sample = next(iter(ds))
print("first sample:", sample["__key__"])
for name, value in sorted(sample.items()):
    if name.startswith("__"):
        continue
    shape = getattr(value, "shape", None)
    print(f"  {name:<10} {type(value).__name__:<8} {shape if shape is not None else str(value)[:60]}")
PY
