#!/usr/bin/env bash
# Every committed cub50/CPU figure, from the trained checkpoint, in one go (about 40 min on 2 cores).
# Needs ../shared/data and runs/cub50_cam_lite0/checkpoint.pt (python -m wsol_edge.train --config configs/cub50_cam_lite0.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
C=runs/cub50_cam_lite0/checkpoint.pt
D=../shared/data/cub50
R=benchmarks/results
python -m wsol_edge.evaluate --imagenet-baseline --dataset cub --data-root $D --split test --no-progress \
    --output $R/cub50_imagenet_cam_lite0.json --overlays runs/cub50_imagenet_overlays
python -m wsol_edge.evaluate --checkpoint $C --dataset cub --data-root $D --split test --no-progress \
    --output $R/cub50_cam_lite0.json --overlays runs/cub50_cam_lite0/overlays
python -m wsol_edge.export regression --checkpoint $C --workdir runs/cub50_export --dataset cub --data-root $D \
    --split test --calib-dataset cub --calib-data-root $D --calib-split train --method entropy --num-images 512 \
    --output $R/cub50_cam_lite0_precisions.json
python -m wsol_edge.export parity --checkpoint $C --onnx runs/cub50_export/model.fp32.onnx --dataset cub \
    --data-root $D --split test --output $R/cub50_parity.json
# deployable models (no cams_all output) for speed. The calibration method changes the scales,
# not the graph, so the speed models use the quicker MinMax on 128 images.
python -m wsol_edge.export onnx --checkpoint $C --output runs/cub50_deploy/model.onnx --threshold-dataset cub \
    --threshold-data-root $D --threshold-split train
python -m wsol_edge.export int8 --onnx runs/cub50_deploy/model.onnx --output runs/cub50_deploy/model.int8.onnx \
    --calib-dataset cub --calib-data-root $D --calib-split train --method minmax --num-images 128
python -m wsol_edge.export int8 --onnx runs/cub50_deploy/model.onnx --output runs/cub50_deploy/model.int8u8.onnx \
    --calib-dataset cub --calib-data-root $D --calib-split train --method minmax --num-images 128 \
    --activation-type uint8 --reduce-range
python -m benchmarks profile --onnx runs/cub50_deploy/model.onnx runs/cub50_deploy/model.int8.onnx \
    runs/cub50_deploy/model.int8u8.onnx --output $R/cpu_ort_profile_lite0.json
python -m benchmarks speed --models $C runs/cub50_deploy/model.onnx runs/cub50_deploy/model.int8.onnx \
    runs/cub50_deploy/model.int8u8.onnx --images $D/images --batch 1 8 --rounds 5 --repeats 20 --output $R/cpu_speed_lite0.json
python -m benchmarks.rule_difference --model runs/cub50_deploy/model.onnx --dataset cub --data-root $D \
    --split test --output $R/cub50_box_rule_difference.json
python -m benchmarks.int8_saturation --onnx runs/cub50_export/model.fp32.onnx --data-root $D --max-images 400 \
    --output $R/cub50_int8_saturation.json
# 10,000-frame soak of the runtime pipeline on real photos (memory must hold flat)
python -m wsol_edge.quickstart --out runs/quickstart
python -m benchmarks.soak --model runs/quickstart/imagenet_cam_lite0.onnx --images ../shared/data/raccoon/images \
    --frames 10000 --batch 8 --output $R/soak_10000_frames.json
