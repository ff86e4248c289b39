#!/usr/bin/env bash
# Type-check the TensorRT code against tensorrt-stubs (TensorRT 10.13) with basedpyright, in a
# separate virtualenv: the stubs install an empty 'tensorrt' package that must never reach the
# project's own environment. Also proves the check catches a removed API (execute_async_v2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${TRT_TYPECHECK_VENV:-$here/../.trt-typecheck-venv}
if [ ! -x "$venv/bin/basedpyright" ]; then
  python -m venv "$venv"
  "$venv/bin/pip" install -q --no-deps tensorrt-stubs==10.13.0.35.1
  "$venv/bin/pip" install -q basedpyright==1.40.2 numpy
fi
cd "$here/typecheck"
files=(../../export/tensorrt_engine.py ../../wsol_edge/backends/tensorrt_backend.py ../../wsol_edge/tensorrt_support.py ../../wsol_edge/cuda_runtime.py)
"$venv/bin/basedpyright" --project pyrightconfig.json --pythonpath "$venv/bin/python" "${files[@]}"
echo "TensorRT type check: clean"
if out=$("$venv/bin/basedpyright" --project pyrightconfig.json --pythonpath "$venv/bin/python" wrong_tensorrt_call.py 2>&1); then
  echo "TensorRT type check did NOT catch execute_async_v2: the check is toothless"; exit 1
fi
echo "$out" | grep -q "execute_async_v2" || { echo "unexpected failure:"; echo "$out"; exit 1; }
echo "TensorRT type check catches execute_async_v2: ok"
