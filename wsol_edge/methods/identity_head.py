"""New 1x1 convs between the backbone and the map that start as the identity (a project variant).

Where-to-Look's aggregation conv and two-path's extractors sit between the pretrained features and
the classifier whose rows make the map. Initialised at random, they start as a random projection
that the classifier must learn through; initialised as the identity on the backbone's channels, a
fresh model serves a plain CAM of the backbone's features and the new conv learns away from that.
"""
from __future__ import annotations

import torch
from torch import nn


def identity_conv(cin: int, cout: int, what: str, scale: float = 1.0, bias: bool = True) -> nn.Conv2d:
    """A 1x1 conv on ``cin`` channels with weight ``scale`` x I (and zero bias); another ``cout`` is
    refused, naming the layer (``what``)."""
    if cout != cin:
        raise ValueError(f"the linear_identity {what} keeps the backbone's {cin} channels, not {cout}")
    conv = nn.Conv2d(cin, cin, 1, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(scale * torch.eye(cin)[:, :, None, None])
        if bias:
            conv.bias.zero_()
    return conv


def head_channels(kind: str, given: int | None, default: int, backbone_channels: int, flag: str) -> int:
    """Output channels of a new head conv: the backbone's for ``"linear_identity"`` (another count given
    is refused, naming ``flag``), else ``given`` or ``default``."""
    if kind != "linear_identity":
        return given or default
    if given not in (None, backbone_channels):
        raise ValueError(f"the linear_identity head keeps the backbone's {backbone_channels} channels: leave {flag} "
                         f"unset, not {given}")
    return backbone_channels


def recorded_channels(key: str, kind: str, given: int | None, default: int) -> dict:
    """The channel option a run records in its method_kwargs: none for ``"linear_identity"`` left unset
    (it keeps the backbone's), else ``{key: given or default}``, as every earlier run recorded it."""
    return {} if kind == "linear_identity" and given is None else {key: given or default}
