"""Mixed-precision training (``wsol_edge.train --amp bf16|fp16``), as timm's and torchvision's references do it.

The training step's forward pass and losses run under ``torch.autocast``: convolutions and matrix products in
the low precision, reductions, softmax and the losses in float32 (autocast's own op lists). The weights, the
optimizer's state, BatchNorm's re-estimation, the threshold search and every export stay float32, so the model
a run ships is the same kind of file as without ``--amp``.

bfloat16 keeps float32's exponent range, so its gradients need no scaling: the choice on GPUs that have it
(compute capability 8.0 and later: A100, H100, Jetson Orin). float16 (Volta, Turing, Jetson Xavier) overflows
above 65504 and loses small gradients below 6e-8, so its loss is multiplied by a running scale before
``backward`` (``torch.amp.GradScaler``); a step whose scaled gradients overflowed is skipped and the scale
halved. The scale travels in the checkpoint, so ``--resume`` goes on where the run stood, and every epoch
records how many steps were skipped.
"""
from __future__ import annotations

AMP_MODES = ("none", "bf16", "fp16")


class MixedPrecision:
    """Autocast for the forward pass, and (float16) the scaled backward pass and step, for one device."""

    def __init__(self, mode: str, device: str):
        import torch

        if mode not in AMP_MODES:
            raise ValueError(f"--amp {mode}: choose one of {', '.join(AMP_MODES)}")
        self.device_type = torch.device(device).type
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        if self.dtype is not None and not torch.amp.is_autocast_available(self.device_type):
            raise ValueError(f"--amp {mode}: this torch has no autocast for {self.device_type}; train without --amp")
        cuda = self.device_type == "cuda"
        if mode == "bf16" and cuda and not torch.cuda.is_bf16_supported(including_emulation=False):
            name = torch.cuda.get_device_name(torch.device(device))
            raise ValueError(f"--amp bf16: {name} has no bfloat16 arithmetic (it came with compute capability 8.0); "
                             "use --amp fp16")
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=mode == "fp16")

    @property
    def scaled(self) -> bool:
        return self.scaler.is_enabled()

    def autocast(self):
        import torch

        return torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward_and_step(self, loss, optimizer, parameters, clip: float | None) -> bool:
        """``loss.backward()``, clipping of the gradients' norm to ``clip`` and the optimizer's step; returns
        False where float16's gradients overflowed and the step was skipped."""
        import torch

        self.scaler.scale(loss).backward()
        if clip:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(parameters, clip)
        if not self.scaled:
            optimizer.step()
            return True
        before = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= before  # update() lowers the scale exactly when it skipped the step

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaled else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaled and state:
            self.scaler.load_state_dict(state)
