"""The WSOL backbones: VGG16 (CAM variant), ResNet50 (stride-1 last stages), MobileNetV2,
EfficientNet-Lite0/1/2. Each returns features (B, C, h, w) before pooling.

torchvision models are used where torchvision has them. Their ImageNet weights are looked up
offline only (a given file, or torch's hub cache); nothing is downloaded, so a machine without
the weights fails at once with a message instead of hanging on the network.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..checkpoint import load_weights_file
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD
from .efficientnet_lite import LITE_MEAN, LITE_STD, EfficientNetLite, lite_stages, load_lite_weights, offline_lite_weights_path
from .registry import register_backbone

# torchvision's file names for the IMAGENET1K_V1 weights, as they sit in torch.hub's cache.
TORCHVISION_FILES = {
    "vgg16": "vgg16-397923af.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "mobilenet_v2": "mobilenet_v2-b0353104.pth",
}


def _find_torchvision_weights(name: str, weights: str | None) -> str:
    if weights:
        return weights  # load_weights_file says if it is missing
    cached = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[name]
    if cached.is_file():
        return str(cached)
    raise FileNotFoundError(
        f"no ImageNet weights for {name} on this machine (looked in {cached.parent}). Copy torchvision's "
        f"{TORCHVISION_FILES[name]} there, pass --weights PATH, or use --no-pretrained to train from scratch.")


def _load(module: nn.Module, path: str, drop_prefixes: tuple[str, ...] = ()) -> None:
    state = load_weights_file(path)
    state = {k: v for k, v in state.items() if not k.startswith(drop_prefixes)}
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"{path}: weights do not fit (missing {missing[:3]} ...)")


class _Features(nn.Module):
    def __init__(self, body: nn.Module, out_channels: int, mean, std):
        super().__init__()
        self.body = body
        self.out_channels = out_channels
        self.mean, self.std = tuple(mean), tuple(std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def layers_in_order(self) -> list[nn.Module]:
        return list(self.body.children())


@register_backbone("vgg16")
def vgg16(pretrained: bool = True, weights: str | None = None) -> nn.Module:
    """conv1_1..conv5_3 with pool5 removed (14x14 at 224^2); the CAM head adds conv6 (1024)."""
    from torchvision.models import vgg16 as tv_vgg16

    net = tv_vgg16(weights=None)
    if pretrained:
        _load(net, _find_torchvision_weights("vgg16", weights), drop_prefixes=("classifier.",))
    body = nn.Sequential(*list(net.features.children())[:-1])
    feats = _Features(body, 512, IMAGENET_MEAN, IMAGENET_STD)
    feats.extra_conv = 1024  # read by CamModel: the WSOL VGG16-CAM conv6 + ReLU
    return feats


@register_backbone("resnet50")
def resnet50(pretrained: bool = True, weights: str | None = None, large_feature_map: bool = True) -> nn.Module:
    """layer4 with stride 1 (and layer3 too when ``large_feature_map``, 28x28 at 224^2, as
    wsolevaluation's ResNet50-CAM for CUB)."""
    from torchvision.models import resnet50 as tv_resnet50

    net = tv_resnet50(weights=None)
    if pretrained:
        _load(net, _find_torchvision_weights("resnet50", weights), drop_prefixes=("fc.",))
    layers = [net.layer4] + ([net.layer3] if large_feature_map else [])
    for layer in layers:
        layer[0].conv2.stride = (1, 1)
        layer[0].downsample[0].stride = (1, 1)
    body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return _Features(body, 2048, IMAGENET_MEAN, IMAGENET_STD)


@register_backbone("mobilenet_v2")
def mobilenet_v2(pretrained: bool = True, weights: str | None = None, output_stride: int = 32) -> nn.Module:
    from torchvision.models import mobilenet_v2 as tv_mobilenet_v2

    if output_stride not in (16, 32):
        raise ValueError(f"mobilenet_v2 takes output_stride 16 or 32, not {output_stride}")
    net = tv_mobilenet_v2(weights=None)
    if pretrained:
        _load(net, _find_torchvision_weights("mobilenet_v2", weights), drop_prefixes=("classifier.",))
    if output_stride == 16:
        net.features[14].conv[1][0].stride = (1, 1)  # the last stride-2 depthwise conv
    return _Features(net.features, 1280, IMAGENET_MEAN, IMAGENET_STD)


class _LiteFeatures(nn.Module):
    def __init__(self, net: EfficientNetLite):
        super().__init__()
        self.net = net
        self.out_channels = net.out_channels
        self.mean, self.std = LITE_MEAN, LITE_STD

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def layers_in_order(self) -> list[nn.Module]:
        return [self.net.stem, *self.net.blocks, self.net.head]


def _efficientnet_lite(variant: str, pretrained: bool, weights: str | None, output_stride: int,
                       dilated: bool) -> nn.Module:
    net = EfficientNetLite(output_stride=output_stride, stages=lite_stages(variant), dilated=dilated)
    if pretrained:
        load_lite_weights(net, weights or offline_lite_weights_path(variant))
    return _LiteFeatures(net)


@register_backbone("efficientnet_lite0")
def efficientnet_lite0(pretrained: bool = True, weights: str | None = None, output_stride: int = 32,
                       dilated: bool = False) -> nn.Module:
    return _efficientnet_lite("lite0", pretrained, weights, output_stride, dilated)


@register_backbone("efficientnet_lite1")
def efficientnet_lite1(pretrained: bool = True, weights: str | None = None, output_stride: int = 32,
                       dilated: bool = False) -> nn.Module:
    return _efficientnet_lite("lite1", pretrained, weights, output_stride, dilated)


@register_backbone("efficientnet_lite2")
def efficientnet_lite2(pretrained: bool = True, weights: str | None = None, output_stride: int = 32,
                       dilated: bool = False) -> nn.Module:
    return _efficientnet_lite("lite2", pretrained, weights, output_stride, dilated)
