
import json

import cv2
import numpy as np
import onnx
import pytest

from wsol_edge import train
from wsol_edge.backends import BackendError, load_backend
from wsol_edge.data import synthetic_dataset
from wsol_edge.export.quantize import calibration_cache_supported
from wsol_edge.export_metadata import MetadataError, read_onnx_metadata, write_onnx_metadata
from wsol_edge.tensorrt_support import check_compatible

export_main = pytest.importorskip("wsol_edge.export.__main__").main


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp")
    assert train.main(["--dataset", "synthetic", "--synthetic-images", "24", "--synthetic-size", "64", "--epochs", "1",
                       "--batch-size", "8", "--input-size", "96", "--resize", "110", "--output-stride", "16",
                       "--freeze-layers", "3", "--out", str(out), "--no-progress"]) == 0
    return out / "checkpoint.pt"


@pytest.fixture(scope="module")
def onnx_path(ckpt, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--threshold-dataset", "synthetic",
                        "--threshold-data-root", "unused", "--threshold-images", "8", "--with-all-cams"]) == 0
    return path


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("calib")
    for i, s in enumerate(synthetic_dataset(12, 4, 64, seed=9)):
        cv2.imwrite(str(d / f"{i:02d}.png"), s.load()[:, :, ::-1])
    return d


