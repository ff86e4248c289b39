#!/usr/bin/env bash
# Everything the CUDA kernels need a GPU for, in one call on a lent GPU machine (the device tool
# runs it from the repository root; its files come back from $OUT, 8 at most):
#   the GPU parity suite (tests/test_kernels.py: thousands of random and adversarial CAMs against
#   the CPU reference, fused CAM against NumPy), compute-sanitizer memcheck / racecheck / synccheck
#   on the small parity tests, and the kernel benchmark divided by this repo's committed CPU figures.
# Usage: the device tool's run with command 'bash benchmarks/gpu_kernels_session.sh' and carry
# ['runs/gpu_inputs'] (real CAMs, optional; see below). Not yet run: no GPU has been lent so far.
set -uo pipefail
out=${OUT:-runs/gpu_kernels_session}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
py=python3
{ nvidia-smi; $py -c "import sys, numpy, cv2, cupy; print(sys.version, numpy.__version__, cv2.__version__, cupy.__version__)"; } \
  >"$out/machine.txt" 2>&1
# No package index there: install the checkout alone (its dependencies are in the image), or, if
# that fails, put the two installed-as packages where Python finds them.
if ! $py -m pip install -q --no-deps --no-build-isolation -e . >>"$out/machine.txt" 2>&1; then
  ln -sfn ../kernels wsol_edge/kernels && ln -sfn ../export wsol_edge/export
  export PYTHONPATH=$PWD
fi
# real CAMs, when carried: python -m benchmarks.cam_cases --model M.onnx --data-root DATA --output runs/gpu_inputs/real_cams.npz
[ -f runs/gpu_inputs/real_cams.npz ] && export WSOL_EDGE_REAL_CAMS=$PWD/runs/gpu_inputs/real_cams.npz
$py -m pytest -q -rs tests/test_kernels.py >"$out/parity.log" 2>&1
echo "parity suite exit $?" | tee -a "$out/parity.log"
small="fused_cam or host_round_trip or (adversarial and 224)"
for tool in memcheck racecheck synccheck; do
  compute-sanitizer --tool "$tool" --error-exitcode 9 $py -m pytest -q -x tests/test_kernels.py -k "$small" \
    >"$out/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool exit $?" | tee -a "$out/sanitizer_$tool.log"
done
$py -m benchmarks.kernels --cpu-reference benchmarks/results/kernels_cpu_reference.json \
  --output "$out/kernels_gpu.json" 2>&1 | tee "$out/benchmark.log"
