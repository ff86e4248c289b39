"""Training-time WSOL methods. Each wraps a backbone, has ``training_loss(images, labels)`` and
reduces with ``inference_model()`` to a CamModel (images -> logits, features -> CAM), which is
what evaluation, export and the runtime serve.

Implemented: cam, has (Hide-and-Seek), wtl (Where to Look). Not yet: icl, twopath, sat.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..models import CamModel, create_backbone
from .has import HideAndSeek
from .wtl import WhereToLook

METHODS = ("cam", "has", "wtl")


class PlainCam(CamModel):
    """The CAM baseline as a method: cross-entropy on the CamModel itself (so a CAM checkpoint's
    keys are the CamModel's, whichever code version wrote it)."""

    method = "cam"

    def training_loss(self, images, labels, generator=None):
        logits, _ = self(images)
        return F.cross_entropy(logits, labels), logits

    def inference_model(self) -> CamModel:
        return self


def build_method(method: str, backbone: str, num_classes: int, *, pretrained: bool = False, weights: str | None = None,
                 backbone_kwargs: dict | None = None, method_kwargs: dict | None = None) -> nn.Module:
    feats = create_backbone(backbone, pretrained=pretrained, weights=weights, **(backbone_kwargs or {}))
    kw = dict(method_kwargs or {})
    if method == "cam":
        return PlainCam(feats, num_classes)
    if method == "has":
        return HideAndSeek(CamModel(feats, num_classes), **kw)
    if method == "wtl":
        return WhereToLook(feats, num_classes, **kw)
    raise ValueError(f"unknown method {method!r}; implemented: {', '.join(METHODS)}")


def backbone_of(wrapper: nn.Module) -> nn.Module:
    return wrapper.backbone if hasattr(wrapper, "backbone") else wrapper.model.backbone
