"""Training-time WSOL methods. Each wraps a backbone, has ``training_loss(images, labels)`` and
reduces with ``inference_model()`` to a CamModel (images -> logits, features -> CAM), which is
what evaluation, export and the runtime serve.

Methods: cam, has (Hide-and-Seek), wtl (Where to Look), icl (in-sample contrastive learning),
twopath (two-path attention classifier), sat (spatial-aware token; DeiT or a CNN-token hybrid).
CAM, HaS, WTL and ICL reduce to a CamModel; two-path and SAT to modules with the same calls.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..models import CamModel, create_backbone
from ..models.registry import keyword_defaults
from .has import HideAndSeek
from .icl import ICL
from .sat import DEIT_CONFIGS, SAT, build_sat
from .twopath import TwoPath
from .wtl import WhereToLook

__all__ = ["DEIT_CONFIGS", "METHODS", "SAT", "build_method", "backbone_of", "method_option_defaults",
           "pretrained_parameter_ids"]

METHODS = ("cam", "has", "wtl", "icl", "twopath", "sat")


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
    kw = dict(method_kwargs or {})
    if method == "sat":
        return build_sat(backbone, num_classes, pretrained=pretrained, weights=weights,
                         backbone_kwargs=backbone_kwargs or {}, **kw)
    if backbone in DEIT_CONFIGS:
        raise ValueError(f"backbone {backbone} serves --method sat only")
    feats = create_backbone(backbone, pretrained=pretrained, weights=weights, **(backbone_kwargs or {}))
    if method == "cam":
        return PlainCam(feats, num_classes)
    if method == "has":
        return HideAndSeek(CamModel(feats, num_classes), **kw)
    if method == "wtl":
        return WhereToLook(feats, num_classes, **kw)
    if method == "icl":
        return ICL(CamModel(feats, num_classes), **kw)
    if method == "twopath":
        return TwoPath(feats, num_classes, **kw)
    raise ValueError(f"unknown method {method!r}; implemented: {', '.join(METHODS)}")


METHOD_CLASSES = {"has": HideAndSeek, "wtl": WhereToLook, "icl": ICL, "twopath": TwoPath, "sat": SAT}


def method_option_defaults(method: str) -> dict:
    """The default of each keyword option of ``method``'s module (what a ``method_kwargs`` without that
    key builds)."""
    return keyword_defaults(METHOD_CLASSES[method].__init__) if method in METHOD_CLASSES else {}


def backbone_of(wrapper: nn.Module) -> nn.Module:
    return wrapper.backbone if hasattr(wrapper, "backbone") else wrapper.model.backbone


def pretrained_parameter_ids(wrapper: nn.Module) -> set[int]:
    """ids of the parameters ImageNet weights initialise (they train at the backbone's rate; new
    heads at ``head_lr_mult`` times it)."""
    parts = wrapper.pretrained_modules() if hasattr(wrapper, "pretrained_modules") else [backbone_of(wrapper)]
    ids = set()
    for part in parts:
        ids |= {id(part)} if isinstance(part, nn.Parameter) else {id(p) for p in part.parameters()}
    return ids
