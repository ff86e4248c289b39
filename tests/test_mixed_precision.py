"""Mixed-precision training (wsol_edge/mixed_precision.py, train --amp), on the CPU's autocast."""
import pytest
import torch

from wsol_edge import train
from wsol_edge.checkpoint import load_checkpoint, save_checkpoint
from wsol_edge.mixed_precision import MixedPrecision

pytest.importorskip("torchvision")

# small: the CPU runs float16 convolutions slowly
SYN = ["--dataset", "synthetic", "--synthetic-images", "8", "--synthetic-size", "64", "--batch-size", "4",
       "--input-size", "64", "--resize", "72", "--no-progress", "--threshold-images", "0", "--precise-bn", "0",
       "--device", "cpu"]


def one_parameter(lr=1.0):
    p = torch.zeros(4, requires_grad=True)
    return p, torch.optim.SGD([p], lr=lr, momentum=0.0)


def test_clipping_sees_the_true_gradients_under_float16_scaling():
    # gradient 10 on each of 4 entries (norm 20), clipped to norm 1: one SGD step of lr 1 moves p by exactly 1;
    # clipped while still multiplied by the scale (65536), the step would be 65536 times too small
    p, opt = one_parameter()
    assert MixedPrecision("fp16", "cpu").backward_and_step((10 * p).sum(), opt, [p], clip=1.0) is True
    assert torch.linalg.vector_norm(p).item() == pytest.approx(1.0, rel=1e-5)
    p, opt = one_parameter()
    MixedPrecision("fp16", "cpu").backward_and_step((10 * p).sum(), opt, [p], clip=None)
    assert torch.equal(p.detach(), torch.full((4,), -10.0))  # unscaled before the step, not scaled


def test_an_overflowing_float16_step_is_skipped_and_the_scale_halved_and_kept():
    p, opt = one_parameter()
    amp = MixedPrecision("fp16", "cpu")
    assert amp.backward_and_step((p * 3e38).sum(), opt, [p], clip=None) is False  # 3e38 x 65536 overflows
    assert torch.equal(p.detach(), torch.zeros(4))  # skipped: the weights did not move
    assert amp.state_dict()["scale"] == 32768.0
    again = MixedPrecision("fp16", "cpu")
    again.load_state_dict(amp.state_dict())  # what --resume does with the checkpoint's grad_scaler
    assert again.scaler.get_scale() == 32768.0
    opt.zero_grad()
    assert amp.backward_and_step((2 * p).sum(), opt, [p], clip=None) is True
    assert torch.equal(p.detach(), torch.full((4,), -2.0))


def test_bfloat16_needs_no_scale_and_none_is_plain_float32():
    for mode in ("bf16", "none"):
        amp = MixedPrecision(mode, "cpu")
        assert not amp.scaled and amp.state_dict() is None
        p, opt = one_parameter()
        assert amp.backward_and_step((3 * p).sum(), opt, [p], clip=None) is True
        assert torch.equal(p.detach(), torch.full((4,), -3.0))
    with MixedPrecision("bf16", "cpu").autocast():
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.bfloat16
    with MixedPrecision("none", "cpu").autocast():
        assert torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3)).dtype == torch.float32


def test_bfloat16_on_a_gpu_without_it_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(ValueError, match=r"--amp bf16: Tesla T4 has no bfloat16 arithmetic .*use --amp fp16"):
        MixedPrecision("bf16", "cuda:0")


@pytest.mark.parametrize("mode", ["bf16", "fp16"])
@pytest.mark.parametrize("method", ["cam", "has", "wtl", "icl", "twopath", "sat"])
def test_every_method_trains_with_its_convolutions_in_the_low_precision(method, mode, tmp_path):
    conv_dtypes = set()

    def record(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d) and module.training:
            conv_dtypes.add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        assert train.main([*SYN, "--method", method, "--epochs", "1", "--max-steps", "1", "--amp", mode, "--out",
                           str(tmp_path)]) == 0
    finally:
        hook.remove()
    assert conv_dtypes == {torch.bfloat16 if mode == "bf16" else torch.float16}  # autocast was on for the step
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["history"][0]["amp"] == mode and state["train_args"]["amp"] == mode
    assert all(v.dtype != torch.float16 and v.dtype != torch.bfloat16 for v in state["model"].values())
    assert torch.isfinite(torch.tensor(state["history"][0]["loss"]))
    assert (state["grad_scaler"] is not None) == (mode == "fp16")


def test_float16_skipped_steps_are_counted_and_the_scale_resumes(tmp_path, monkeypatch):
    from wsol_edge.methods import PlainCam

    args = [*SYN, "--epochs", "2", "--amp", "fp16", "--out", str(tmp_path)]
    real = PlainCam.training_loss

    def overflowing(self, images, labels):  # a finite loss whose float16 activation gradients overflow
        loss, logits = real(self, images, labels)
        return loss * 1e30, logits

    monkeypatch.setattr(PlainCam, "training_loss", overflowing)
    assert train.main([*args, "--max-steps", "2"]) == 0
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["history"][0]["amp_skipped_steps"] == 2 and state["grad_scaler"]["scale"] == 65536.0 / 4
    monkeypatch.setattr(PlainCam, "training_loss", real)
    save_checkpoint(tmp_path / "checkpoint.pt", {**state, "grad_scaler": {**state["grad_scaler"], "scale": 1024.0}})
    assert train.main([*args, "--resume"]) == 0
    resumed = load_checkpoint(tmp_path / "checkpoint.pt")
    assert resumed["history"][1]["amp_skipped_steps"] == 0
    assert resumed["grad_scaler"]["scale"] == 1024.0  # the checkpoint's scale went on, not a fresh 65536