def test_contract_metadata_and_checker(onnx_path):
    model = onnx.load(str(onnx_path))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["logits", "cams", "class_ids", "cams_all"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    meta = read_onnx_metadata(onnx_path)
    assert meta["class_names"] == ["disc", "square", "triangle", "cross"] and meta["input_size"] == 96
    assert meta["backbone"] == "efficientnet_lite0" and meta["method"] == "cam" and meta["protocol"] == "wsoleval"
    assert 0 <= meta["cam_threshold"] < 1 and "synthetic" in meta["cam_threshold_source"]
    assert len(meta["source_checkpoint_sha256"]) == 64


def test_onnxruntime_matches_pytorch(ckpt, onnx_path):
    torch_b, ort_b = load_backend(ckpt), load_backend(onnx_path)
    from wsol_edge.export.regression import parity
    res = parity(torch_b, ort_b, synthetic_dataset(10, 4, 64, seed=4, split="test"))
    assert res["max_abs_logit_diff"] < 1e-3 and res["max_cam_diff_relative_to_range"] < 1e-3
    assert res["identical_boxes"] == 100.0 and res["top1_agreement"] == 100.0
    for b in (1, 3):  # dynamic batch
        out = ort_b.infer(np.zeros((b, 3, 96, 96), np.float32))
        assert out["logits"].shape == (b, 4) and out["cams"].shape == (b, 6, 6) and out["class_ids"].shape == (b,)


def test_fp16_and_int8(onnx_path, calib_dir, tmp_path, capsys):
    fp16, int8 = tmp_path / "m16.onnx", tmp_path / "m8.onnx"
    assert export_main(["fp16", "--onnx", str(onnx_path), "--output", str(fp16)]) == 0
    assert export_main(["int8", "--onnx", str(onnx_path), "--output", str(int8), "--calibration-dir", str(calib_dir),
                        "--method", "minmax", "--num-images", "512", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "only 12 calibration images" in capsys.readouterr().err  # fewer than asked: warned
    m8 = read_onnx_metadata(int8)
    assert m8["precision"] == "int8" and "classifier" in m8["fp32_nodes"] and m8["calibration_images"] == 12
    assert read_onnx_metadata(fp16)["precision"] == "fp16"
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    gemm_inputs = [n for n in onnx.load(str(int8)).graph.node if n.op_type == "Gemm"][0].input
    assert not any("DequantizeLinear" in i or "_quantized" in i for i in gemm_inputs[:1])  # classifier kept FP32
    x = np.random.default_rng(0).normal(size=(2, 3, 96, 96)).astype(np.float32)
    ref = load_backend(onnx_path).infer(x)
    assert np.abs(load_backend(fp16).infer(x)["logits"] - ref["logits"]).max() < 0.05
    assert load_backend(int8).infer(x)["cams"].shape == ref["cams"].shape
    caches = list((tmp_path / "cache").glob("calib_*.json"))
    if calibration_cache_supported():
        key = __import__("hashlib").sha256(onnx_path.read_bytes()).hexdigest()[:16]
        assert len(caches) == 1 and caches[0].name.startswith(f"calib_{key}")
        assert m8["calibration_cache"] == caches[0].name
    else:  # onnxruntime 1.23 and older (all Python 3.10 gets) calibrate without a cache
        assert not caches and m8["calibration_cache"] is None


@pytest.mark.skipif(not calibration_cache_supported(), reason="this onnxruntime (< 1.24) keeps no calibration cache")
def test_calibration_cache_keyed_by_model(onnx_path, calib_dir, tmp_path):
    from wsol_edge.export.quantize import to_int8
    other = onnx.load(str(onnx_path))
    init = other.graph.initializer[0]
    arr = onnx.numpy_helper.to_array(init).copy() * 1.5
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(other, str(tmp_path / "other.onnx"))
    for src in (onnx_path, onnx_path, tmp_path / "other.onnx"):
        to_int8(src, tmp_path / "q.onnx", calib_dir, method="minmax", num_images=4, cache_dir=tmp_path / "c")
    assert len(list((tmp_path / "c").glob("calib_*.json"))) == 2  # reused once, new model -> new cache


def test_int8_with_8bit_weights_is_flagged_on_an_x86_cpu_without_vnni(onnx_path, calib_dir, tmp_path, monkeypatch,
                                                                       capsys):
    from wsol_edge import runinfo
    from wsol_edge.backends import onnxruntime_backend
    from wsol_edge.backends.onnxruntime_backend import int8_saturation_warning
    from wsol_edge.export.quantize import to_int8

    int8 = {"precision": "int8", "reduce_range": False}
    assert "--reduce-range" in int8_saturation_warning(int8, "x86_64", vnni=False)
    assert int8_saturation_warning(int8, "AMD64", vnni=True) is None  # VNNI adds into int32
    assert int8_saturation_warning(int8, "aarch64", vnni=False) is None  # so do ARM's kernels
    assert int8_saturation_warning(int8, "x86_64", vnni=None) is None  # unknown: no claim
    assert int8_saturation_warning({**int8, "reduce_range": True}, "x86_64", vnni=False) is None
    assert int8_saturation_warning({"precision": "fp32"}, "x86_64", vnni=False) is None
    # loading one: warned once, on stderr, naming the file; the 7-bit flavour is not
    monkeypatch.setattr(runinfo, "cpu_has_vnni", lambda: False)
    monkeypatch.setattr(onnxruntime_backend.platform, "machine", lambda: "x86_64")
    for rr in (False, True):
        q = tmp_path / f"q{int(rr)}.onnx"
        to_int8(onnx_path, q, calib_dir, method="minmax", num_images=4, cache_dir=tmp_path / "c",
                activation_type="uint8", reduce_range=rr)
        capsys.readouterr()
        load_backend(q)
        err = capsys.readouterr().err
        assert (err.count("warning:"), str(q) in err) == ((0, False) if rr else (1, True))


def test_int8_flavour_names_what_the_quantizer_wrote(onnx_path, calib_dir, tmp_path):
    from wsol_edge.export.quantize import INT8_FLAVOURS, int8_flavour, to_int8
    from wsol_edge.export_metadata import read_onnx_metadata

    assert all(int8_flavour(*setting) == name for name, setting in INT8_FLAVOURS.items())
    for name in ("s8s8", "u8s8_reduce_range"):
        activation_type, reduce_range = INT8_FLAVOURS[name]
        q = to_int8(onnx_path, tmp_path / f"{name}.onnx", calib_dir, method="minmax", num_images=4,
                    cache_dir=tmp_path / "c", activation_type=activation_type, reduce_range=reduce_range)
        meta = read_onnx_metadata(q)
        assert int8_flavour(meta["activation_type"], meta["reduce_range"]) == name


def test_int8_probe_quantizes_each_flavour_asked_for_with_one_calibration(onnx_path, tmp_path, monkeypatch):
    from test_data import make_cub

    from benchmarks import int8_saturation
    from wsol_edge.export import quantize

    data, out, calls = tmp_path / "cub", tmp_path / "probe.json", []
    make_cub(data, n=8, classes=read_onnx_metadata(onnx_path)["class_names"])  # the model's own classes
    real = quantize.to_int8

    def recording(*args, **kwargs):
        calls.append((kwargs["activation_type"], kwargs["reduce_range"], kwargs["method"], kwargs["num_images"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(quantize, "to_int8", recording)
    assert int8_saturation.main(["--onnx", str(onnx_path), "--data-root", str(data), "--max-images", "3",
                                 "--calibration-images", "4", "--method", "percentile", "--flavours", "u8s8",
                                 "s8s8_reduce_range", "--output", str(out)]) == 0
    assert calls == [("uint8", False, "percentile", 4), ("int8", True, "percentile", 4)]
    record = json.loads(out.read_text())
    assert list(record["results"]) == ["fp32", "u8s8", "s8s8_reduce_range"] and record["num_images"] == 3
    assert record["calibration"] == "percentile, 4 train images"
    assert all(0 <= r["gt_known_loc"] <= 100 for r in record["results"].values())


def test_export_without_its_extra_is_one_line_naming_it(onnx_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxconverter_common", None)  # as on the base install
    assert export_main(["fp16", "--onnx", str(onnx_path), "--output", str(tmp_path / "m16.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "onnxconverter_common" in err[0] and 'pip install "wsol_edge[train]"' in err[0]
    assert not (tmp_path / "m16.onnx").exists()


def test_a_converted_model_is_not_converted_again(onnx_path, calib_dir, tmp_path, capsys):
    half = tmp_path / "m16.onnx"
    assert export_main(["fp16", "--onnx", str(onnx_path), "--output", str(half)]) == 0
    int8 = tmp_path / "m8.onnx"
    assert export_main(["int8", "--onnx", str(onnx_path), "--output", str(int8), "--calibration-dir", str(calib_dir),
                        "--num-images", "4", "--method", "minmax"]) == 0
    capsys.readouterr()
    for fmt, src, extra in (("fp16", half, []), ("int8", half, ["--calibration-dir", str(calib_dir)]),
                            ("int8", int8, ["--calibration-dir", str(calib_dir)]), ("fp16", int8, [])):
        assert export_main([fmt, "--onnx", str(src), "--output", str(tmp_path / "again.onnx"), *extra]) == 2
        precision = "FP16" if src == half else "INT8"
        assert capsys.readouterr().err.strip() == (f"error: {src} is already {precision}: make the {fmt.upper()} model "
                                                   "from the FP32 export (python -m wsol_edge.export onnx)")
    assert not (tmp_path / "again.onnx").exists()


def test_engine_options_are_checked_before_tensorrt_is_needed(onnx_path, tmp_path, capsys):
    from wsol_edge.export.tensorrt_engine import EngineOptions, check_options

    out = str(tmp_path / "m.engine")
    for extra, message in ((["--min-batch", "4", "--opt-batch", "2"], "min <= opt <= max, got 4 / 2 / 32"),
                           (["--int8"], "--int8 needs the Q/DQ model"),
                           (["--dla-core", "0"], "--dla-core 0: the DLA runs FP16 or INT8 only; add --fp16")):
        assert export_main(["engine", "--onnx", str(onnx_path), "--output", out, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0]  # not "TensorRT is not installed"
    # a model whose metadata says INT8 (what check_options reads; no calibration needed to ask it)
    model = onnx.load(str(onnx_path))
    write_onnx_metadata(model, {**read_onnx_metadata(onnx_path), "precision": "int8"})
    onnx.save(model, str(tmp_path / "q.onnx"))
    with pytest.raises(ValueError, match="--fp16 would change nothing"):
        check_options(tmp_path / "q.onnx", EngineOptions(int8=True, fp16=True))
    assert check_options(tmp_path / "q.onnx", EngineOptions(int8=True))["precision"] == "int8"
    assert check_options(tmp_path / "q.onnx", EngineOptions(int8=True, dla_core=1))["precision"] == "int8"
    assert check_options(onnx_path, EngineOptions(fp16=True, dla_core=0))  # the README's DLA build
    assert not (tmp_path / "m.engine").exists()


def test_bad_inputs(ckpt, onnx_path, tiny_onnx, tmp_path, capsys):
    # ONNX without metadata
    bare = onnx.load(str(onnx_path))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(BackendError, match="no wsol_edge metadata"):
        load_backend(tmp_path / "bare.onnx")
    with pytest.raises(MetadataError):
        read_onnx_metadata(tmp_path / "bare.onnx")
    # missing calibration folder
    assert export_main(["int8", "--onnx", str(onnx_path), "--output", str(tmp_path / "x.onnx"),
                        "--calibration-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # regression with no way to choose the deployed threshold (a checkpoint that carries none)
    bare_ckpt = without_threshold(ckpt, tmp_path / "bare.pt")
    assert export_main(["regression", "--checkpoint", str(bare_ckpt), "--workdir", str(tmp_path / "w"), "--dataset",
                        "synthetic", "--data-root", "x", "--calibration-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "carries no CAM threshold" in err and "--cam-threshold" in err and len(err.strip().splitlines()) == 1
    # wrong input size
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "y.onnx"),
                        "--cam-threshold", "0.2", "--input-size", "224"]) == 2
    assert "trained at 96x96" in capsys.readouterr().err
    # wrong batch shape at inference
    with pytest.raises(ValueError, match=r"expected images \[B,3,96,96\]"):
        load_backend(onnx_path).infer(np.zeros((1, 3, 224, 224), np.float32))
    # parity of a checkpoint with another model's export: numpy's broadcast error before
    assert export_main(["parity", "--checkpoint", str(ckpt), "--onnx", str(tiny_onnx), "--dataset", "synthetic",
                        "--data-root", "x", "--max-images", "2"]) == 2
    assert f"{tiny_onnx} was exported from another checkpoint (SHA-256 000000000000, {ckpt}'s is " in \
        capsys.readouterr().err
    # an output that is a folder: refused at parse time, not after the export
    with pytest.raises(SystemExit):
        export_main(["fp16", "--onnx", str(onnx_path), "--output", str(tmp_path)])
    assert f"argument --output: {tmp_path} is a folder; give the file to write" in capsys.readouterr().err
    # TensorRT missing here: a clear message, no traceback
    assert export_main(["engine", "--onnx", str(onnx_path), "--output", str(tmp_path / "m.engine")]) == 2
    assert "TensorRT" in capsys.readouterr().err
    with pytest.raises(BackendError):
        load_backend(tmp_path / "missing.engine")


def test_options_another_model_type_would_drop_are_refused_in_one_line(ckpt, onnx_path, tiny_onnx, tmp_path):
    # each was dropped without a word before: an ONNX model "on cuda" ran on the CPU, "half" in FP32,
    # a threshold never reached the boxes
    for model, kwargs, why in (
            (onnx_path, {"device": "cuda"}, "device cuda applies to a .pt checkpoint; this model runs where providers"),
            (onnx_path, {"half": True}, "half applies to a .pt checkpoint"),
            (onnx_path, {"threshold": 0.0, "input_size": 96}, "threshold, input_size apply to a .pt checkpoint"),
            (ckpt, {"threads": 2}, "providers and threads apply to ONNX Runtime; a PyTorch checkpoint runs where"),
            (ckpt, {"providers": ["cuda"]}, "providers and threads apply to ONNX Runtime"),
            # checked before TensorRT is needed, so this machine without it says so too
            (tmp_path / "m.engine", {"providers": ["cuda"]}, "a TensorRT engine runs on the GPU it was built for"),
            (tmp_path / "m.engine", {"device": "cuda:0"}, "this model runs on the GPU it was built for"),
            (tiny_onnx, {"all_cams": True}, "every class's map, which this model does not return"),
            (tmp_path / "m.txt", {"device": "cuda"}, "unknown model type '.txt'")):
        with pytest.raises(BackendError) as exc:
            load_backend(model, **kwargs)
        assert why in str(exc.value) and str(exc.value).startswith(str(model)) and "\n" not in str(exc.value)
    # what each model type does honour still loads
    assert "cams_all" in load_backend(onnx_path, all_cams=True, providers=["CPU"], threads=1).infer(
        np.zeros((1, 3, 96, 96), np.float32))
    served = load_backend(ckpt, providers=["cpu"], half=False, input_size=96, threshold=0.25)
    assert served.meta["cam_threshold"] == 0.25


def without_threshold(ckpt, path):
    """A copy of ``ckpt`` as checkpoints were before they carried a CAM threshold."""
    from wsol_edge.checkpoint import load_checkpoint, save_checkpoint
    state = load_checkpoint(ckpt)
    state.pop("cam_threshold"), state.pop("cam_threshold_source")
    return save_checkpoint(path, state)


def test_checkpoint_carries_the_threshold_of_its_final_weights(ckpt, tmp_path, capsys):
    from wsol_edge.backends.pytorch_backend import PyTorchBackend
    from wsol_edge.checkpoint import load_checkpoint
    from wsol_edge.runtime import Localizer
    from wsol_edge.threshold import choose_threshold
    state = load_checkpoint(ckpt)
    # the same choice made again, independently, on the training split the fixture used
    train_split = synthetic_dataset(24, 4, 64, seed=0)
    tau, source = choose_threshold(PyTorchBackend(ckpt, all_cams=True), train_split)
    assert state["cam_threshold"] == tau and 0 <= tau < 1
    assert state["cam_threshold_source"] == source and "24 images" in source
    assert json.loads((ckpt.parent / "train_log.json").read_text())["cam_threshold"] == tau
    # the runtime and export take it from the checkpoint, and say where it came from
    assert Localizer(ckpt).threshold == tau and "no CAM threshold" not in capsys.readouterr().err
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "m.onnx")]) == 0
    assert "from the checkpoint" in capsys.readouterr().err
    meta = read_onnx_metadata(tmp_path / "m.onnx")
    assert meta["cam_threshold"] == tau and meta["cam_threshold_source"] == "from the checkpoint: " + source
    # a checkpoint without one: export says what to give, in one line; the runtime warns and uses 0.5
    bare = without_threshold(ckpt, tmp_path / "bare.pt")
    assert export_main(["onnx", "--checkpoint", str(bare), "--output", str(tmp_path / "b.onnx")]) == 2
    err = capsys.readouterr().err
    assert "carries no CAM threshold" in err and len(err.strip().splitlines()) == 1
    assert Localizer(bare).threshold == 0.5 and "no CAM threshold" in capsys.readouterr().err
    assert Localizer(bare, threshold=0.0).threshold == 0.0


def test_split_without_boxes_trains_without_a_threshold(tmp_path, monkeypatch, capsys):
    import wsol_edge.data as data
    from wsol_edge.checkpoint import load_checkpoint
    from wsol_edge.threshold import choose_threshold

    def labels_only(*args, **kwargs):
        samples = synthetic_dataset(8, 2, 64, seed=0)
        for s in samples:
            s.boxes = np.zeros((0, 4))
        return samples

    monkeypatch.setattr(data, "open_dataset", labels_only)
    assert train.main(["--dataset", "synthetic", "--epochs", "1", "--batch-size", "8", "--input-size", "64",
                       "--resize", "72", "--freeze-layers", "3", "--out",
                       str(tmp_path), "--no-progress"]) == 0
    assert "has no boxes, so the checkpoint carries no CAM threshold" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "checkpoint.pt")["cam_threshold"] is None
    with pytest.raises(ValueError, match="no box annotations"):
        choose_threshold(None, labels_only())


def test_checkpoint_of_another_backbone_is_refused(ckpt, tmp_path):
    import torch
    state = torch.load(ckpt, weights_only=True)
    state["model_config"]["backbone"] = "mobilenet_v2"
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(BackendError, match="do not match cam/mobilenet_v2"):
        load_backend(tmp_path / "other.pt")


def test_engine_compatibility_rules():
    meta = {"tensorrt": {"version": "10.3.0", "gpu": "Orin", "compute_capability": "87", "hardware_compat": "none"}}
    check_compatible(meta, "10.3.0", "Orin", "87", "m.engine")
    with pytest.raises(ValueError, match="TensorRT 10.3.0, this is 10.8.0"):
        check_compatible(meta, "10.8.0", "Orin", "87", "m.engine")
    with pytest.raises(ValueError, match="rebuild it here"):
        check_compatible(meta, "10.3.0", "NVIDIA H100", "90", "m.engine")
    meta["tensorrt"].update(version_compatible=True, hardware_compat="ampere_plus")
    check_compatible(meta, "10.8.0", "NVIDIA H100", "90", "m.engine")


def test_multi_size_tta_export_matches_the_pytorch_wrapper(ckpt, tmp_path, capsys):
    from wsol_edge.backends.pytorch_backend import PyTorchBackend
    from wsol_edge.export.regression import parity

    path = tmp_path / "sizes.onnx"
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--tta-sizes", "96", "128"]) == 2
    assert "chosen without --tta-sizes 96 128" in capsys.readouterr().err and not path.exists()
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--tta", "flip", "--tta-sizes", "96",
                        "128", "--cam-threshold", "0.3", "--with-all-cams"]) == 0
    meta = read_onnx_metadata(path)
    assert meta["tta"] == "flip" and meta["tta_sizes"] == [96, 128]
    torch_b = PyTorchBackend(ckpt, all_cams=True, tta="flip", tta_sizes=(96, 128), threshold=0.3)
    ort_b = load_backend(path)
    res = parity(torch_b, ort_b, synthetic_dataset(10, 4, 64, seed=4, split="test"))
    assert res["max_abs_logit_diff"] < 1e-3 and res["max_cam_diff_relative_to_range"] < 1e-3
    assert res["identical_boxes"] == 100.0 and res["top1_agreement"] == 100.0
    x = np.random.default_rng(0).normal(size=(2, 3, 96, 96)).astype(np.float32)
    out = ort_b.infer(x)
    assert out["cams"].shape == (2, 8, 8)  # the finest grid: 128 px at stride 16
    np.testing.assert_allclose(out["cams_all"][np.arange(2), out["class_ids"]], out["cams"], rtol=1e-5, atol=1e-5)
    with pytest.raises(BackendError, match="PyTorch checkpoints only"):
        load_backend(path, tta_sizes=(96, 128))
    # parity serves the checkpoint as the graph was exported (else every map would differ)
    report = tmp_path / "parity.json"
    assert export_main(["parity", "--checkpoint", str(ckpt), "--onnx", str(path), "--dataset", "synthetic",
                        "--data-root", "unused", "--max-images", "8", "--output", str(report)]) == 0
    assert json.loads(report.read_text())["identical_boxes"] == 100.0


def test_served_below_the_trained_size_runs_the_network_at_the_trained_size(ckpt, tmp_path, capsys):
    """Trained at 96, served at 64 with 96 among the test-time sizes: the graph takes 64x64 images, resizes
    them to 96 and gives the 96-px model's logits and 6x6 maps; without 96 among the sizes it is refused."""
    import torch

    from wsol_edge.backends.pytorch_backend import PyTorchBackend
    from wsol_edge.export.regression import parity
    from wsol_edge.modelio import load_model

    path = tmp_path / "served64.onnx"
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--input-size", "64",
                        "--tta-sizes", "64", "--cam-threshold", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "trained at 96x96" in err and "add 96 to the test-time sizes" in err and not path.exists()
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--input-size", "64",
                        "--tta-sizes", "96", "--cam-threshold", "0.3", "--with-all-cams"]) == 0
    meta = read_onnx_metadata(path)
    assert meta["input_size"] == 64 and meta["tta_sizes"] == [96]
    ort_b = load_backend(path)
    x = np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype(np.float32)
    out = ort_b.infer(x)
    model, _, _ = load_model(ckpt)
    with torch.no_grad():
        logits, feats = model.eval()(torch.nn.functional.interpolate(torch.from_numpy(x), size=(96, 96),
                                                                     mode="bilinear", align_corners=False))
        cams = model.cams(feats, logits.argmax(1))
    np.testing.assert_allclose(out["logits"], logits.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["cams"], cams.numpy(), rtol=1e-4, atol=1e-4)
    assert out["cams"].shape == (2, 6, 6)
    torch_b = PyTorchBackend(ckpt, all_cams=True, tta_sizes=(96,), input_size=64, threshold=0.3)
    assert torch_b.meta["input_size"] == 64
    res = parity(torch_b, ort_b, synthetic_dataset(8, 4, 64, seed=4, split="test"))
    assert res["identical_boxes"] == 100.0 and res["top1_agreement"] == 100.0
    report = tmp_path / "parity.json"
    assert export_main(["parity", "--checkpoint", str(ckpt), "--onnx", str(path), "--dataset", "synthetic",
                        "--data-root", "unused", "--max-images", "8", "--output", str(report)]) == 0
    assert json.loads(report.read_text())["identical_boxes"] == 100.0


def test_flip_tta_export_matches_the_pytorch_wrapper(ckpt, tmp_path, capsys):
    from wsol_edge.backends.pytorch_backend import PyTorchBackend
    from wsol_edge.export.regression import parity

    path = tmp_path / "flip.onnx"
    # the checkpoint's threshold was chosen without the mirror pass: refused unless given or chosen with it
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--tta", "flip"]) == 2
    assert "chosen without --tta flip" in capsys.readouterr().err and not path.exists()
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--tta", "flip",
                        "--threshold-dataset", "synthetic", "--threshold-data-root", "unused", "--threshold-images", "8",
                        "--with-all-cams"]) == 0
    meta = read_onnx_metadata(path)
    assert meta["tta"] == "flip" and "synthetic" in meta["cam_threshold_source"]
    torch_b, ort_b = PyTorchBackend(ckpt, all_cams=True, tta="flip"), load_backend(path)
    res = parity(torch_b, ort_b, synthetic_dataset(10, 4, 64, seed=4, split="test"))
    assert res["max_abs_logit_diff"] < 1e-3 and res["max_cam_diff_relative_to_range"] < 1e-3
    assert res["identical_boxes"] == 100.0 and res["top1_agreement"] == 100.0
    # the graph really averages with the mirror: it differs from the plain model on an asymmetric image
    x = np.random.default_rng(0).normal(size=(3, 3, 96, 96)).astype(np.float32)
    plain = load_backend(ckpt).infer(x)
    out = ort_b.infer(x)
    assert out["cams"].shape == plain["cams"].shape == (3, 6, 6)
    assert np.abs(out["logits"] - plain["logits"]).max() > 1e-4
    np.testing.assert_allclose(out["cams_all"][np.arange(3), out["class_ids"]], out["cams"], rtol=1e-5, atol=1e-5)


def test_pytorch_backend_times_copies_and_model_apart(ckpt):
    from wsol_edge.backends.pytorch_backend import PyTorchBackend

    b = PyTorchBackend(ckpt)
    x = np.random.default_rng(0).normal(size=(2, 3, 96, 96)).astype(np.float32)
    out, parts = b.infer_staged(x)
    want = b.infer(x)
    assert set(parts) == {"h2d", "inference", "d2h"} and all(v >= 0 for v in parts.values())
    assert out.keys() == want.keys() and all(np.array_equal(out[k], want[k]) for k in out)


def test_ivr_export_carries_its_normalisation_to_every_runtime(ckpt, tmp_path, capsys):
    from wsol_edge import Localizer
    from wsol_edge.backends.pytorch_backend import PyTorchBackend
    from wsol_edge.data import open_dataset
    from wsol_edge.export_metadata import write_onnx_metadata
    from wsol_edge.postprocess import cam_to_scoremap, normalize_scoremap, upsample_cam
    from wsol_edge.tensorrt_support import read_sidecar
    from wsol_edge.threshold import choose_threshold

    path = tmp_path / "ivr.onnx"
    # the checkpoint's threshold was chosen on min-max maps: refused unless given or chosen on IVR maps
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--ivr-percentile", "0.6"]) == 2
    err = capsys.readouterr().err
    assert "chosen on min-max score maps" in err and len(err.strip().splitlines()) == 1 and not path.exists()
    with pytest.raises(SystemExit):  # argparse's one-line error
        export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--ivr-percentile", "1"])
    assert "--ivr-percentile: must be in [0, 1)" in capsys.readouterr().err and not path.exists()
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(path), "--ivr-percentile", "0.6",
                        "--threshold-dataset", "synthetic", "--threshold-data-root", "unused", "--threshold-images", "8",
                        "--with-all-cams"]) == 0
    meta = read_onnx_metadata(path)
    assert (meta["scoremap_normalization"], meta["ivr_percentile"]) == ("ivr", 0.6)
    assert "IVR score maps (percentile 0.6)" in meta["cam_threshold_source"]
    # the same images, drawn again: the threshold is the GT-known best one on their IVR maps
    train_split = open_dataset("synthetic", "unused", "train")
    assert meta["cam_threshold"] == choose_threshold(PyTorchBackend(ckpt, all_cams=True), train_split, 8,
                                                     ivr_percentile=0.6)[0]
    assert read_onnx_metadata(load_fp16(path, tmp_path))["ivr_percentile"] == 0.6  # carried through conversions
    # the runtime normalises as the metadata says, at the threshold chosen on those maps
    frame = np.random.default_rng(1).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    loc = Localizer(path)
    r = loc(frame)
    assert (loc.ivr_percentile, loc.threshold) == (0.6, meta["cam_threshold"])
    np.testing.assert_array_equal(r.scoremap, cam_to_scoremap(r.cam, 96, ivr_percentile=0.6))
    assert Localizer(path, ivr_percentile=0.6).threshold == meta["cam_threshold"]  # its own P: no threshold needed
    with pytest.raises(ValueError, match="chosen on IVR maps of percentile 0.6; give --threshold"):
        Localizer(path, ivr_percentile=0.5)
    min_max = Localizer(path, ivr_percentile=0.0, threshold=0.3)(frame)  # P 0 is min-max
    np.testing.assert_array_equal(min_max.scoremap, normalize_scoremap(upsample_cam(min_max.cam, 96)))
    # a bad value in a model's metadata is refused when it is read, ONNX or engine sidecar
    bad = onnx.load(str(path))
    write_onnx_metadata(bad, {"ivr_percentile": 1.5})
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(MetadataError, match="ivr_percentile must be a number in"):
        read_onnx_metadata(tmp_path / "bad.onnx")
    with pytest.raises(BackendError, match="ivr_percentile must be a number in"):
        load_backend(tmp_path / "bad.onnx")
    for content, error, message in ((json.dumps({**meta, "ivr_percentile": "0.6"}), MetadataError, "ivr_percentile"),
                                    ('{"class_names": ["a"]}', MetadataError,
                                     r"not wsol_edge metadata \(missing wsol_edge_format, mean"),
                                    ("[1, 2]", ValueError, "JSON object")):
        (tmp_path / "m.engine.json").write_text(content)
        with pytest.raises(error, match=message):
            read_sidecar(tmp_path / "m.engine")


