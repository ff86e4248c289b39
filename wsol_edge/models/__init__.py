"""Backbones (registry by name) and the CAM model."""
from . import backbones as _backbones  # noqa: F401  (registers the backbones)
from .cam import CamModel
from .efficientnet_lite import LITE_SCALING
from .registry import create_backbone, list_backbones, register_backbone


def build_model(backbone: str, num_classes: int, *, pretrained: bool = True, weights: str | None = None,
                **backbone_kwargs) -> CamModel:
    return CamModel(create_backbone(backbone, pretrained=pretrained, weights=weights, **backbone_kwargs), num_classes)


LITE_BACKBONES = tuple(f"efficientnet_{v}" for v in LITE_SCALING)
__all__ = ["CamModel", "build_model", "create_backbone", "list_backbones", "register_backbone"]


def imagenet_cam_model(backbone: str = "efficientnet_lite0", weights: str | None = None, **backbone_kwargs) -> CamModel:
    """The untrained reference: ImageNet backbone + its own 1000-class classifier as the CAM head.

    Only EfficientNet-Lite0/1/2 have offline ImageNet classifier weights on these machines.
    """
    if backbone not in LITE_BACKBONES:
        raise ValueError(f"the ImageNet CAM baseline is available for {', '.join(LITE_BACKBONES)} only (offline weights)")
    feats = create_backbone(backbone, pretrained=True, weights=weights, **backbone_kwargs)
    model = CamModel(feats, 1000)
    model.classifier = feats.net.classifier
    return model
