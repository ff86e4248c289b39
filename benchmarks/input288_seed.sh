#!/bin/bash
# The best localizer trained at 288 and served at the protocol's 224, for one seed (METHODS.md, "Trained at 288,
# served at the protocol's 224"): train (skipped when the checkpoint exists), score test plain and with flip +
# IVR 0.6, and pair each against the same seed's 224 rows. Usage: benchmarks/input288_seed.sh SEED [THREADS].
# Run from the repository root. Seed 0's run folder is runs/input288 (it came first), the others runs/input288_seedN.
set -euo pipefail
SEED=${1:?usage: benchmarks/input288_seed.sh SEED [THREADS]}
THREADS=${2:-2}
DATA=${DATA:-../shared/data/cub50}
SUFFIX=${SUFFIX-_avx512}  # which machine wrote the records (the committed ones: the AVX-512 Xeon)
if [ "$SEED" = 0 ]; then RUN=runs/input288; M224=runs/methods_12ep; else RUN=runs/input288_seed$SEED; M224=runs/methods_12ep_seed$SEED; fi
# The same seed's 224 rows: single-pass maps from the methods table, flip maps from the IVR study.
REF_PLAIN=${REF_PLAIN:-$M224/icl_background/bg_drop_only/per_image.npz}
REF_FLIP_IVR=${REF_FLIP_IVR:-runs/ivr_study_avx512/icl_bg_drop_only_seed${SEED}_flip.npz}
CK=$RUN/bg_drop_only/checkpoint.pt
OUT=benchmarks/results/cub50_input288_12ep_icl_bg_drop_only_seed${SEED}
mkdir -p "$RUN"
if [ ! -f "$CK" ]; then
  python -m wsol_edge.train --config configs/cub50_cam_lite0.yaml --data-root "$DATA" --method icl \
    --icl-attention channel_mean --icl-drop-probs 0 1 0 --epochs 12 --seed "$SEED" --input-size 288 --resize 329 \
    --out "$RUN/bg_drop_only" --no-progress --threads "$THREADS" --device cpu --workers 0 --precise-bn 30
fi
common=(--checkpoint "$CK" --dataset cub --data-root "$DATA" --split test --no-progress --threads "$THREADS"
        --device cpu --workers 0 --input-size 224 --tta-sizes 288)
python -m wsol_edge.evaluate "${common[@]}" --output "${OUT}${SUFFIX}.json" --per-image "$RUN/test_plain.npz"
python -m wsol_edge.evaluate "${common[@]}" --tta flip --ivr-percentile 0.6 --output "${OUT}_flip_ivr0.6${SUFFIX}.json" \
  --per-image "$RUN/test_flip_ivr0.6.npz"
python -m benchmarks.paired_bootstrap --reference "input224=$REF_PLAIN" --compare "input288=$RUN/test_plain.npz" \
  --resamples 2000 --output "${OUT}${SUFFIX}_bootstrap.json"
python -m benchmarks.paired_bootstrap --reference "input224_flip_ivr0.6=$REF_FLIP_IVR" \
  --compare "input288_flip_ivr0.6=$RUN/test_flip_ivr0.6.npz" --resamples 2000 \
  --output "${OUT}_flip_ivr0.6${SUFFIX}_bootstrap.json"
