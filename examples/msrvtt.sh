#!/usr/bin/env bash
# MSR-VTT-style dataset -> WebDataset shards with the GRAM/VAST preprocessing.
#
# Expected input layout ($DATA):
#   $DATA/videos/<video_id>.mp4
#   $DATA/annotation.json   {"videos": [{"video_id": "video0", "split": "train"}, ...],
#                            "sentences": [{"video_id": "video0", "caption": "..."}, ...]}
#                           (the layout of MSR-VTT's train_val_videodatainfo.json)
#
# The caption JSON becomes a manifest with one row per sentence; rows with the same key
# are merged by mmprep, so each clip keeps all its captions. The same one-liner with jq:
#   jq -c '(.videos | map({(.video_id): .split}) | add) as $s | .sentences[]
#          | {key: .video_id, video: "videos/\(.video_id).mp4", caption, split: $s[.video_id]}'
#
# Usage: DATA=/data/msrvtt OUT=/data/msrvtt/shards examples/msrvtt.sh
set -euo pipefail
DATA=${DATA:?set DATA to the dataset folder}
OUT=${OUT:-$DATA/shards}
MMPREP=${MMPREP:-mmprep}
PYTHON=${PYTHON:-python3}

"$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
split = {v["video_id"]: v.get("split", "") for v in d.get("videos", [])}
for s in d["sentences"]:
    vid = s["video_id"]
    print(json.dumps({"key": vid, "video": f"videos/{vid}.mp4", "caption": s["caption"],
                      "split": split.get(vid, "")}))
' "$DATA/annotation.json" > "$DATA/manifest.jsonl"

"$MMPREP" extract "$DATA/manifest.jsonl" -o "$OUT" --pipeline "${PIPELINE:-gram-vast}" \
    --max-failure-rate 0.02 -q ${EXTRA_ARGS:-}
"$MMPREP" inspect "$OUT"
