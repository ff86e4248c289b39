"""Test-time augmentation behind the inference contract (``forward``, ``cams``, ``all_cams``).

``flip``: the image and its horizontal mirror go through the model as one batch of 2B; logits are
averaged and each map of the mirror is mirrored back before averaging. Why: the models here are not
mirror-symmetric even when trained with random flips (on cub50 they move their boxes about 5 px to
the right, and so the mirror's pass about 5 px to the left: benchmarks/box_offsets.py; the weights'
effective receptive fields sit about 5 px left of where the cells are drawn, benchmarks/field_offset.py,
though TF padding alone would predict the other side), and the average cancels that
(benchmarks/METHODS.md, "Flip test-time augmentation");
moving the map back by a measured shift in one pass does not (models/map_shift.py).
It costs a second forward pass. Vertical flips are not offered: the models never saw upside-down
images.

Any method's inference model can be wrapped, since only its own ``cams``/``all_cams`` are called; the
wrapper stays traceable to ONNX (the mirror is a Slice with step -1, the halves a Reshape).
"""
from __future__ import annotations

import torch
from torch import nn

from ..argtypes import TTA_MODES


def _mean_with_mirror(maps: torch.Tensor) -> torch.Tensor:
    """[2B, ..., w] (image maps first, mirror's second) -> [B, ..., w]: the mirror's maps are mirrored back."""
    pair = maps.reshape(2, -1, *maps.shape[1:])
    return (pair[0] + pair[1].flip(-1)) / 2


class FlipAveraged(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.mean, self.std = model.mean, model.std
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits [B, K] averaged over the pair, the inner model's maps input for all 2B images)."""
        logits, maps_input = self.model(torch.cat([images, images.flip(-1)]))
        pair = logits.reshape(2, -1, logits.shape[-1])
        return (pair[0] + pair[1]) / 2, maps_input

    def cams(self, maps_input: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        return _mean_with_mirror(self.model.cams(maps_input, torch.cat([class_ids, class_ids])))

    def all_cams(self, maps_input: torch.Tensor) -> torch.Tensor:
        return _mean_with_mirror(self.model.all_cams(maps_input))


def with_tta(model: nn.Module, mode: str | None) -> nn.Module:
    """``model`` wrapped for ``mode`` ("none"/None: unchanged)."""
    if mode in (None, "none"):
        return model
    if mode == "flip":
        return FlipAveraged(model).train(model.training)
    raise ValueError(f"unknown test-time augmentation {mode!r} (have {', '.join(TTA_MODES)})")
