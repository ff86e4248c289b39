"""Where a model's map cells really sit in the input frame.

The protocol upsamples an h x w map to the input size S with a plain resize, which puts cell j's value
at pixel (j + 0.5) * S / w - 0.5 (OpenCV's and align_corners=False's convention: 16j + 7.5 at stride
16). That is where the cell's receptive field is centred only for a network whose every strided layer
pads to keep it so. TensorFlow "SAME" padding (the EfficientNet-Lite weights here) pads stride-2 layers
one pixel more on the right and bottom, which moves each layer's sampling grid half an input pixel
right and down: at stride 16 on Lite0 the arithmetic centres are at 16j + 15, 7.5 px right of and
below where the map is drawn. That is the centre with uniform weights; trained weights look where
they look (benchmarks/field_offset.py measures it: on cub50, left of and above the drawn position, so
this correction does not register those maps: benchmarks/METHODS.md, "Where do the map cells
look?"). Symmetric padding around an odd kernel at stride 2 errs the
other way (torchvision's ResNet: centres at 16j, drawn 7.5 px right and down); VGG's 2x2 max pools
keep the resize's grid.

``receptive_field_offset`` measures that displacement on a copy of the model made linear (every
convolution a uniform average over one channel, normalisation and activations removed, max pooling
turned into average pooling): the gradient of one map cell with respect to the input is then its
receptive field with uniform weights, whose centre of mass is the arithmetic centre the padding and
strides give. Measuring rather than adding up strides and pads by hand keeps it right for any
backbone and for wrappers like flip TTA (whose averaged map is centred by construction: 0 across).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
                nn.Tanh, nn.Dropout, nn.Dropout2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


def _linearised(model: nn.Module) -> nn.Module:
    """A one-channel copy: with uniform weights every channel carries the same signal, so one is enough
    (and measuring at several hundred pixels stays cheap)."""
    m = copy.deepcopy(model).double().eval()
    for parent in m.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, _ACTIVATIONS + _NORMS):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.weight.shape[-2:]
            mod.weight = nn.Parameter(torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=torch.float64))
            mod.groups, mod.in_channels, mod.out_channels, mod.bias = 1, 1, 1, None
        elif isinstance(mod, nn.Linear):
            mod.weight = nn.Parameter(torch.ones(mod.out_features, 1, dtype=torch.float64))
            mod.in_features, mod.bias = 1, None
    return m


def drawn_position(index: int, cells: int, size: int) -> float:
    """Pixel where a resize of ``cells`` cells to ``size`` pixels puts cell ``index`` (align_corners=False)."""
    return (index + 0.5) * size / cells - 0.5


def centre_of_mass(field: torch.Tensor) -> tuple[float, float]:
    """(x, y) in pixels of a non-negative (H, W) weight map."""
    field = field.double() / field.sum()
    ys, xs = (torch.arange(n, dtype=torch.float64) for n in field.shape)
    return float((field.sum(0) * xs).sum()), float((field.sum(1) * ys).sum())


def _cell_map(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    _, maps_input = model(images)
    return model.cams(maps_input, torch.zeros(images.shape[0], dtype=torch.long))


def receptive_field_offset(model: nn.Module, input_size: int, max_size: int = 4096) -> tuple[float, float]:
    """(dx, dy) in input pixels: how far right and down of where the resize draws it the centre cell's
    receptive field lies (add it to the upsampled map's position to register the map on the image).

    Measured at an odd multiple of ``input_size`` (every strided layer then sees inputs of the same
    parity as at ``input_size``, hence the same SAME pads), the smallest one at which the centre cell's
    field does not reach the border (up to ``max_size`` px). Raises ValueError if the linearised model
    is not linear (a map that is not a function of convolutions alone: attention, gating) or no size up
    to ``max_size`` holds the field.
    """
    surrogate = _linearised(model)
    probe = torch.rand(2, 1, input_size, input_size, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(0)) + 0.5
    try:
        with torch.no_grad():
            a, b = _cell_map(surrogate, probe[:1]), _cell_map(surrogate, probe[1:])
            both = _cell_map(surrogate, probe[:1] + probe[1:])
    except RuntimeError as e:  # a layer the one-channel copy does not fit (a concatenation, a channel slice)
        raise ValueError(f"cannot measure this model's receptive-field offset: {str(e).splitlines()[0]}") from e
    if not torch.allclose(both, a + b, rtol=1e-6, atol=1e-9):
        raise ValueError("the model's map is not linear in its input once convolutions are made uniform "
                         "(attention or gating in the map path): no receptive-field offset to measure")
    scale = 3
    while input_size * scale <= max_size:
        n = input_size * scale
        # A positive input keeps every functional ReLU in its linear range: the gradient is the field.
        x = torch.full((1, 1, n, n), 1e-3, dtype=torch.float64, requires_grad=True)
        cams = _cell_map(surrogate, x)
        h, w = cams.shape[-2:]
        i, j = h // 2, w // 2
        cams[0, i, j].backward()
        field = x.grad[0].sum(0)
        if not (field[0].any() or field[-1].any() or field[:, 0].any() or field[:, -1].any()):
            cx, cy = centre_of_mass(field)
            return (round(cx - drawn_position(j, w, n), 3) + 0.0,  # + 0.0: no -0.0
                    round(cy - drawn_position(i, h, n), 3) + 0.0)
        scale += 2
    raise ValueError(f"the centre cell's receptive field does not fit in {max_size} px")
