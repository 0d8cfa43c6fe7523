#!/usr/bin/env bash
# A CI data-prep job: grow the training masks of a Cityscapes tree into an augmented set,
# check it, and leave a preview and a JSON summary as artefacts.
#
#   CITYSCAPES=/data/cityscapes MODEL=/models/city256.pt OUT=augmented bash examples/ci_data_prep.sh
#
# MODEL is required: the checkpoint to generate with (MODEL=demo: the bundled toy-world model).
# Safe to rerun: `fgaug generate` skips samples that are already written, so a job that was
# cancelled half-way continues where it stopped and produces the same images. A rerun with other
# settings (another MODEL, TEMP, SEED, N...) stops with an error naming them (exit 1) instead of
# keeping the old images; OVERWRITE=1 replaces the tree.
set -euo pipefail

CITYSCAPES=${CITYSCAPES:?set CITYSCAPES to a Cityscapes root (gtFine/, leftImg8bit/)}
MODEL=${MODEL:?set MODEL to the checkpoint to generate with (demo: the bundled toy-world model)}
OUT=${OUT:-augmented}
SPLIT=${SPLIT:-train}
N=${N:-5}
TEMP=${TEMP:-0.8}
SEED=${SEED:-0}
OVERWRITE=${OVERWRITE:-}

fgaug info "$MODEL"                   # fails with one clear line if the checkpoint is unusable

fgaug generate \
  --masks "$CITYSCAPES/gtFine/$SPLIT" \
  --model "$MODEL" \
  --n "$N" --temp "$TEMP" --seed "$SEED" \
  --out "$OUT" \
  --preview "$OUT/preview.png" \
  ${OVERWRITE:+--overwrite} \
  --json > "$OUT.summary.json"

fgaug validate "$OUT" --source "$CITYSCAPES/gtFine/$SPLIT"
cat "$OUT.summary.json"
