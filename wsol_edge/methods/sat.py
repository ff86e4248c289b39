"""SAT, spatial-aware token (Wu et al., ICCV 2023).

Tokens [cls, patches (N = h*w), spatial]; the spatial token has its own positional embedding.
In the last ``sat_depth`` (3) blocks the spatial token's attention logits to every token,
averaged over heads, give a foreground probability per token,
  m = sigmoid( mean_h q_spatial k^T * scale ),
which multiplies the softmaxed attention of every query towards the patch tokens. The
localisation map M is the mean of those blocks' m over the patch tokens (h x w); the classifier is
a 3x3 conv over the patch-token map followed by GAP.
  L = CE + | mean_batch(mean(M)) - area | + mean( (1 - M~) * M~ ),  M~ = M smoothed by a fixed 3x3 Gaussian,
area = 0.25 (batch-area loss, then normalisation loss).

Two variants: the faithful DeiT one (``--backbone deit_tiny|deit_small|deit_base``: 16x16 patch
embedding and 12 blocks, loads timm/DeiT ImageNet weights given with ``--weights``), and a hybrid
whose patch tokens are the 14x14 feature map of a CNN (EfficientNet-Lite0 at output stride 16)
projected to ``dim`` and followed by ``depth`` SAT blocks, which trains on a CPU from the
offline Lite0 weights.

Documented choices where the summary is silent: the mask multiplies attention to patch keys only
(the class and spatial keys keep theirs) and is not renormalised; the Gaussian is [1,2,1]x[1,2,1]/16
with replicate padding; the classifier conv maps the dim channels straight to the classes (as in
TS-CAM), logits = its GAP; the hybrid uses DeiT-Tiny widths (dim 192, 3 heads, MLP x4) and 3 blocks,
all spatial-aware (so its spatial token's first query has seen no image, where DeiT's has passed 9
plain blocks; ``--sat-plain-blocks`` puts plain blocks first); its positional embedding is resized
bicubically when the token grid differs.
Three details of the authors' released code differ from the choices above and are flags, off by
default so committed rows reproduce: ``mask_keys="all"`` (their mask scales the attention to every
key, the class and spatial tokens' own included), ``norm_kernel="authors"`` (their smoothing kernel,
``authors_kernel``: 0.80 at the centre, zero padding) and ``drop_path`` (their stochastic depth, 0.1,
rising linearly over the blocks from 0, as timm does). On cub50 (12 epochs, with ``slow_blocks``, seeds
0 and 1) the three together gain 1.20 MaxBoxAccV2 with seed 0 and tie with seed 1 (+0.29), and leave the
hybrid 4.32 / 2.11 behind CAM (benchmarks/METHODS.md, "The authors' released code, read more closely").
Inference is the same forward without the losses (``SatInference``: the map replaces the CAM).
``slow_blocks=True`` (a project variant) trains every new layer but the classifier conv (projection,
tokens, blocks, norm) at the backbone's rate instead of the new head's 10x: on two-path the same
change to the layers between backbone and classifier took its map from behind CAM to ahead of it
(benchmarks/METHODS.md, "Two-path ablation"). Here (12 epochs, seed 0) it scores 59.35 MaxBoxAccV2
against 55.48 at 10x and stays 5.14 behind CAM, beyond the test sample's noise; off by default.
Trained 24 epochs instead of 12 (seeds 0 and 1, Xeon) it stays 2.95 / 2.88 behind CAM: its mask still does
nothing for the first five epochs (benchmarks/METHODS.md, "Twice the schedule?").
``mask_pool=True`` (a project variant, off by default: the specification pools by plain GAP) makes the
logits each class map's mean weighted by M, sum(M A_k) / sum(M) (``mask_pooled``): with GAP the classifier
reads the background tokens through the residual stream and the loss reaches the mask only through the
attention it scales, so the mask idles for five epochs; pooled under M the loss's gradient on M is
(A_k - logit_k) / sum(M) from the first step, and a uniform mask gives back GAP. With ``slow_blocks``
(12 epochs, seeds 0, 1 and 2, Xeon) it beats CAM: 66.59 / 68.27 / 67.07 MaxBoxAccV2, +2.33 / +3.94 / +3.22
beyond the test sample's noise, and +7.85 / +6.34 over the same row with GAP, seeds 0 and 1
(benchmarks/METHODS.md, "The logits pooled under the mask?").
Training uses the project's SGD like every method; the authors train with AdamW (lr 1e-4, weight
decay 0.05), which is ``--optimizer adamw`` and did not bring the hybrid closer to CAM
(benchmarks/METHODS.md, "Trained as SAT's authors train it").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_weights_file
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD

DEIT_CONFIGS = {"deit_tiny": (192, 3), "deit_small": (384, 6), "deit_base": (768, 12)}  # (dim, heads), 12 blocks


MASK_KEYS = ("patches", "all")
NORM_KERNELS = ("binomial", "authors")


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, mask_keys: str = "patches"):
        super().__init__()
        if mask_keys not in MASK_KEYS:
            raise ValueError(f"unknown SAT mask keys {mask_keys!r}; choose from {', '.join(MASK_KEYS)}")
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.mask_keys = mask_keys
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, num_patches: int | None = None):
        """``num_patches`` set: spatial-aware attention (tokens [cls, patches, spatial]); returns
        (output, mask over the patch tokens [B, N]) — mask is None for a plain block."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) * self.scale   # [B, H, n, n]
        attn = logits.softmax(-1)
        mask = None
        if num_patches is not None:
            fg = torch.sigmoid(logits[:, :, -1, :].mean(1))  # the spatial token's query, mean over heads
            mask = fg[:, 1:1 + num_patches]
            if self.mask_keys == "all":  # the authors' code: the class and spatial keys are scaled too
                key_scale = fg
            else:
                ones = fg.new_ones(b, 1)
                key_scale = torch.cat([ones, mask, ones.expand(b, n - 1 - num_patches)], 1)
            attn = attn * key_scale[:, None, None, :]
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out), mask


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth (timm's DropPath): in training, drop a residual branch for a whole sample
    with probability ``rate`` and scale the kept ones by 1 / (1 - rate)."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    return x * (torch.rand(x.shape[0], *([1] * (x.dim() - 1)), dtype=x.dtype, device=x.device) < keep) / keep


class Block(nn.Module):
    """A DeiT block (timm's parameter names, so DeiT checkpoints load as they are)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 mask_keys: str = "patches"):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, mask_keys)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path_rate = drop_path

    def forward(self, x: torch.Tensor, num_patches: int | None = None):
        y, mask = self.attn(self.norm1(x), num_patches)
        x = x + drop_path(y, self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training), mask


class PatchEmbed(nn.Module):
    """DeiT's 16x16 patch embedding, as the SAT "backbone" (it is what a CNN's features replace)."""

    def __init__(self, dim: int, patch: int = 16):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        self.out_channels = dim
        self.mean, self.std = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)

    def forward(self, x):
        return self.proj(x)

    def layers_in_order(self):
        return [self.proj]


def authors_kernel(size: int = 3, nsig: float = 6.0) -> torch.Tensor:
    """The 3x3 kernel of SAT's released code: 1-D weights are the normal distribution's mass between
    ``size + 1`` points spread evenly over [-nsig - i/2, nsig + i/2], i = (2 nsig + 1) / size; the 2-D
    kernel is the square root of their outer product, normalised to sum 1. With nsig 6 it keeps 0.80
    at the centre (the binomial kernel: 0.25), so it smooths far less."""
    interval = (2 * nsig + 1) / size
    edges = torch.linspace(-nsig - interval / 2, nsig + interval / 2, size + 1, dtype=torch.float64)
    mass = torch.diff(0.5 * (1 + torch.erf(edges / math.sqrt(2))))
    k = torch.sqrt(mass[:, None] * mass[None, :])
    return (k / k.sum()).float()


def check_norm_kernel(kernel: str) -> str:
    if kernel not in NORM_KERNELS:
        raise ValueError(f"unknown SAT smoothing kernel {kernel!r}; choose from {', '.join(NORM_KERNELS)}")
    return kernel


def gaussian_smooth(m: torch.Tensor, kernel: str = "binomial") -> torch.Tensor:
    """[B, 1, h, w] -> the same map smoothed by a fixed 3x3 kernel: ``binomial`` [1,2,1]x[1,2,1]/16 with
    replicate padding (this project's reading of "a fixed 3x3 Gaussian"), or ``authors`` (``authors_kernel``)
    with zero padding, as SAT's released code smooths."""
    if check_norm_kernel(kernel) == "authors":
        return F.conv2d(m, authors_kernel().to(m).reshape(1, 1, 3, 3), padding=1)
    k1 = m.new_tensor([1.0, 2.0, 1.0])
    k = (k1[:, None] * k1[None, :] / 16).reshape(1, 1, 3, 3)
    return F.conv2d(F.pad(m, (1, 1, 1, 1), mode="replicate"), k)


def mask_pooled(class_maps: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """[B, K, h, w] class maps, [B, 1, h, w] map in (0, 1) -> [B, K] logits: each class map's mean weighted
    by the map, sum(m * A) / sum(m). A uniform map gives back the plain GAP."""
    # m is a sigmoid, so its sum over the cells is positive; the floor only guards an underflowed map
    return (class_maps * m).sum((2, 3)) / m.sum((2, 3)).clamp_min(1e-6)


def batch_area_loss(m: torch.Tensor, area: float = 0.25) -> torch.Tensor:
    return (m.mean() - area).abs()


def normalization_loss(m: torch.Tensor, kernel: str = "binomial") -> torch.Tensor:
    s = gaussian_smooth(m, kernel)
    return ((1 - s) * s).mean()


class SAT(nn.Module):
    method = "sat"

    def __init__(self, backbone: nn.Module, num_classes: int, dim: int = 192, heads: int = 3, depth: int = 3,
                 sat_depth: int = 3, grid: int = 14, mlp_ratio: float = 4.0, area: float = 0.25,
                 use_area_loss: bool = True, use_norm_loss: bool = True, slow_blocks: bool = False,
                 drop_path: float = 0.0, mask_keys: str = "patches", norm_kernel: str = "binomial",
                 mask_pool: bool = False):
        super().__init__()
        if not 1 <= sat_depth <= depth:
            raise ValueError("sat_depth must be between 1 and depth")
        if not 0.0 <= drop_path < 1.0:
            raise ValueError(f"SAT drop path rate must be in [0, 1), got {drop_path}")
        self.backbone = backbone
        c = backbone.out_channels
        self.proj = nn.Identity() if c == dim and isinstance(backbone, PatchEmbed) else nn.Conv2d(c, dim, 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.spatial_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1, dim))
        # stochastic depth grows linearly over the blocks to ``drop_path`` at the last, as timm and SAT's authors do
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, r, mask_keys) for r in rates)
        self.norm_kernel = check_norm_kernel(norm_kernel)  # refused here, not at the first training step
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Conv2d(dim, num_classes, 3, padding=1)
        for p in (self.cls_token, self.pos_embed, self.spatial_token, self.spatial_pos):
            nn.init.trunc_normal_(p, std=0.02)
        for mod in self.blocks.modules():
            if isinstance(mod, nn.Linear):
                nn.init.trunc_normal_(mod.weight, std=0.02)
                nn.init.zeros_(mod.bias)
        self.sat_depth, self.area = sat_depth, area
        self.use_area_loss, self.use_norm_loss = use_area_loss, use_norm_loss
        self.slow_blocks, self.mask_pool = slow_blocks, mask_pool
        self.num_classes = num_classes
        self.mean, self.std = backbone.mean, backbone.std

    def no_weight_decay(self) -> list[nn.Parameter]:
        """The learned tokens and position embeddings, which AdamW leaves undecayed (timm's and
        SAT's authors' rule: decaying a token towards 0 only shrinks it)."""
        return [self.cls_token, self.pos_embed, self.spatial_token, self.spatial_pos]

    def pretrained_modules(self) -> list[nn.Module | nn.Parameter]:
        """What ImageNet weights initialise (trained at the backbone's learning rate)."""
        if isinstance(self.backbone, PatchEmbed):
            return [self.backbone, self.blocks, self.norm, self.cls_token, self.pos_embed]
        return [self.backbone]

    def backbone_rate_parameters(self) -> list[nn.Parameter]:
        """With ``slow_blocks``, every new parameter but the classifier conv's (the projection, tokens,
        position embeddings, blocks and final norm): train.py puts these with the pretrained weights,
        at --lr. Without it, none."""
        if not self.slow_blocks:
            return []
        backbone_or_head = {id(p) for p in (*self.backbone.parameters(), *self.head.parameters())}
        return [p for p in self.parameters() if id(p) not in backbone_or_head]

    def positions(self, h: int, w: int) -> torch.Tensor:
        cls_pos, grid_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        g = int(math.isqrt(grid_pos.shape[1]))
        if (g, g) != (h, w):
            grid = grid_pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
            grid_pos = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False).flatten(2).transpose(1, 2)
        return torch.cat([cls_pos, grid_pos], 1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits [B, K], localisation map M [B, 1, h, w] in (0, 1))."""
        logits, _, masks = self.maps(images)
        return logits, masks.mean(0)

    def maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (logits [B, K], class maps of the classifier conv [B, K, h, w] (logits = their GAP, or with
        ``mask_pool`` their mean weighted by the map M), each spatial-aware block's mask [sat_depth, B, 1, h, w])."""
        f = self.proj(self.backbone(images))
        b, d, h, w = f.shape
        n = h * w
        x = torch.cat([self.cls_token.expand(b, -1, -1), f.flatten(2).transpose(1, 2)], 1) + self.positions(h, w)
        x = torch.cat([x, (self.spatial_token + self.spatial_pos).expand(b, -1, -1)], 1)
        masks = []
        first_sat = len(self.blocks) - self.sat_depth
        for i, blk in enumerate(self.blocks):
            x, mask = blk(x, n if i >= first_sat else None)
            if mask is not None:
                masks.append(mask)
        x = self.norm(x)
        patch_map = x[:, 1:1 + n].transpose(1, 2).reshape(b, d, h, w)
        class_maps = self.head(patch_map)
        masks = torch.stack(masks).reshape(-1, b, 1, h, w)
        if self.mask_pool:
            return mask_pooled(class_maps, masks.mean(0)), class_maps, masks
        return class_maps.mean((2, 3)), class_maps, masks

    def training_loss(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        logits, loc = self(images)
        loss = ce = F.cross_entropy(logits, labels)
        self.loss_terms = {"ce": ce.detach()}
        if self.use_area_loss:
            area = batch_area_loss(loc, self.area)
            loss = loss + area
            self.loss_terms["area"] = area.detach()
        if self.use_norm_loss:
            norm = normalization_loss(loc, self.norm_kernel)
            loss = loss + norm
            self.loss_terms["norm"] = norm.detach()
        return loss, logits

    def inference_model(self) -> "SatInference":
        return SatInference(self)


class SatInference(nn.Module):
    """The SAT forward under the common contract: its map stands for every class's CAM."""

    method = "sat"

    def __init__(self, net: SAT):
        super().__init__()
        self.net = net
        self.num_classes, self.mean, self.std = net.num_classes, net.mean, net.std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(images)

    def cams(self, maps: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        return maps[:, 0]

    def all_cams(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.expand(-1, self.num_classes, -1, -1)


def build_sat(backbone_name: str, num_classes: int, *, pretrained: bool, weights: str | None,
              backbone_kwargs: dict, **kw) -> SAT:
    if backbone_name in DEIT_CONFIGS:
        dim, heads = DEIT_CONFIGS[backbone_name]
        model = SAT(PatchEmbed(dim), num_classes, dim=dim, heads=heads, depth=12, **kw)
        if pretrained:
            if not weights:
                raise FileNotFoundError(f"{backbone_name} ImageNet weights cannot be downloaded here: pass --weights "
                                        "PATH to a timm/DeiT checkpoint (.pth), or --no-pretrained")
            load_deit_weights(model, weights)
        return model
    from ..models import create_backbone

    return SAT(create_backbone(backbone_name, pretrained=pretrained, weights=weights, **backbone_kwargs),
               num_classes, **kw)


def load_deit_weights(model: SAT, path: str) -> None:
    """A timm or facebookresearch/deit checkpoint: ``patch_embed.*`` -> the backbone, the rest by
    name; the ImageNet head is dropped and the positional embedding resized to this grid."""
    state = load_weights_file(path)
    state = state.get("model", state)
    out = {}
    for k, v in state.items():
        if k.startswith("head.") or k.startswith("head_dist.") or k == "dist_token":
            continue
        out["backbone." + k[len("patch_embed."):] if k.startswith("patch_embed.") else k] = v
    if "pos_embed" in out and out["pos_embed"].shape != model.pos_embed.shape:
        pos = out["pos_embed"]
        g_old, g_new = math.isqrt(pos.shape[1] - 1), math.isqrt(model.pos_embed.shape[1] - 1)
        grid = pos[:, 1:].reshape(1, g_old, g_old, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(g_new, g_new), mode="bicubic", align_corners=False)
        out["pos_embed"] = torch.cat([pos[:, :1], grid.flatten(2).transpose(1, 2)], 1)
    try:
        missing, unexpected = model.load_state_dict(out, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ValueError(f"{path}: not a DeiT checkpoint of this size ({str(exc).splitlines()[1].strip()})") from None
    expected_missing = {"spatial_token", "spatial_pos", "head.weight", "head.bias"}
    if unexpected or set(missing) - expected_missing:
        raise ValueError(f"{path}: not a DeiT checkpoint of this size (missing {sorted(set(missing) - expected_missing)[:3]}, "
                         f"unexpected {unexpected[:3]})")
