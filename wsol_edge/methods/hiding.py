"""Patch hiding shared by Hide-and-Seek, Where-to-Look and ICL's optional input hiding."""
from __future__ import annotations

import torch

WTL_PATCH_SIZES = (16, 32, 44, 56)


def patch_grid_mask(batch: int, height: int, width: int, patch: int, p: float, generator: torch.Generator | None = None,
                    device=None) -> torch.Tensor:
    """[B, 1, H, W] float mask, 1 = visible, 0 = hidden; each patch x patch cell is hidden with
    probability p (cells at the right/bottom border may be partial)."""
    gh, gw = -(-height // patch), -(-width // patch)
    cells = (torch.rand(batch, 1, gh, gw, generator=generator, device=device) >= p).float()
    return cells.repeat_interleave(patch, 2).repeat_interleave(patch, 3)[:, :, :height, :width]


def hide(images: torch.Tensor, visible: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Replace hidden pixels with ``fill``. Inputs are already normalised, so the dataset mean is 0."""
    return images * visible + fill * (1 - visible)


def check_grid_sizes(grid_sizes, method: str) -> tuple[int, ...]:
    """The patch sizes a hiding method draws from, as ints (0: hide nothing); refused at construction,
    since a negative size would only fail inside a training step."""
    if any(int(v) != v or v < 0 for v in grid_sizes):
        raise ValueError(f"{method}: patch sizes must be whole numbers >= 0; got {list(grid_sizes)}")
    return tuple(int(v) for v in grid_sizes)


def hide_random_grid(images: torch.Tensor, grid_sizes: tuple[int, ...], p: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Hide-and-Seek's step: one patch size drawn for the batch from ``grid_sizes`` (0: hide nothing),
    then each cell hidden with probability p."""
    size = grid_sizes[int(torch.randint(len(grid_sizes), (1,), generator=generator))]
    if not size:
        return images
    b, _, h, w = images.shape
    return hide(images, patch_grid_mask(b, h, w, size, p, generator, images.device))
