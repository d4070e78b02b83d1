#!/usr/bin/env bash
# Extract with Ray: one Ray task per shard, retried if its node dies.
#
# Expected input layout: $MANIFEST and the media it names readable from every Ray node
# (a shared file system, or fsspec URLs such as s3://bucket/clip.mp4 in the manifest),
# and $OUT writable from every node (shared folder or an fsspec URL like s3://bucket/shards).
#
# On a cluster:   ray start --head (then `ray start --address=HEAD:6379` on the workers)
#                 RAY_ADDRESS=auto MANIFEST=... OUT=... examples/ray_extract.sh
# On one machine: MANIFEST=... OUT=... examples/ray_extract.sh   (starts a local Ray)
#
# Needs the extra: pip install 'mmprep[ray]'
set -euo pipefail

MANIFEST=${MANIFEST:?set MANIFEST to the manifest path or URL}
OUT=${OUT:?set OUT to the output folder or URL}
MMPREP=${MMPREP:-mmprep}
CPUS_PER_TASK=${CPUS_PER_TASK:-2}

"$MMPREP" extract "$MANIFEST" -o "$OUT" --pipeline "${PIPELINE:-gram-vast}" \
    --executor ray ${RAY_ADDRESS:+--ray-address "$RAY_ADDRESS"} \
    --ray-cpus "$CPUS_PER_TASK" --ray-retries 3 -q ${EXTRA_ARGS:-}
"$MMPREP" inspect "$OUT"