def load_fp16(onnx_path, tmp_path):
    out = tmp_path / "m16.onnx"
    assert export_main(["fp16", "--onnx", str(onnx_path), "--output", str(out)]) == 0
    return out


def test_regression_with_flip_and_ivr_scores_every_precision_on_the_served_maps(ckpt, calib_dir, tmp_path):
    out = tmp_path / "table.json"
    assert export_main(["regression", "--checkpoint", str(ckpt), "--workdir", str(tmp_path / "w"), "--dataset",
                        "synthetic", "--data-root", "unused", "--max-images", "8", "--calibration-dir", str(calib_dir),
                        "--num-images", "12", "--method", "minmax", "--tta", "flip", "--ivr-percentile", "0.6",
                        "--calib-dataset", "synthetic", "--calib-data-root", "unused", "--threshold-images", "8",
                        "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    records = result["records"]
    assert [(r["backend"], r["precision"]) for r in records] == [
        ("pytorch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8"),
        ("onnxruntime", "int8"), ("onnxruntime", "int8")]
    assert [r["variant"] for r in records[3:]] == ["s8s8", "u8s8 reduce-range", "u8s8"]  # TensorRT's, x86 without / with VNNI
    meta = read_onnx_metadata(tmp_path / "w" / "model.int8.onnx")
    assert (meta["tta"], meta["ivr_percentile"]) == ("flip", 0.6)
    for r in records:
        assert (r["tta"], r["scoremap_normalization"], r["ivr_percentile"]) == ("flip", "ivr", 0.6)
        d = r["deployed_threshold"]
        assert d["cam_threshold"] == meta["cam_threshold"] and "IVR score maps" in d["source"]
        assert 0 <= d["gt_known_loc"] <= r["metrics"]["gt_known_loc"]  # the best threshold is never worse
    # the PyTorch reference served with the mirror, as the graphs are: the same numbers as ONNX FP32
    assert records[0]["metrics"]["max_box_acc_v2"] == records[1]["metrics"]["max_box_acc_v2"]
    assert records[0]["deployed_threshold"] == records[1]["deployed_threshold"]
    assert "GT-known Loc at the model's tau" in result["table_markdown"]
