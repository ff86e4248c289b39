"""Must FAIL the TensorRT type check: execute_async_v2 was removed in TensorRT 10.
.ci/typecheck_tensorrt.sh asserts that basedpyright reports it, proving the check has teeth."""
import tensorrt as trt


def run(context: trt.IExecutionContext, stream: int) -> None:
    context.execute_async_v2([0], stream)
