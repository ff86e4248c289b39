"""Backbones by name (timm-style registry): ``create_backbone("efficientnet_lite0", pretrained=True)``."""
from __future__ import annotations

import inspect
from typing import Callable

from torch import nn

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register_backbone(name: str):
    def deco(fn):
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} registered twice")
        _BACKBONES[name] = fn
        return fn
    return deco


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def create_backbone(name: str, *, pretrained: bool = True, weights: str | None = None, **kwargs) -> nn.Module:
    """A feature extractor module with attributes ``out_channels``, ``mean``, ``std``.

    ``pretrained`` loads ImageNet weights from ``weights`` (a file) or the usual offline places;
    when none is found it raises FileNotFoundError saying how to provide one.
    """
    if name not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}")
    return _BACKBONES[name](pretrained=pretrained, weights=weights, **kwargs)


def keyword_defaults(fn: Callable) -> dict:
    """Each parameter of ``fn`` that has a default -> that default, tuples as lists (records hold JSON lists)."""
    params = inspect.signature(fn).parameters.values()
    return {p.name: list(p.default) if isinstance(p.default, tuple) else p.default
            for p in params if p.default is not inspect.Parameter.empty}


def backbone_option_defaults(name: str) -> dict:
    """The default of each option of backbone ``name`` (``output_stride``: 32)."""
    return keyword_defaults(_BACKBONES[name]) if name in _BACKBONES else {}
