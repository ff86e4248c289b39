"""Move a model's maps sideways by a fixed number of input pixels, behind the inference contract.

Why: the models here are not mirror-symmetric even when trained with random flips; on cub50 they
put their maps about 5 px (of the 224 frame) right of the object and their mirror's pass as far
left (benchmarks/box_offsets.py). Flip TTA cancels that at the cost of a second forward pass;
this shifts the map back in one pass, by the displacement ``benchmarks.map_shift`` measures on
training images (no boxes: the image's map against the mirror's map mirrored back). Only the
horizontal part can be measured that way, so only it is corrected. Measured on cub50 (12-epoch CAM
and ICL-variant checkpoints, three seeds), it does not replace flip: MaxBoxAccV2 drops a little and
flip beats it everywhere, since the asymmetry is mostly a map spreading further right rather than one
displaced as a whole (benchmarks/METHODS.md, "One pass instead of two?"). It stays for those
experiments (``evaluate --map-shift-px``) and is not offered for export or the runtime.

The shift is linear interpolation between neighbouring columns of the low-resolution map, with
the edge columns repeated, so the map keeps its size and the graph stays plain slices (ONNX-able).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def shift_columns(maps: torch.Tensor, cells: float) -> torch.Tensor:
    """``maps`` [..., h, w] moved left by ``cells`` columns (negative: right): out[..., j] =
    maps[..., j + cells], linearly interpolated, edge columns repeated beyond the map."""
    if cells == 0:
        return maps
    k = math.floor(cells)
    a = cells - k
    pad = abs(k) + 1
    w = maps.shape[-1]
    padded = torch.cat([maps[..., :1].expand(*maps.shape[:-1], pad), maps,
                        maps[..., -1:].expand(*maps.shape[:-1], pad)], -1)
    left = padded[..., pad + k: pad + k + w]
    if a == 0:
        return left
    return (1 - a) * left + a * padded[..., pad + k + 1: pad + k + 1 + w]


class ShiftedMaps(nn.Module):
    """Any method's inference model with its maps moved left by ``shift_px`` pixels of the
    ``input_size`` frame (a map displaced right by b px is corrected with shift_px = b)."""

    def __init__(self, model: nn.Module, shift_px: float, input_size: int):
        super().__init__()
        if not math.isfinite(shift_px):
            raise ValueError(f"map shift must be a finite number of pixels, got {shift_px}")
        self.model, self.shift_px, self.input_size = model, float(shift_px), int(input_size)
        self.mean, self.std = model.mean, model.std
        self.num_classes = getattr(model, "num_classes", None)

    def forward(self, images: torch.Tensor):
        return self.model(images)

    def _shift(self, maps: torch.Tensor) -> torch.Tensor:
        return shift_columns(maps, self.shift_px * maps.shape[-1] / self.input_size)

    def cams(self, maps_input, class_ids: torch.Tensor) -> torch.Tensor:
        return self._shift(self.model.cams(maps_input, class_ids))

    def all_cams(self, maps_input) -> torch.Tensor:
        return self._shift(self.model.all_cams(maps_input))
