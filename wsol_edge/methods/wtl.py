"""Where to Look (Babar & Das, WACV 2021): complementary hiding, CAAM, SSAM, attention fusion loss.

Training: X hides a random set of S x S patches (p = 0.5), X~ hides exactly the complement;
a shared backbone gives F_x, F_x~ (C x N after reshaping).
  CAAM: P = F_x F_x~^T (computed once); Q_x = softmax(P), Q_x~ = softmax(P^T) (softmax over the
        last axis); Y_x = Q_x^T F_x~, Y_x~ = Q_x~^T F_x; F^c = F + delta * Y, deltas start at 0.
  SSAM: per branch, 1x1 convs M, L (C/8) and P (C); K = softmax(M^T L) (N x N); R = P K^T;
        F^s = F + alpha * R, alpha starts at 0.
  F^t = conv(F^c + F^s) (3x3 conv + ReLU), GAP, classifier X / classifier X~.
  L_fuse = || V_x/|V_x| - V_x~/|V_x~| ||^2 over the GT-class CAMs; L = CE_x + CE_x~ + beta L_fuse.
Inference: no hiding, CAAM and SSAM off (identity), so F^c + F^s = 2F: the exported graph is
backbone -> conv(2F) -> GAP -> classifier X, i.e. a CamModel whose extra conv weights are doubled.

Documented choices where the paper is silent: one aggregation conv shared by both branches (so
inference has one conv); 3x3 conv + ReLU as in VGG-CAM's conv6; SSAM's softmax over the key axis
(SAGAN); ``patch="mixed"`` draws S uniformly from {16, 32, 44, 56} per image.

``aggregation`` (the paper names a conv without its size): ``"conv3x3"`` (default, the choice
above), ``"conv1x1"`` (1x1 conv + ReLU) or ``"linear"`` (a bare 1x1 conv: the served map is then
a low-rank CAM of the backbone's features). Why offer them: on two-path, the project's 3x3 head
between backbone and map cost most of the localisation (benchmarks/METHODS.md, "Two-path ablation"); here, on
cub50 at 8 epochs, the bare 1x1 conv scores 2.86 MaxBoxAccV2 above the 3x3 conv (one seed) and
still trails CAM, so the default stays.

L_fuse's reduction (the paper's eq. 14 writes the squared difference of the two unit vectors
without saying how it is reduced to a scalar): ``fuse_reduction="mean"`` (default) averages
over the N map positions, as the attention-transfer loss the paper cites as its inspiration
([43], Zagoruyko & Komodakis: ``(at(x) - at(y)).pow(2).mean()`` with beta = 1000) does;
``"sum"`` is the literal squared norm (0 identical, 2 orthogonal). The choice sets the real
weight of beta = 50. ``python -m benchmarks.wtl_gradients`` (benchmarks/results/
cub50_wtl_gradients.json: ImageNet EfficientNet-Lite0, output stride 16, N = 196, fresh heads,
two batches of 32) measured the gradient norm of 50 x summed L_fuse at 165-196x that of the two
cross-entropies, so under the gradient clipping CAAM/SSAM need the classifiers stayed at chance
(train accuracy 2.3% after 3 epochs, with or without a beta warm-up); 50 x mean is 0.84-1.0x.

``aggregation="linear_identity"`` (a project variant): a bare 1x1 conv that keeps the backbone's C
channels (``agg_channels`` does not apply), its weight initialised to I/2 and its bias to 0, so
conv(F^c + F^s) = F while delta and alpha are 0: a fresh Where-to-Look is then CAM's own head (the
backbone's features, GAP, a classifier) read by two classifiers, and the served model starts as a
plain CAM. Why: the 512-channel convs start as a random projection of the backbone's features that
the classifiers must learn through; at the backbone's rate (``slow_aggregation``) it hardly moves
from there, and that row's classifier fits its hidden training images more slowly than HaS's,
whose head reads the backbone directly (70.7% against 79.4% training accuracy in the 12th epoch).
On cub50 (12 epochs, seed 0, at the backbone's rate) it fits as fast as HaS but localises worse: 61.27
MaxBoxAccV2, 3.00 behind CAM beyond noise (benchmarks/METHODS.md, "Longer schedule", its Where-to-Look
rows); off by default.

``slow_aggregation=True`` (a project variant) trains the aggregation conv at the backbone's rate
(``--lr``) instead of the new head's (``--lr x --head-lr-mult``); the classifiers stay at the
head's. Why: the served map is classifier X over that conv, a product of two new matrices; on
two-path the same change to its extractors (bare 1x1 convs, like ``aggregation="linear"``) took
its attention path's training cross-entropy from far below CAM's to CAM's and its map from 2-4
MaxBoxAccV2 behind CAM to ahead of it (benchmarks/METHODS.md, "Two-path ablation"). Here (bare 1x1
conv, L_fuse on positive parts, 12 epochs, seed 0) it scores 62.71 MaxBoxAccV2, about 2.9 above the
10x conv (seeds 1, 2) and still 1.78 behind CAM, beyond the test sample's noise; off by default.

``whole_share`` (a project variant, default 0: the paper's pairs always hide) shows that share of
the images whole to both branches. Why: Where-to-Look's mixed sizes are Hide-and-Seek's without
its 0 (hide nothing), since the complement of nothing hidden is a blank image; so its classifiers
never see a whole bird in training, though every test image is whole, and they classify far worse
than HaS's (Top-1 Cls 61.5 against 70.8-72.4 on cub50 at 12 epochs), whose draw shows one batch in
five whole. ``whole_share=0.2`` puts that share back (both views whole: L_fuse then compares the two
classifiers' maps of one image). On cub50 (12 epochs, seed 0, with the bare 1x1 aggregation at the
backbone's rate) it lifts Top-1 Cls from 61.48 to 65.15 and leaves the maps where they were: 62.63
MaxBoxAccV2, 1.63 behind CAM beyond noise (benchmarks/METHODS.md, "Whole images too?"); off by default.

``fuse_map="relu"`` (a project variant, not the paper's: eq. 13's maps are raw and signed) applies
L_fuse to the maps' positive parts, as the attention maps of [43] are non-negative. Why: every
ablation row trained with the raw-map L_fuse has flat maps that carry no object (inside/outside
the GT box ~1.0), and their GT-class maps are signed with large negative regions where the row
without L_fuse has a positive blob on a ~0 background (``python -m benchmarks.map_contrast``
records each model's raw map range and how well the two branches' maps agree). The hypothesis
this variant tests (not yet trained on cub50): a raw-map L_fuse spends its gradient matching the
negative background, which localization ignores.

``use_caam=False`` (``--no-caam``, the paper's ablation switch) is what brings Where-to-Look level with CAM
here. CAAM's Y_x = Q_x^T F_x~ is a channel mix of the complementary view's features at the same positions,
and its deltas grow to about 0.55, where delta * Y is twice the rms of F: where view X hides a patch,
branch X still sees what view X~ shows there. That this undoes the hiding Hide-and-Seek's maps gain from
is the explanation the no-CAAM row was trained to test; the row shows that CAAM costs the maps, not why.
On cub50 (12 epochs, the 512-channel bare 1x1 aggregation at the backbone's rate and one image in five
whole) dropping CAAM lifts MaxBoxAccV2 from 62.63 to 65.49 (seed 0, +2.86 beyond noise) and Top-1 Cls from
65.15 to 71.13, and halves the training time; against CAM it is +1.22 / -0.55 / +0.96 with seeds
0 / 1 / 2, ties with seeds 1 and 2 (benchmarks/METHODS.md, "Without CAAM?"). CAAM stays on by default: it is the
specification's, and inference drops it either way.

``beta_warmup_epochs`` (default 0, the paper's constant beta) ramps beta linearly from 0 over
that many epochs.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models.cam import CamModel
from .hiding import WTL_PATCH_SIZES, hide, patch_grid_mask
from .identity_head import head_channels, identity_conv


def complementary_masks(batch: int, height: int, width: int, patch: int | str, p: float = 0.5,
                        generator: torch.Generator | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(visible_x, visible_x~) with visible_x + visible_x~ == 1 everywhere."""
    if patch == "mixed":
        sizes = torch.randint(len(WTL_PATCH_SIZES), (batch,), generator=generator)
        vis = torch.cat([patch_grid_mask(1, height, width, WTL_PATCH_SIZES[int(s)], p, generator, device) for s in sizes])
    else:
        vis = patch_grid_mask(batch, height, width, int(patch), p, generator, device)
    return vis, 1 - vis


