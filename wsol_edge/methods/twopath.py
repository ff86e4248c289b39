"""Two-path attention classifier (Park & Ko, Applied Sciences 2021), read through the Attention
Branch Network (Fukui et al., CVPR 2019), the closest public design.

On the shared backbone features F, two feature extractors: E_a (attention extractor) and E_p
(perception extractor).
  Attention path: F_att = [E_a(F), E_p(F)] (both extractors feed it, so the map is controlled by
      both); class maps A = W_att F_att (a 1x1 conv = a CAM classifier), logits_att = GAP(A) + b;
      the attention M = sigmoid(BN(conv1x1(A))) in (0, 1), one channel.
  Perception path: F' = E_p(F) * (1 + M), logits = FC(GAP(F')).
  L = CE(logits_att) + CE(logits).
Inference: both paths run; the logits are the perception path's, and the localisation map is the
attention path's CAM of the chosen class, A_c = W_att,c F_att, so ``TwoPathInference`` serves
the same three calls as a CamModel (forward, cams, all_cams).

Documented choices where the abstract is silent: each extractor is a 1x1 conv (C -> 256) + BN +
ReLU followed by a 3x3 depthwise conv + BN + ReLU (cheap enough for the edge; ``extractor=
"pointwise"`` drops the depthwise conv, ``"linear"`` keeps only the 1x1 conv, with neither BN nor
ReLU, so the attention CAM is a low-rank CAM of the backbone features: the variants that ask which
part of the new head costs the localisation, benchmarks/METHODS.md "Two-path ablation"); ABN's
class-agnostic attention (a 1x1 conv over the class maps) so that training and test use the same
map whatever the label; equal loss weights. ``share_extractor=True`` uses one extractor for both
paths (the ablation of the two-extractor design); ``use_mask=False`` classifies E_p(F) without
the attention re-weighting (the ablation of the perception path's attention). ``detach_maps=True``
feeds the mask head the class maps with their gradient stopped, so the perception path's loss still
trains the mask head (and, through E_p, the backbone) but no longer shapes the class maps the method
deploys: they learn from CE(logits_att) alone, as a CAM does (the question: does the perception loss,
asking for whatever mask helps it classify, cost the maps their extent? On cub50, no: a tie with the
method, benchmarks/METHODS.md "Two-path ablation"). ``slow_extractors=True`` trains both extractors
at the backbone's learning rate instead of the new head's (10x by default): the attention CAM is
W_att E(F), a product of two new matrices, and at the head's rate both move fast at once, which a
CAM's single classifier does not (the question: is that what keeps two-path's maps behind CAM's?
On cub50, mostly: the bare 1x1 extractors at this rate bring two-path level with CAM, +0.74 / +0.07
/ +2.02 MaxBoxAccV2 with seeds 0 / 1 / 2 (seed 1 a tie, on an H100 too), where at 10x they trail it
by 2.74 / 3.94 / 1.97; the specified extractors at this rate stay 7.63 behind, seed 0:
benchmarks/METHODS.md "Two-path ablation"). Off by default, so every
committed two-path row reproduces from its flags.

``extractor_kind="linear_identity"`` (a project variant, with or without ``slow_extractors``): each
extractor a bare 1x1 conv on the backbone's C channels that starts as the identity (``channels`` does
not apply), so a fresh attention path is a CAM of the backbone's features, (W_a + W_p) F, and the
perception path reads F itself (wsol_edge/methods/identity_head.py). Why: the bare 1x1 extractors at the
backbone's rate start as random 256-channel projections and hardly move from them; this asks whether
starting from CAM's own head instead is what the tie with CAM at seed 1 lacks. On cub50 (12 epochs,
seed 0, at the backbone's rate) it is not: the attention path fits the training images faster than CAM
and localises worse, 62.78 MaxBoxAccV2, 1.49 behind CAM beyond noise (benchmarks/METHODS.md, two-path
ablation, "Extractors started as the identity"); off by default.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.cam import all_class_cams, class_cams
from .identity_head import head_channels, identity_conv


EXTRACTORS = ("pointwise_depthwise", "pointwise", "linear", "linear_identity")
DEFAULT_CHANNELS = 256


def extractor(cin: int, cout: int, kind: str = "pointwise_depthwise") -> nn.Sequential:
    if kind == "linear_identity":
        return nn.Sequential(identity_conv(cin, cout, "extractor", bias=False))
    if kind == "linear":
        return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False))
    layers = [nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if kind == "pointwise_depthwise":
        layers += [nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False), nn.BatchNorm2d(cout),
                   nn.ReLU(inplace=True)]
    elif kind != "pointwise":
        raise ValueError(f"unknown two-path extractor {kind!r}; choose from {', '.join(EXTRACTORS)}")
    return nn.Sequential(*layers)


class TwoPath(nn.Module):
    method = "twopath"

    def __init__(self, backbone: nn.Module, num_classes: int, channels: int | None = None, share_extractor: bool = False,
                 use_mask: bool = True, extractor_kind: str = "pointwise_depthwise", detach_maps: bool = False,
                 slow_extractors: bool = False):
        super().__init__()
        c = backbone.out_channels
        channels = head_channels(extractor_kind, channels, DEFAULT_CHANNELS, c, "channels (--twopath-channels)")
        self.backbone = backbone
        self.extract_perception = extractor(c, channels, extractor_kind)
        self.extract_attention = None if share_extractor else extractor(c, channels, extractor_kind)
        att_channels = channels if share_extractor else 2 * channels
        self.att_classifier = nn.Conv2d(att_channels, num_classes, 1)  # the CAM classifier of the attention path
        self.att_to_mask = nn.Sequential(nn.Conv2d(num_classes, 1, 1, bias=False), nn.BatchNorm2d(1))
        self.classifier = nn.Linear(channels, num_classes)              # the perception path's
        self.num_classes, self.use_mask, self.detach_maps = num_classes, use_mask, detach_maps
        self.slow_extractors = slow_extractors
        self.mean, self.std = backbone.mean, backbone.std

    def backbone_rate_parameters(self) -> list[nn.Parameter]:
        """The extractors' parameters when ``slow_extractors`` (else none): train.py puts these with
        the pretrained weights, at --lr."""
        if not self.slow_extractors:
            return []
        extractors = [e for e in (self.extract_attention, self.extract_perception) if e is not None]
        return [p for e in extractors for p in e.parameters()]

    def paths(self, images: torch.Tensor):
        """-> (perception logits, attention logits, attention features F_att, class maps A, mask M)."""
        f = self.backbone(images)
        fp = self.extract_perception(f)
        f_att = fp if self.extract_attention is None else torch.cat([self.extract_attention(f), fp], 1)
        maps = self.att_classifier(f_att)                      # [B, K, h, w], bias included
        logits_att = maps.mean((2, 3))
        mask = torch.sigmoid(self.att_to_mask(maps.detach() if self.detach_maps else maps))  # [B, 1, h, w]
        logits = self.classifier((fp * (1 + mask) if self.use_mask else fp).mean((2, 3)))
        return logits, logits_att, f_att, maps, mask

    def training_loss(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None):
        logits, logits_att, *_ = self.paths(images)
        ce, ce_att = F.cross_entropy(logits, labels), F.cross_entropy(logits_att, labels)
        self.loss_terms = {"ce": ce.detach(), "ce_attention": ce_att.detach()}
        return ce + ce_att, logits

    def inference_model(self) -> "TwoPathInference":
        return TwoPathInference(self)


class TwoPathInference(nn.Module):
    """Both paths; ``forward -> (perception logits, F_att)``, CAMs from the attention classifier."""

    method = "twopath"

    def __init__(self, net: TwoPath):
        super().__init__()
        self.net = net
        self.num_classes, self.mean, self.std = net.num_classes, net.mean, net.std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _, f_att, _, _ = self.net.paths(images)
        return logits, f_att

    def cam_weight(self) -> torch.Tensor:
        return self.net.att_classifier.weight[:, :, 0, 0]  # [K, C_att]

    def cams(self, features: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        return class_cams(self.cam_weight(), features, class_ids)

    def all_cams(self, features: torch.Tensor) -> torch.Tensor:
        return all_class_cams(self.cam_weight(), features)
