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

``MultiScaleAveraged`` (input sizes): the image is also resized (bilinear) to each of the given sizes and
run through the model; logits are averaged, and each size's raw maps are resized to the finest grid
among them and averaged there, the multi-scale inference weakly supervised segmentation uses for its
CAMs. Why bilinear with half-pixel centres for the maps: it keeps a cell where the scorer's upsampling
draws it, so the sizes' maps land on one another. Sizes must be multiples of the model's stride for
the same reason (otherwise the last cells cover padding, and the map is drawn stretched).

Any method's inference model can be wrapped, since only its own ``cams``/``all_cams`` are called; the
wrapper stays traceable to ONNX (the mirror is a Slice with step -1, the halves a Reshape).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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


class MultiScaleAveraged(nn.Module):
    def __init__(self, model: nn.Module, sizes: tuple[int, ...]):
        super().__init__()
        sizes = tuple(int(s) for s in sizes)
        if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
            raise ValueError(f"test-time input sizes must be distinct positive sizes, got {list(sizes)}")
        self.model = model
        self.sizes = sizes
        self.mean, self.std = model.mean, model.std
        self.num_classes = getattr(model, "num_classes", None)

    def _resized(self, images: torch.Tensor, size: int) -> torch.Tensor:
        if size == images.shape[-1] and size == images.shape[-2]:
            return images
        return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """-> (logits [B, K] averaged over the sizes, one maps input per size)."""
        outputs = [self.model(self._resized(images, s)) for s in self.sizes]
        logits = torch.stack([o[0] for o in outputs]).mean(0)
        return logits, tuple(o[1] for o in outputs)

    def _mean_on_finest_grid(self, maps: list[torch.Tensor]) -> torch.Tensor:
        # int(): while tracing for ONNX the shapes are tensors; the spatial ones are fixed all the same
        strides = {(s / int(m.shape[-2]), s / int(m.shape[-1])) for s, m in zip(self.sizes, maps)}
        if len(strides) != 1 or not all(float(v).is_integer() for v in next(iter(strides))):
            grids = ", ".join(f"{s} px -> {int(m.shape[-2])}x{int(m.shape[-1])}" for s, m in zip(self.sizes, maps))
            raise ValueError(f"test-time input sizes must be multiples of the model's stride ({grids})")
        h = max(int(m.shape[-2]) for m in maps)
        w = max(int(m.shape[-1]) for m in maps)
        lead = maps[0].shape[:-2]
        resized = [m if m.shape[-2:] == (h, w) else
                   F.interpolate(m.reshape(-1, 1, *m.shape[-2:]), size=(h, w), mode="bilinear",
                                 align_corners=False).reshape(*lead, h, w) for m in maps]
        return torch.stack(resized).mean(0)

    def cams(self, maps_input: tuple[torch.Tensor, ...], class_ids: torch.Tensor) -> torch.Tensor:
        return self._mean_on_finest_grid([self.model.cams(x, class_ids) for x in maps_input])

    def all_cams(self, maps_input: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return self._mean_on_finest_grid([self.model.all_cams(x) for x in maps_input])


def augmenting_sizes(sizes, input_size: int | None) -> tuple[int, ...] | None:
    """``sizes`` as a tuple when they ask for more than the model's own ``input_size``, else None (the
    model's own size alone is no augmentation)."""
    return tuple(int(s) for s in sizes) if sizes and tuple(sizes) != (input_size,) else None


def with_tta(model: nn.Module, mode: str | None, input_size: int | None = None,
             sizes: tuple[int, ...] | None = None) -> nn.Module:
    """``model`` wrapped for ``mode`` ("none"/None: unchanged) and, when ``sizes`` names more than the model's
    own ``input_size``, for those input sizes too (the flip, if any, is applied at every size)."""
    if mode in (None, "none"):
        wrapped = model
    elif mode == "flip":
        wrapped = FlipAveraged(model).train(model.training)
    else:
        raise ValueError(f"unknown test-time augmentation {mode!r} (have {', '.join(TTA_MODES)})")
    sizes = augmenting_sizes(sizes, input_size)
    if sizes:
        wrapped = MultiScaleAveraged(wrapped, sizes).train(model.training)
    return wrapped
