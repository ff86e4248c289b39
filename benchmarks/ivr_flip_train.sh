#!/bin/bash
# The IVR percentile chosen again under flip on the 1,500 boxed training images, for the best localizer's
# three seeds (METHODS.md, "P chosen under flip"). Run from the repository root; CKPT0..2 default to the
# run folders of the table's commands.
set -euo pipefail
DATA=${DATA:-../shared/data/cub50}
SUFFIX=${SUFFIX-_avx512}  # which machine wrote the records (the committed ones: the AVX-512 Xeon)
CKPTS=("${CKPT0:-runs/methods_12ep/icl_background/bg_drop_only/checkpoint.pt}"
       "${CKPT1:-runs/methods_12ep_seed1/icl_background/bg_drop_only/checkpoint.pt}"
       "${CKPT2:-runs/methods_12ep_seed2/icl_background/bg_drop_only/checkpoint.pt}")
mkdir -p runs/ivr_flip_train
for S in 0 1 2; do
  for P in 0.5 0.55 0.6 0.65 0.7; do
    python -m wsol_edge.evaluate --checkpoint "${CKPTS[$S]}" --dataset cub --data-root "$DATA" --split train \
      --no-progress --threads 2 --device cpu --workers 0 --ivr-percentile "$P" --tta flip \
      --output "benchmarks/results/cub50_ivr_12ep_icl_bg_drop_only_seed${S}_train_flip_p${P}${SUFFIX}.json" \
      --per-image "runs/ivr_flip_train/seed${S}_train_flip_p${P}.npz"
  done
done
