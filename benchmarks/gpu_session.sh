#!/usr/bin/env bash
# Everything this project needs a GPU for, in one call on a lent GPU machine (the device tool runs
# it from the repository root; the files it writes to $OUT come back, 8 at most):
#   1. the kernels' GPU parity suite (tests/test_kernels.py: thousands of random and adversarial
#      CAMs, and real ones when carried, against the CPU reference; fused CAM against NumPy);
#   2. compute-sanitizer memcheck (with leak check), racecheck and synccheck on the small parity tests;
#   3. the kernel benchmark, divided by this repo's committed CPU-reference figures;
#   4. when a checkpoint and its ONNX export are carried: the speed harness with PyTorch on the GPU
#      (FP32, FP16) beside PyTorch and ONNX Runtime on the CPU, in one interleaved run.
# Inputs to carry (the device tool's carry: ["runs/gpu_inputs"]), all optional:
#   runs/gpu_inputs/real_cams.npz   python -m benchmarks.cam_cases --model M.onnx --data-root DATA --output ...
#   runs/gpu_inputs/model.pt, runs/gpu_inputs/model.onnx   a checkpoint and its export
# Stages to run (default: all): bash benchmarks/gpu_session.sh [parity] [sanitizer] [kernels] [profile] [speed];
# "parity sanitizer kernels profile" took about 3 minutes on an H100, "speed" about 2 more.
# Writes machine.txt, kernel_checks.json (parity + sanitizer outcome), sanitizer.log, kernels_gpu.json,
# ncu.csv and gpu_speed.{json,csv,png}: 8 files, the most a device call brings back.
# The copy of the tree on a device machine may carry an older .git: name the commit sent with
# WSOL_EDGE_COMMIT=<sha> so that the records say which code ran.
set -uo pipefail
stages=${*:-parity sanitizer kernels profile speed}
want() { [[ " $stages " == *" $1 "* ]]; }
out=${OUT:-runs/gpu_session}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=python3
in=runs/gpu_inputs
{ nvidia-smi; $py -c "import sys, numpy, cv2, cupy, torch; print(sys.version, numpy.__version__, cv2.__version__, cupy.__version__, torch.__version__)"
  $py -m pip list 2>/dev/null | grep -iE "cuda|nvrtc|onnx|opencv|pytest"; } >"$out/machine.txt" 2>&1
# No package index there: install the checkout alone (its dependencies are in the image), or, if
# that fails, put the two installed-as packages where Python finds them.
if ! $py -m pip install -q --no-deps --no-build-isolation -e . >>"$out/machine.txt" 2>&1; then
  ln -sfn ../kernels wsol_edge/kernels && ln -sfn ../export wsol_edge/export
  export PYTHONPATH=$PWD
fi
[ -f $in/real_cams.npz ] && export WSOL_EDGE_REAL_CAMS=$PWD/$in/real_cams.npz
# Fail fast, with the error in the log, when the kernels cannot even load.
$py -c "from wsol_edge.kernels.loader import BoxKernels; k = BoxKernels(); print('kernels loaded for sm_' + k.arch)" \
  2>&1 | tee -a "$out/machine.txt"
# The CPU reference dominates the parity suite's time: spread it over the cores when xdist is there.
xdist=$($py -c "import xdist" 2>/dev/null && echo "-n 8")
if want parity; then
  timeout 300 $py -m pytest -q -rs $xdist --junitxml=/tmp/parity.xml tests/test_kernels.py >/tmp/parity.log 2>&1
  echo "parity suite exit $?" | tee -a /tmp/parity.log
  tail -5 /tmp/parity.log
fi
small="fused_cam or host_round_trip or graph or (adversarial and 224)"
for tool in memcheck racecheck synccheck; do
  want sanitizer || break
  echo "=== compute-sanitizer --tool $tool" >>"$out/sanitizer.log"
  # cuda-python probes driver entry points that may not exist: those API errors are not the kernels'
  extra=$([ "$tool" = memcheck ] && echo "--report-api-errors no --leak-check full")
  timeout 120 compute-sanitizer --tool "$tool" $extra --error-exitcode 9 $py -m pytest -q -x -p no:cacheprovider tests/test_kernels.py \
    -k "$small" >>"$out/sanitizer.log" 2>&1
  echo "compute-sanitizer $tool exit $?" | tee -a "$out/sanitizer.log"
done
if [ -f /tmp/parity.xml ]; then
  $py -m benchmarks.kernel_checks --junit /tmp/parity.xml --output "$out/kernel_checks.json" \
    $([ -f "$out/sanitizer.log" ] && echo --sanitizer-log "$out/sanitizer.log")
fi
if want kernels; then
  timeout 240 $py -m benchmarks.kernels --cpu-reference benchmarks/results/kernels_cpu_reference.json --output "$out/kernels_gpu.json"
  echo "kernel benchmark exit $?"
fi
if want profile; then
  # per-kernel GPU time of the benchmark's batch-64, 224^2 case (ncu serialises launches: durations only)
  timeout 180 ncu --csv --metrics gpu__time_duration.sum $py -m benchmarks.kernels --batches 64 --sizes 224 \
    --repeats 1 --output /tmp/ncu_kernels.json >"$out/ncu.csv" 2>/tmp/ncu.log
  echo "ncu exit $?"
fi
if want speed && [ -f $in/model.pt ] && [ -f $in/model.onnx ]; then
  # ONNX Runtime there is the CPU build: its CUDA rows need onnxruntime-gpu carried as a wheel
  timeout 420 $py -m benchmarks speed --models $in/model.pt $in/model.pt@cuda $in/model.pt@cuda-fp16 $in/model.onnx \
    --images wsol_edge/samples/images --batch 1 8 --rounds 3 --repeats 20 --output "$out/gpu_speed.json"
  echo "speed harness exit $?"
fi
