"""Hide-and-Seek (Singh & Lee, ICCV 2017): hide random grid patches during training only.

Documented choices: patches are hidden with p = 0.5 and filled with the dataset mean (0 after
normalisation); the grid size is drawn per batch from ``grid_sizes`` (the paper draws from
{0, 16, 32, 44, 56}; 0 = no hiding); at test time nothing is hidden, so the model *is* a CamModel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.cam import CamModel
from .hiding import check_grid_sizes, hide_random_grid


class HideAndSeek(nn.Module):
    method = "has"

    def __init__(self, cam_model: CamModel, grid_sizes=(0, 16, 32, 44, 56), p: float = 0.5):
        super().__init__()
        self.model = cam_model
        self.grid_sizes, self.p = check_grid_sizes(grid_sizes, "Hide-and-Seek"), p
        self.mean, self.std = cam_model.mean, cam_model.std

    def training_loss(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        logits, _ = self.model(hide_random_grid(images, self.grid_sizes, self.p, generator))
        return F.cross_entropy(logits, labels), logits

    def inference_model(self) -> CamModel:
        return self.model
