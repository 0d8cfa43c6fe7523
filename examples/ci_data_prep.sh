#!/usr/bin/env bash
# A CI data-prep job: grow the training split of a Cityscapes tree into an augmented set, check
# it, and leave a JSON summary (and, for generated samples, a preview) as artefacts.
#
#   CITYSCAPES=/data/cityscapes OUT=augmented bash examples/ci_data_prep.sh
#   CITYSCAPES=/data/cityscapes STRATEGY=generate MODEL=/models/city256.pt bash examples/ci_data_prep.sh
#
# STRATEGY=copy-paste (the default) is what the measurements support: `fgaug layouts --photos`,
# real-pixel copy-paste of whole objects, no model (+3.2 mIoU [+2.4, +3.9] at 20 real images
# against a well-trained real-only segmenter, toy world; docs/augmentation.md).
# STRATEGY=generate writes plain Full-Glow samples of every mask with MODEL, which is then required
# (MODEL=demo: the bundled toy-world model). In the same study plain samples cost 0 to -6 mIoU:
# measure them on your data with `fgaug evaluate augment` before training on them.
#
# Only the train split is grown: a segmenter trained on augmented validation masks would train on
# its own validation labels. Safe to rerun: finished images are skipped, so a cancelled job
# continues where it stopped with the same images. A rerun with other settings (another MODEL,
# TEMP, SEED, N...) stops with an error naming them (exit 1); OVERWRITE=1 replaces the tree.
# Exit codes are fgaug's: 2 for a wrong setting, 130 when the job is cancelled (SIGTERM or Ctrl-C
# to the job's process group, as a CI runner and `timeout` send them: fgaug stops and cleans up,
# then the script exits 130 rather than dying at once with 143). A signal to this script alone
# waits for the fgaug step under way to finish.
set -euo pipefail
trap 'exit 130' TERM INT   # bash runs it once the fgaug under way has stopped

CITYSCAPES=${CITYSCAPES:?set CITYSCAPES to a Cityscapes root (gtFine/, leftImg8bit/)}
STRATEGY=${STRATEGY:-copy-paste}
OUT=${OUT:-augmented}
OUT=${OUT%/}       # augmented/ names the same tree; its summary goes beside it, not into it
N=${N:-4}          # new images per training mask
SEED=${SEED:-0}
OVERWRITE=${OVERWRITE:-}
SPLIT=train
mkdir -p "$(dirname "$OUT")"   # the summary beside the tree is written before fgaug makes its folder
# What fgaug prints goes to this job's own file: a second job given the same OUT (which fgaug refuses
# while this one writes) must not empty or remove it. A success makes it OUT.summary.json; a refused,
# failed or cancelled run keeps it as OUT.failed.json ({"error": ...}, or exit 3's failures), and
# leaves the last success's OUT.summary.json as it was.
PART=$(mktemp "$OUT.summary.json.XXXXXX")
chmod 644 "$PART"
trap 'if [ -s "$PART" ]; then mv -f -- "$PART" "$OUT.failed.json"; else rm -f -- "$PART"; fi' EXIT

case "$STRATEGY" in
  copy-paste)
    fgaug layouts "$CITYSCAPES" --split "$SPLIT" --photos \
      --per-mask "$N" --paste 3 --flip-probability 0 --jitter-probability 0 --seed "$SEED" \
      --out "$OUT" \
      ${OVERWRITE:+--overwrite} \
      --json > "$PART"
    ;;
  generate)
    if [ -z "${MODEL:-}" ]; then
      echo "error: set MODEL to the checkpoint to generate with (demo: the bundled toy-world model)" >&2
      exit 2
    fi
    fgaug info "$MODEL"                 # fails with one clear line if the checkpoint is unusable
    fgaug generate "$CITYSCAPES/gtFine/$SPLIT" \
      --model "$MODEL" \
      --samples "$N" --temp "${TEMP:-0.8}" --seed "$SEED" \
      --out "$OUT" \
      --preview "$OUT/preview.png" \
      ${OVERWRITE:+--overwrite} \
      --json > "$PART"
    ;;
  *)
    echo "error: STRATEGY must be copy-paste or generate, not '$STRATEGY'" >&2
    exit 2
    ;;
esac

mv -f -- "$PART" "$OUT.summary.json"
rm -f -- "$OUT.failed.json"   # an earlier failure's record, which this run's success replaces
fgaug validate "$OUT" --source "$CITYSCAPES/gtFine/$SPLIT"
cat "$OUT.summary.json"
