#!/usr/bin/env bash
# A CI data-prep job: grow the validation masks of a Cityscapes tree into an augmented set,
# check it, and leave a preview and a JSON summary as artefacts.
#
#   CITYSCAPES=/data/cityscapes MODEL=/models/city256.pt OUT=augmented bash examples/ci_data_prep.sh
#
# Safe to rerun: `fgaug generate` skips samples that are already written, so a job that was
# cancelled half-way continues where it stopped and produces the same images.
set -euo pipefail

CITYSCAPES=${CITYSCAPES:?set CITYSCAPES to a Cityscapes root (gtFine/, leftImg8bit/)}
MODEL=${MODEL:-}                      # empty: $FGAUG_MODEL, newest ./runs, or the bundled demo model
OUT=${OUT:-augmented}
SPLIT=${SPLIT:-val}
N=${N:-5}
TEMP=${TEMP:-0.8}
SEED=${SEED:-0}

model_args=()
if [[ -n "$MODEL" ]]; then
  fgaug info "$MODEL"                 # fails with one clear line if the checkpoint is unusable
  model_args=(--model "$MODEL")
fi

fgaug generate \
  --masks "$CITYSCAPES/gtFine/$SPLIT" \
  --n "$N" --temp "$TEMP" --seed "$SEED" \
  "${model_args[@]}" \
  --out "$OUT" \
  --preview "$OUT/preview.png" \
  --json > "$OUT.summary.json"

fgaug validate "$OUT" --source "$CITYSCAPES/gtFine/$SPLIT"
cat "$OUT.summary.json"
