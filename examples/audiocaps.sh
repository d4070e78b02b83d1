#!/usr/bin/env bash
# AudioCaps-style audio-only dataset -> WebDataset shards of log-mel features + captions.
#
# Expected input layout ($DATA):
#   $DATA/audio/<youtube_id>.wav            (any format FFmpeg reads: .wav, .flac, .mp3, ...)
#   $DATA/captions.csv                      audiocap_id,youtube_id,start_time,caption
#                                           (AudioCaps' train.csv / val.csv / test.csv)
#
# Clips with several captions (AudioCaps val/test have five) are grouped by youtube_id.
# Audio: 16 kHz Kaldi fbank, 64 bins, one 1024-frame (10.24 s) slice, BEATs statistics.
#
# Usage: DATA=/data/audiocaps OUT=/data/audiocaps/shards examples/audiocaps.sh
set -euo pipefail
DATA=${DATA:?set DATA to the dataset folder}
OUT=${OUT:-$DATA/shards}
MMPREP=${MMPREP:-mmprep}
PYTHON=${PYTHON:-python3}
EXT=${EXT:-wav}

"$PYTHON" -c '
import csv, json, sys
for row in csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")):
    yid = row["youtube_id"]
    print(json.dumps({"key": yid, "video": f"audio/{yid}.{sys.argv[2]}",
                      "caption": row["caption"], "audiocap_id": row.get("audiocap_id")}))
' "$DATA/captions.csv" "$EXT" > "$DATA/manifest.jsonl"

"$MMPREP" extract "$DATA/manifest.jsonl" -o "$OUT" --pipeline gram-vast --no-video \
    --missing-audio error -q ${EXTRA_ARGS:-}
"$MMPREP" inspect "$OUT"
