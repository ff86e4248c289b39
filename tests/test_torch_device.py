"""--device for training and evaluation: what "auto" picks, one-line refusals, and (with a GPU) every
method training on it, with a checkpoint that loads and resumes on a CPU and scores as it does there."""
import json

import pytest
import torch

from wsol_edge import evaluate, train
from wsol_edge.checkpoint import load_checkpoint
from wsol_edge.torch_device import resolve_device

SYN = ["--dataset", "synthetic", "--synthetic-images", "16", "--synthetic-size", "64", "--no-progress",
       "--no-pretrained", "--batch-size", "8", "--precise-bn", "2", "--threshold-images", "8"]
GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU visible to PyTorch")


def test_auto_picks_the_gpu_only_when_pytorch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device(" CPU ") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:0") == "cuda:0"


def test_a_device_pytorch_cannot_use_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"^--device cuda: .*; use --device cpu$"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        resolve_device("cuda:1")
    for name in ("gpu", "cuda:x", "tpu", ""):
        with pytest.raises(ValueError, match="not a device"):
            resolve_device(name)


def test_the_pytorch_backend_refuses_an_unusable_device_in_one_line_before_loading(monkeypatch, tmp_path):
    from wsol_edge.backends import BackendError, load_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = tmp_path / "missing.pt"  # the device is checked first, so no checkpoint is read
    for name, why in (("cuda", "use device cpu"), ("gpu", "not a device")):
        with pytest.raises(BackendError, match=rf"^PyTorch backend: device {name}: .*{why}") as exc:
            load_backend(missing, device=name)
        assert "\n" not in str(exc.value)
    with pytest.raises(BackendError, match="missing.pt"):  # auto is a device here too: the CPU
        load_backend(missing, device="auto")


@pytest.mark.parametrize("module", [train, evaluate])
def test_the_clis_refuse_an_unusable_device_before_any_work(module, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    argv = ([*SYN, "--epochs", "1", "--out", str(out)] if module is train else
            ["--checkpoint", str(tmp_path / "missing.pt"), "--dataset", "synthetic", "--no-progress"])
    assert module.main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --device cuda:") and "\n" not in err
    assert not out.exists()


@GPU
@pytest.mark.parametrize("method, extra", [("cam", []), ("has", []), ("wtl", []), ("icl", []), ("twopath", []),
                                           ("sat", ["--sat-dim", "32", "--sat-heads", "2"])])
def test_every_method_trains_on_the_gpu_and_its_checkpoint_scores_the_same_on_the_cpu(method, extra, tmp_path):
    out = tmp_path / method
    common = [*SYN, "--method", method, *extra, "--out", str(out)]
    assert train.main([*common, "--epochs", "1", "--device", "cuda"]) == 0
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["train_args"]["device"] == "cuda"
    assert state["cuda_rng_state"].dtype == torch.uint8  # resumed hiding/drop draws continue the GPU's stream
    assert state["precise_bn"]["batches"] == 2 and state["cam_threshold"] is not None
    records = {}
    for device in ("cuda", "cpu"):
        assert evaluate.main(["--checkpoint", str(out / "checkpoint.pt"), "--dataset", "synthetic",
                              "--synthetic-images", "16", "--synthetic-size", "64", "--no-progress",
                              "--device", device, "--output", str(tmp_path / f"{device}.json")]) == 0
        records[device] = json.loads((tmp_path / f"{device}.json").read_text())
    assert records["cuda"]["device"] == "cuda" and records["cuda"]["train_device"] == "cuda"
    # the same weights give the same maps up to float rounding, so the same scores on these 16 images
    for key in ("top1_cls", "gt_known_loc", "max_box_acc_v2"):
        assert records["cuda"]["metrics"][key] == pytest.approx(records["cpu"]["metrics"][key], abs=100 / 16 + 1e-6)
    # a GPU-trained run resumes on a CPU (optimizer state comes back to the parameters' device)
    assert train.main([*common, "--epochs", "2", "--device", "cpu", "--resume"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 2


@GPU
def test_gpu_and_cpu_compute_the_same_maps_from_the_same_weights(tmp_path, monkeypatch):
    from wsol_edge.modelio import load_model

    # full float32 on the GPU: TF32's 10-bit mantissa (on by default for cuDNN convs) is not what is checked here
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    out = tmp_path / "cam"
    assert train.main([*SYN, "--epochs", "1", "--device", "cuda", "--out", str(out)]) == 0
    model, _, _ = load_model(out / "checkpoint.pt")
    model.eval()
    x = torch.randn(4, 3, 64, 64)
    labels = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        logits_cpu, feats = model(x)
        cams_cpu = model.cams(feats, labels)
        model.cuda()
        logits_gpu, feats = model(x.cuda())
        cams_gpu = model.cams(feats, labels.cuda()).cpu()
    torch.testing.assert_close(logits_gpu.cpu(), logits_cpu, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(cams_gpu, cams_cpu, atol=1e-3, rtol=1e-3)