def with_whole_images(vis: torch.Tensor, vis_t: torch.Tensor, share: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image, with probability ``share``, seen whole by both views (HaS's patch size 0); the
    other images keep their complementary pair."""
    if share <= 0.0:
        return vis, vis_t
    whole = (torch.rand(vis.shape[0], 1, 1, 1, generator=generator, device=vis.device) < share).to(vis.dtype)
    return vis + whole * (1 - vis), vis_t + whole * (1 - vis_t)


def check_whole_share(share: float) -> float:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"Where-to-Look whole-image share must be in [0, 1], got {share}")
    return float(share)


class CAAM(nn.Module):
    """Channel-wise assisted attention between the two complementary branches."""

    def __init__(self):
        super().__init__()
        self.delta_x = nn.Parameter(torch.zeros(()))
        self.delta_xt = nn.Parameter(torch.zeros(()))

    @staticmethod
    def attention(fx: torch.Tensor, fxt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q_x, Q_x~) [B, C, C] from ONE product P = F_x F_x~^T and its transpose."""
        prod = torch.bmm(fx, fxt.transpose(1, 2))
        return prod.softmax(-1), prod.transpose(1, 2).softmax(-1)

    def forward(self, fx: torch.Tensor, fxt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = fx.shape
        x, xt = fx.reshape(b, c, h * w), fxt.reshape(b, c, h * w)
        qx, qxt = self.attention(x, xt)
        yx = torch.bmm(qx.transpose(1, 2), xt)
        yxt = torch.bmm(qxt.transpose(1, 2), x)
        return (x + self.delta_x * yx).reshape(b, c, h, w), (xt + self.delta_xt * yxt).reshape(b, c, h, w)


class SSAM(nn.Module):
    """SAGAN-style spatial self-attention of one branch."""

    def __init__(self, channels: int):
        super().__init__()
        self.m = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.l = nn.Conv2d(channels, max(channels // 8, 1), 1)
        self.p = nn.Conv2d(channels, channels, 1)
        self.alpha = nn.Parameter(torch.zeros(()))

    def attention(self, f: torch.Tensor) -> torch.Tensor:
        b, _, h, w = f.shape
        m, l = self.m(f).flatten(2), self.l(f).flatten(2)   # [B, C/8, N]
        return torch.bmm(m.transpose(1, 2), l).softmax(-1)  # K = softmax(M^T L), [B, N, N]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        r = torch.bmm(self.p(f).flatten(2), self.attention(f).transpose(1, 2))  # R = P K^T
        return f + self.alpha * r.reshape(b, c, h, w)


AGGREGATIONS = ("conv3x3", "conv1x1", "linear", "linear_identity")
DEFAULT_AGG_CHANNELS = 512


def aggregation_conv(cin: int, cout: int, kind: str = "conv3x3") -> nn.Sequential:
    """F^t = conv(F^c + F^s); its first layer is the conv (inference doubles its weight)."""
    if kind == "linear_identity":
        return nn.Sequential(identity_conv(cin, cout, "aggregation", 0.5))  # F^c + F^s = 2F at the start (delta = alpha = 0): conv(2F) = F
    if kind == "conv3x3":
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))
    if kind == "conv1x1":
        return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
    if kind == "linear":
        return nn.Sequential(nn.Conv2d(cin, cout, 1))
    raise ValueError(f"unknown Where-to-Look aggregation {kind!r}; choose from {', '.join(AGGREGATIONS)}")


FUSE_REDUCTIONS = ("mean", "sum")
FUSE_MAPS = ("raw", "relu")


def check_fuse_options(reduction: str, fuse_map: str) -> None:
    if reduction not in FUSE_REDUCTIONS:
        raise ValueError(f"fuse reduction must be one of {FUSE_REDUCTIONS}, got {reduction!r}")
    if fuse_map not in FUSE_MAPS:
        raise ValueError(f"fuse map must be one of {FUSE_MAPS}, got {fuse_map!r}")


def fusion_loss(cam_x: torch.Tensor, cam_xt: torch.Tensor, reduction: str = "sum", fuse_map: str = "raw",
                eps: float = 1e-12) -> torch.Tensor:
    """Batch mean of (V_x/|V_x| - V_x~/|V_x~|)^2 summed over positions (0 identical, 2 orthogonal),
    or averaged over them (``reduction="mean"``: the sum / N). ``fuse_map="relu"`` compares the
    maps' positive parts only (an all-negative map becomes the zero vector)."""
    check_fuse_options(reduction, fuse_map)
    if fuse_map == "relu":
        cam_x, cam_xt = cam_x.relu(), cam_xt.relu()
    vx = F.normalize(cam_x.flatten(1), dim=1, eps=eps)
    vxt = F.normalize(cam_xt.flatten(1), dim=1, eps=eps)
    sq = (vx - vxt) ** 2
    return (sq.sum(1) if reduction == "sum" else sq.mean(1)).mean()


class WhereToLook(nn.Module):
    method = "wtl"

    def __init__(self, backbone: nn.Module, num_classes: int, agg_channels: int | None = None, patch: int | str = "mixed",
                 p: float = 0.5, beta: float = 50.0, use_caam: bool = True, use_ssam: bool = True,
                 use_fuse: bool = True, beta_warmup_epochs: float = 0.0, fuse_reduction: str = "mean",
                 fuse_map: str = "raw", aggregation: str = "conv3x3", slow_aggregation: bool = False,
                 whole_share: float = 0.0):
        super().__init__()
        self.whole_share = check_whole_share(whole_share)
        c = backbone.out_channels
        self.backbone = backbone
        self.caam = CAAM() if use_caam else None
        self.ssam_x = SSAM(c) if use_ssam else None
        self.ssam_xt = SSAM(c) if use_ssam else None
        agg_channels = head_channels(aggregation, agg_channels, DEFAULT_AGG_CHANNELS, c, "agg_channels (--wtl-agg-channels)")
        self.agg = aggregation_conv(c, agg_channels, aggregation)
        self.slow_aggregation = slow_aggregation
        self.cls_x = nn.Linear(agg_channels, num_classes)
        self.cls_xt = nn.Linear(agg_channels, num_classes)
        check_fuse_options(fuse_reduction, fuse_map)  # at construction, not at the first training step
        self.fuse_map = fuse_map
        self.patch, self.p, self.beta, self.use_fuse, self.fuse_reduction = patch, p, beta, use_fuse, fuse_reduction
        self.beta_warmup_epochs, self.epochs_done = beta_warmup_epochs, None
        self.num_classes = num_classes
        self.mean, self.std = backbone.mean, backbone.std

    def backbone_rate_parameters(self) -> list[nn.Parameter]:
        """CAAM's deltas and SSAM's alphas: they gate attention that can be ~C times larger than the
        features, so they learn at the backbone's rate, not the new head's (faster, they diverge).
        With ``slow_aggregation`` the aggregation conv too (see the module docstring)."""
        gates = [self.caam.delta_x, self.caam.delta_xt] if self.caam is not None else []
        gates += [ssam.alpha for ssam in (self.ssam_x, self.ssam_xt) if ssam is not None]
        return gates + (list(self.agg.parameters()) if self.slow_aggregation else [])

    def set_progress(self, epochs_done: float) -> None:
        """Called by the training loop before each step (fractional epochs)."""
        self.epochs_done = epochs_done

    def current_beta(self) -> float:
        if self.epochs_done is None or self.beta_warmup_epochs <= 0:
            return self.beta
        return self.beta * min(1.0, self.epochs_done / self.beta_warmup_epochs)

    def branch_features(self, fx: torch.Tensor, fxt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fcx, fcxt = self.caam(fx, fxt) if self.caam is not None else (fx, fxt)
        fsx = self.ssam_x(fx) if self.ssam_x is not None else fx
        fsxt = self.ssam_xt(fxt) if self.ssam_xt is not None else fxt
        return self.agg(fcx + fsx), self.agg(fcxt + fsxt)

    def hidden_features(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """One complementary hiding draw -> backbone features (F_x, F_x~), one backbone pass for both."""
        b, _, h, w = images.shape
        vx, vxt = with_whole_images(*complementary_masks(b, h, w, self.patch, self.p, generator, images.device),
                                    self.whole_share, generator)
        feats = self.backbone(torch.cat([hide(images, vx), hide(images, vxt)]))
        return feats[:b], feats[b:]

    def branches(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        """One complementary hiding draw -> (logits_x, logits_x~, GT-class CAM_x, GT-class CAM_x~)."""
        tx, txt = self.branch_features(*self.hidden_features(images, generator))
        logits_x, logits_xt = self.cls_x(tx.mean((2, 3))), self.cls_xt(txt.mean((2, 3)))
        cam_x = torch.einsum("bc,bchw->bhw", self.cls_x.weight[labels], tx)
        cam_xt = torch.einsum("bc,bchw->bhw", self.cls_xt.weight[labels], txt)
        return logits_x, logits_xt, cam_x, cam_xt

    def training_loss(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        logits_x, logits_xt, cam_x, cam_xt = self.branches(images, labels, generator)
        ce_x, ce_xt = F.cross_entropy(logits_x, labels), F.cross_entropy(logits_xt, labels)
        loss = ce_x + ce_xt
        self.loss_terms = {"ce_x": ce_x.detach(), "ce_xt": ce_xt.detach()}
        if self.use_fuse:
            fuse = fusion_loss(cam_x, cam_xt, self.fuse_reduction, self.fuse_map)
            loss = loss + self.current_beta() * fuse
            self.loss_terms["fuse"] = fuse.detach()  # before beta
        return loss, logits_x

    def inference_model(self) -> CamModel:
        """backbone -> conv(2F) -> GAP -> classifier X, as a plain CamModel (shares the backbone)."""
        agg = copy.deepcopy(self.agg)
        with torch.no_grad():
            agg[0].weight.mul_(2.0)
        model = CamModel(self.backbone, self.num_classes, extra_conv=None)
        model.extra = agg
        model.classifier = self.cls_x
        return model
