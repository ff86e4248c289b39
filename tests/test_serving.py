"""Triton model repositories and DeepStream nvinfer configs (export/serving.py), checked against Triton's own
config schema, the tensors ONNX Runtime returns, and the project's own normalisation."""
import configparser
import json

import numpy as np
import onnx
import pytest

from wsol_edge.backends import load_backend
from wsol_edge.export.serving import pbtxt_string, read_model
from wsol_edge.export_metadata import read_onnx_metadata, write_onnx_metadata
from wsol_edge.preprocess import normalize
from wsol_edge.tensorrt_support import sidecar_path

export_main = pytest.importorskip("wsol_edge.export.__main__").main


def triton_schema():
    pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] (the dev extra) holds Triton's config schema")
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format, model_config_pb2


def parse_config(path):
    text_format, schema = triton_schema()
    return text_format.Parse(path.read_text(encoding="utf-8"), schema.ModelConfig()), schema


def fake_engine(tmp_path, onnx_path, *, min_batch=1, max_batch=16, io=True, precision="fp16"):
    """An engine file and the sidecar export engine writes; its bytes are never read by the config writers."""
    meta = read_onnx_metadata(onnx_path)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not read")
    k = len(meta["class_names"])
    tensors = {"inputs": [{"name": "images", "dtype": "float32", "shape": [-1, 3, 64, 64]}],
               "outputs": [{"name": "logits", "dtype": "float32", "shape": [-1, k]},
                           {"name": "cams", "dtype": "float32", "shape": [-1, 2, 2]},
                           {"name": "class_ids", "dtype": "int32", "shape": [-1]}]}
    built = {"version": "10.13.0", "gpu": "Orin", "compute_capability": "87",
             "options": {"min_batch": min_batch, "opt_batch": min_batch, "max_batch": max_batch}}
    if io:
        built["io"] = tensors
    sidecar_path(engine).write_text(json.dumps({**meta, "precision": precision, "tensorrt": built}))
    return engine


