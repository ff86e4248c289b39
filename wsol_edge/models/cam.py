"""The CAM model (Zhou et al., CVPR 2016): backbone -> (optional conv) -> GAP -> FC.

``A_c(m, n) = sum_k W_c^k F^k(m, n)``: the CAM of class c contracts the classifier row with
the features, which is exactly what the exported graph computes too.
"""
from __future__ import annotations

import torch
from torch import nn


def class_cams(weight: torch.Tensor, features: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
    """[B, h, w]: row ``class_ids[b]`` of ``weight`` [K, C] contracted with ``features`` [B, C, h, w].
    Gather-multiply-sum rather than einsum: it is the form the exported graph keeps."""
    rows = weight[class_ids]  # [B, C]
    return (rows[:, :, None, None] * features).sum(1)


def all_class_cams(weight: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """[B, K, h, w]: every class's map."""
    return torch.einsum("kc,bchw->bkhw", weight, features)


class CamModel(nn.Module):
    """The inference contract every method reduces to: ``forward(images) -> (logits, maps_input)``,
    ``cams(maps_input, class_ids) -> [B, h, w]`` and ``all_cams(maps_input) -> [B, K, h, w]``.
    Methods whose map is not a plain CAM (two-path, SAT) implement the same three calls."""

    def __init__(self, backbone: nn.Module, num_classes: int, extra_conv: int | None = None):
        super().__init__()
        self.backbone = backbone
        channels = backbone.out_channels
        extra_conv = extra_conv if extra_conv is not None else getattr(backbone, "extra_conv", None)
        if extra_conv:
            self.extra = nn.Sequential(nn.Conv2d(channels, extra_conv, 3, padding=1), nn.ReLU(inplace=True))
            channels = extra_conv
        else:
            self.extra = nn.Identity()
        self.classifier = nn.Linear(channels, num_classes)
        self.num_classes = num_classes
        self.mean, self.std = backbone.mean, backbone.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.extra(self.backbone(images))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits [B, K], features [B, C, h, w])."""
        feats = self.features(images)
        return self.classifier(feats.mean((2, 3))), feats

    def cams(self, features: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """Raw CAMs [B, h, w] of the given class per image (no bias: it is constant over space)."""
        return class_cams(self.classifier.weight, features, class_ids)

    def all_cams(self, features: torch.Tensor) -> torch.Tensor:
        """[B, K, h, w]: every class's CAM (GT-known evaluation needs the GT class's map)."""
        return all_class_cams(self.classifier.weight, features)


def freeze_early_layers(backbone: nn.Module, count: int) -> list[nn.Module]:
    """Freeze the first ``count`` layers of the backbone (weights and BatchNorm statistics).

    Fine-tuning on a few thousand images gains little from updating the high-resolution early
    layers, and their backward pass is most of the CPU cost (about 2.4x for EfficientNet-Lite0).
    Returns the frozen modules; ``model.train()`` must be followed by ``set_frozen_eval``.
    """
    every = backbone.layers_in_order()
    if count > len(every):  # a typo would otherwise freeze the whole backbone without a word
        raise ValueError(f"--freeze-layers {count}: this backbone has {len(every)} layers ({len(every)} freezes all "
                         "of them, so that only the head trains)")
    layers = every[:count]
    for layer in layers:
        for p in layer.parameters():
            p.requires_grad_(False)
    return layers


def set_frozen_eval(layers: list[nn.Module]) -> None:
    for layer in layers:
        layer.eval()
