"""The Triton client backend (triton://HOST:PORT/NAME) against a stand-in server.

No Triton server can run here, so the stand-in speaks Triton's own gRPC service (tritonclient's
generated servicer and messages) and serves a repository written by ``export triton``: it reads that
config.pbtxt, answers readiness and config requests from it, refuses batches above its max_batch_size as
Triton does, returns each output in the shape the config declares (``dims``, not ``reshape``), and runs
the model with ONNX Runtime. What it cannot show is Triton's own scheduling and backends.
"""
import json
from concurrent import futures

import cv2
import numpy as np
import pytest

from wsol_edge import run
from wsol_edge.backends import BackendError, load_backend
from wsol_edge.runtime.localizer import Localizer

export_main = pytest.importorskip("wsol_edge.export.__main__").main
grpc = pytest.importorskip("grpc", reason="tritonclient[grpc] (the dev extra) is needed for the Triton backend")
pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (the dev extra) is needed for the Triton backend")
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc  # noqa: E402

DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32"}


class StandInTriton(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, repository):
        self.models = {}
        for config_file in repository.glob("*/config.pbtxt"):
            config = text_format.Parse(config_file.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())
            self.models[config.name] = (config, load_backend(config_file.parent / "1" / "model.onnx"))
        self.batches = []

    def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=request.name in self.models)

    def ModelConfig(self, request, context):
        if request.name not in self.models:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{request.name}' is not found")
        return service_pb2.ModelConfigResponse(config=self.models[request.name][0])

    def ModelInfer(self, request, context):
        config, backend = self.models[request.model_name]
        (tensor,) = request.inputs
        batch = int(tensor.shape[0])
        if batch > config.max_batch_size:  # Triton's own check and words
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"[request id: <id_unknown>] inference request batch-size "
                                                            f"must be <= {config.max_batch_size} for '{config.name}'")
        self.batches.append(batch)
        images = np.frombuffer(request.raw_input_contents[0], np.float32).reshape(list(tensor.shape))
        outputs = backend.infer(images)
        response = service_pb2.ModelInferResponse(model_name=config.name, model_version="1")
        for o in config.output:
            if o.name not in [r.name for r in request.outputs]:
                continue
            value = outputs[o.name]
            shape = [batch, *o.dims] if o.HasField("reshape") else list(value.shape)  # the client sees dims
            response.outputs.add(name=o.name, datatype=DATATYPES[value.dtype], shape=shape)
            response.raw_output_contents.append(np.ascontiguousarray(value).tobytes())
        return response


@pytest.fixture
def served(tiny_onnx, tmp_path):
    """(address, stand-in, server) for tiny_onnx written as model 'birds' with max_batch_size 2."""
    repo = tmp_path / "repo"
    assert export_main(["triton", "--model", str(tiny_onnx), "--repository", str(repo), "--name", "birds",
                        "--max-batch", "2"]) == 0
    servicer = StandInTriton(repo)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"triton://127.0.0.1:{port}/birds", servicer, server
    server.stop(None)


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(40 + 7 * i, 50 + 3 * i, 3), dtype=np.uint8) for i in range(n)]


def test_a_served_model_localizes_as_the_same_model_run_here(served, tiny_onnx):
    address, servicer, _ = served
    images = frames(5)
    with Localizer(address) as remote, Localizer(tiny_onnx) as local:
        assert remote.class_names == local.class_names and remote.threshold == local.threshold
        got, want = remote.batch(images), local.batch(images)
    assert servicer.batches == [2, 2, 1]  # five frames in parts of the model's max_batch_size
    for g, w in zip(got, want):
        assert (g.class_id, g.class_name) == (w.class_id, w.class_name)
        assert g.box == w.box and abs(g.score - w.score) < 1e-6
        np.testing.assert_allclose(g.cam, w.cam, rtol=0, atol=1e-5)


def test_run_cli_serves_a_folder_through_triton(served, tiny_onnx, tmp_path, capsys):
    address, _, _ = served
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(frames(3, seed=1)):
        cv2.imwrite(str(folder / f"{i}.png"), image)
    lines = {}
    for name, model in (("remote", address), ("local", str(tiny_onnx))):
        out = tmp_path / f"{name}.jsonl"
        assert run.main(["--engine", model, "--source", str(folder), "--jsonl", str(out), "--batch", "3",
                         "--no-progress"]) == 0
        lines[name] = [{k: v for k, v in json.loads(t).items() if k not in ("latency_ms", "timestamp")}
                       for t in out.read_text().splitlines()]
    assert len(lines["remote"]) == 3 and lines["remote"] == lines["local"]


def test_what_a_client_is_told_in_one_line(served, tiny_onnx, tmp_path, capsys):
    address, servicer, server = served
    base = address.rsplit("/", 1)[0]
    for model, message in ((f"{base}/absent", "has no ready model absent"),
                           ("triton://127.0.0.1/", "a Triton model is triton://HOST[:PORT]/NAME[/VERSION]")):
        with pytest.raises(BackendError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_backend(model)
    with pytest.raises(BackendError, match="threads apply to ONNX Runtime here"):
        load_backend(address, threads=2)

    # a config without the metadata (a repository not written by export triton)
    config, backend = servicer.models["birds"]
    bare = model_config_pb2.ModelConfig()
    bare.CopyFrom(config)
    del bare.parameters["wsol_edge_metadata"]
    servicer.models["bare"] = (bare, backend)
    with pytest.raises(BackendError, match="carries no wsol_edge metadata"):
        load_backend(f"{base}/bare")

    # the server gone mid-stream: the run's inference fails in one line, not a traceback
    remote = load_backend(address)
    server.stop(None).wait()
    with pytest.raises(BackendError) as failure:
        remote.infer(np.zeros((1, 3, 64, 64), np.float32))
    assert str(failure.value).startswith("Triton birds at 127.0.0.1:") and "\n" not in str(failure.value)
    remote.close()