def test_triton_repository_from_onnx_matches_the_model_it_serves(tiny_onnx, tmp_path, capsys):
    repo = tmp_path / "repo"
    assert export_main(["triton", "--model", str(tiny_onnx), "--repository", str(repo), "--name", "birds",
                        "--max-batch", "4", "--instances", "2", "--kind", "cpu"]) == 0
    assert "tritonserver --model-repository" in capsys.readouterr().out
    folder = repo / "birds"
    config, schema = parse_config(folder / "config.pbtxt")
    assert config.name == "birds" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 4
    assert config.instance_group[0].count == 2 and config.instance_group[0].kind == schema.ModelInstanceGroup.KIND_CPU
    assert config.HasField("dynamic_batching")
    served = folder / "1" / "model.onnx"
    assert served.read_bytes() == tiny_onnx.read_bytes()
    meta = read_onnx_metadata(tiny_onnx)
    assert json.loads(config.parameters["wsol_edge_metadata"].string_value) == meta
    assert json.loads((folder / "wsol_edge.json").read_text()) == meta
    assert (folder / "labels.txt").read_text().splitlines() == meta["class_names"]

    # every tensor as ONNX Runtime gives it, on the largest batch Triton will form
    (images,) = config.input
    assert images.name == "images" and images.data_type == schema.TYPE_FP32 and list(images.dims) == [3, 64, 64]
    backend = load_backend(served)
    out = backend.infer(np.zeros((4, 3, 64, 64), np.float32))
    types = {schema.TYPE_FP32: np.float32, schema.TYPE_INT64: np.int64}
    assert [o.name for o in config.output] == ["logits", "cams", "class_ids"]
    for o in config.output:
        value = out[o.name]
        assert value.dtype == types[o.data_type] and value.shape[0] == 4
        shape = list(o.reshape.shape) if o.HasField("reshape") else list(o.dims)
        assert shape == list(value.shape[1:])  # no size left open: the map's too, as ONNX Runtime resolves it
    logits = config.output[0]
    assert logits.label_filename == "labels.txt" and list(logits.dims) == [3]
    # a later export as version 2, then one as version 1 again: Triton would go on serving 2, so it is said
    assert export_main(["triton", "--model", str(tiny_onnx), "--repository", str(repo), "--name", "birds",
                        "--version", "2"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert export_main(["triton", "--model", str(tiny_onnx), "--repository", str(repo), "--name", "birds"]) == 0
    assert "also holds version 2, which Triton serves by default instead of version 1; give --version 3" in \
        capsys.readouterr().err
    class_ids = config.output[2]
    assert list(class_ids.dims) == [1] and list(class_ids.reshape.shape) == []  # Triton's form for shape [batch]


def test_triton_repository_from_an_engine_takes_its_types_and_batch_profile(tiny_onnx, tmp_path, capsys):
    engine = fake_engine(tmp_path, tiny_onnx, max_batch=16)
    repo = tmp_path / "repo"
    assert export_main(["triton", "--model", str(engine), "--repository", str(repo)]) == 0
    config, schema = parse_config(repo / "m" / "config.pbtxt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 16  # the profile's maximum
    assert (repo / "m" / "1" / "model.plan").read_bytes() == b"not read"
    assert {o.name: o.data_type for o in config.output}["class_ids"] == schema.TYPE_INT32  # as the engine has it
    assert list(config.output[1].dims) == [2, 2]
    assert config.instance_group[0].kind == schema.ModelInstanceGroup.KIND_GPU

    for args, message in ((["--max-batch", "32"], "--max-batch 32: the engine's profile ends at batch 16"),
                          (["--kind", "cpu"], "--kind cpu: a TensorRT engine runs on the GPU")):
        assert export_main(["triton", "--model", str(engine), "--repository", str(tmp_path / "r2"), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    fake_engine(tmp_path, tiny_onnx, min_batch=2)
    assert export_main(["triton", "--model", str(engine), "--repository", str(tmp_path / "r2")]) == 2
    assert "Triton sends batches from 1 up: rebuild it with --min-batch 1" in capsys.readouterr().err
    fake_engine(tmp_path, tiny_onnx, io=False)  # a sidecar from before the tensors were recorded
    assert export_main(["triton", "--model", str(engine), "--repository", str(tmp_path / "r2")]) == 2
    assert "does not record the engine's tensor types" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()


def test_triton_metadata_survives_any_class_name(tiny_onnx, tmp_path):
    text_format, schema = triton_schema()
    model = onnx.load(str(tiny_onnx))
    names = ['say "hi"', "back\\slash", "rotkehlchen \u00e4 \u9ce5"]
    write_onnx_metadata(model, {**read_onnx_metadata(tiny_onnx), "class_names": names})
    onnx.save(model, str(tmp_path / "odd.onnx"))
    assert export_main(["triton", "--model", str(tmp_path / "odd.onnx"), "--repository", str(tmp_path / "r")]) == 0
    config, _ = parse_config(tmp_path / "r" / "odd" / "config.pbtxt")
    assert json.loads(config.parameters["wsol_edge_metadata"].string_value)["class_names"] == names
    for text in ("", "a\nb\r", '\\"', "\u00e4"):
        assert text_format.Parse(f"name: {pbtxt_string(text)}", schema.ModelConfig()).name == text


def test_triton_refuses_what_it_cannot_serve(tiny_onnx, tmp_path, capsys):
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(b"")
    for model, message in ((checkpoint, "a server takes an exported model (.onnx, or an engine"),
                           (tmp_path / "absent.onnx", "no such model file")):
        assert export_main(["triton", "--model", str(model), "--repository", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "r").exists()


def read_nvinfer(path):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    return parser["property"]


def test_nvinfer_config_feeds_the_model_its_own_input(tiny_onnx, tmp_path):
    out = tmp_path / "ds" / "config_infer.txt"
    out.parent.mkdir()
    assert export_main(["deepstream", "--model", str(tiny_onnx), "--output", str(out), "--batch-size", "4"]) == 0
    prop = read_nvinfer(out)
    meta = read_onnx_metadata(tiny_onnx)
    # Gst-nvinfer's y = net-scale-factor * (x - offsets[c]) on every 0-255 value, against preprocess.normalize
    pixels = np.stack([np.arange(256, dtype=np.uint8)] * 3, axis=1).reshape(16, 16, 3)
    ours = normalize(pixels, meta["mean"], meta["std"])
    offsets = np.array([float(v) for v in prop["offsets"].split(";")], np.float64)
    theirs = float(prop["net-scale-factor"]) * (pixels.astype(np.float64) - offsets)
    np.testing.assert_allclose(theirs.transpose(2, 0, 1), ours, rtol=0, atol=1e-5)
    assert prop["model-color-format"] == "0"  # RGB, the order the model was trained in
    assert prop["infer-dims"] == "3;64;64" and prop["batch-size"] == "4" and prop["network-mode"] == "0"
    assert prop["network-type"] == "100" and prop["output-tensor-meta"] == "1"  # the raw contract, as tensor meta
    assert prop["maintain-aspect-ratio"] == "0"  # the plain resize of the evaluation frame
    assert (out.parent / prop["onnx-file"]).resolve() == tiny_onnx.resolve()  # nvinfer: relative to the config
    assert (out.parent / prop["labelfile-path"]).read_text().splitlines() == meta["class_names"]
    assert json.loads((out.parent / "config_infer.wsol_edge.json").read_text()) == meta


def test_nvinfer_config_of_an_engine_and_what_it_refuses(tiny_onnx, tmp_path, capsys):
    engine = fake_engine(tmp_path, tiny_onnx, min_batch=1, max_batch=8, precision="int8")
    local = tmp_path / "config.txt"  # the engine in the config's own folder: a relative path
    assert export_main(["deepstream", "--model", str(engine), "--output", str(local), "--batch-size", "8"]) == 0
    prop = read_nvinfer(local)
    assert prop["model-engine-file"] == "m.engine" and "onnx-file" not in prop and prop["network-mode"] == "1"

    int8_onnx = tmp_path / "q.onnx"
    model = onnx.load(str(tiny_onnx))
    write_onnx_metadata(model, {**read_onnx_metadata(tiny_onnx), "precision": "int8"})
    onnx.save(model, str(int8_onnx))
    (tmp_path / "ragged").mkdir()
    ragged_engine = fake_engine(tmp_path / "ragged", tiny_onnx)
    sidecar = sidecar_path(ragged_engine)
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "std": [0.229, 0.224, 0.225]}))
    out = tmp_path / "refused" / "c.txt"
    out.parent.mkdir()
    for model_path, args, message in (
            (engine, ["--batch-size", "9"], "--batch-size 9: the engine's profile takes batches 1 to 8"),
            (int8_onnx, [], "an INT8 Q/DQ model; build its engine with python -m wsol_edge.export engine --int8"),
            (ragged_engine, [], "differs per channel, and Gst-nvinfer scales every channel by one net-scale-factor: "
                                "give the ONNX model instead")):
        assert export_main(["deepstream", "--model", str(model_path), "--output", str(out), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]
    assert list(out.parent.iterdir()) == []


def test_a_per_channel_std_goes_into_a_copy_of_the_graph_for_nvinfer(tiny_onnx, tmp_path, capsys):
    from wsol_edge.runtime.localizer import Localizer

    imagenet_std = [0.229, 0.224, 0.225]  # ResNet's, DeiT's: one net-scale-factor cannot give it
    model = onnx.load(str(tiny_onnx))
    write_onnx_metadata(model, {**read_onnx_metadata(tiny_onnx), "std": imagenet_std})
    ragged = tmp_path / "resnet_like.onnx"
    onnx.save(model, str(ragged))
    out = tmp_path / "ds" / "config_infer.txt"
    out.parent.mkdir()
    assert export_main(["deepstream", "--model", str(ragged), "--output", str(out)]) == 0
    folded = out.parent / "config_infer.onnx"
    assert f"and {folded} (the model dividing by its per-channel std" in capsys.readouterr().out
    prop = read_nvinfer(out)
    assert (out.parent / prop["onnx-file"]).resolve() == folded.resolve()
    meta = read_onnx_metadata(folded)
    assert meta["std"] == [1.0, 1.0, 1.0] and meta["std_in_graph"] == imagenet_std
    # nvinfer's y = scale * (x - offset), then the graph's division: the model's own input, on all 256 values
    pixels = np.stack([np.arange(256, dtype=np.uint8)] * 3, axis=1).reshape(16, 16, 3)
    offsets = np.array([float(v) for v in prop["offsets"].split(";")], np.float64)
    theirs = float(prop["net-scale-factor"]) * (pixels.astype(np.float64) - offsets) / np.array(imagenet_std)
    np.testing.assert_allclose(theirs.transpose(2, 0, 1), normalize(pixels, meta["mean"], imagenet_std), atol=1e-5)
    # and the copy serves what the original serves, through any runtime that reads its metadata
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, size=(48, 40 + 11 * i, 3), dtype=np.uint8) for i in range(3)]
    with Localizer(ragged) as original, Localizer(folded) as copy:
        for a, b in zip(original.batch(frames), copy.batch(frames)):
            assert (a.class_id, a.box) == (b.class_id, b.box)
            np.testing.assert_allclose(a.cam, b.cam, rtol=0, atol=1e-4)
    # a config named after the model would write the copy over it
    assert export_main(["deepstream", "--model", str(ragged), "--output", str(tmp_path / "resnet_like.txt")]) == 2
    assert "replacing the model itself" in capsys.readouterr().err
    assert read_onnx_metadata(ragged)["std"] == imagenet_std


def test_read_model_takes_tensor_types_from_the_graph(tiny_onnx, tmp_path):
    from wsol_edge.export.quantize import to_fp16

    half = to_fp16(tiny_onnx, tmp_path / "h.onnx")  # FP16 inside, FP32 at the graph's edges
    model = read_model(half)
    assert model.kind == "onnx" and model.meta["precision"] == "fp16"
    assert [(t.name, t.dtype) for t in model.inputs] == [("images", "float32")]
    assert [(t.name, t.dtype) for t in model.outputs] == [("logits", "float32"), ("cams", "float32"),
                                                         ("class_ids", "int64")]


def test_a_localizer_from_the_written_metadata_boxes_outputs_computed_elsewhere(tiny_onnx, tmp_path, capsys):
    from wsol_edge.backends import BackendError
    from wsol_edge.runtime.localizer import Localizer

    assert export_main(["deepstream", "--model", str(tiny_onnx), "--output", str(tmp_path / "ds.txt")]) == 0
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, size=(30 + 9 * i, 70 - 5 * i, 3), dtype=np.uint8) for i in range(3)]
    sizes = [(f.shape[1], f.shape[0]) for f in frames]
    with Localizer(tiny_onnx) as local:
        want = local.batch(frames)
        # what a server hands back: the network's outputs for the preprocessed frames, class_ids as [B, 1]
        outputs = local.infer(np.stack([local.preprocess(f) for f in frames]))
    remote = Localizer.from_metadata(tmp_path / "ds.wsol_edge.json")
    for given in (outputs, {**outputs, "class_ids": outputs["class_ids"].reshape(-1, 1)},
                  {k: v for k, v in outputs.items() if k != "class_ids"}):
        got = remote.postprocess(given, sizes)
        assert [(g.class_id, g.box, round(g.score, 9)) for g in got] == [(w.class_id, w.box, round(w.score, 9))
                                                                         for w in want]
    np.testing.assert_array_equal(remote.preprocess(frames[0]), Localizer(tiny_onnx).preprocess(frames[0]))
    with pytest.raises(BackendError, match="built from metadata alone"):
        remote(frames[0])
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "other.json").write_text('{"class_names": ["a"]}')
    for path, message in ((tmp_path / "broken.json", "not a JSON metadata file"),
                          (tmp_path / "other.json", r"not wsol_edge metadata \(missing"),
                          (tmp_path / "absent.json", "no such metadata file")):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            Localizer.from_metadata(path)
