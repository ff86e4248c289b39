"""Equation-level tests for the seed methods (issue 3): the equations, not just the shapes."""
import json
import math

import torch
import torch.nn.functional as F
import pytest

from wsol_edge.methods.has import HideAndSeek
from wsol_edge.methods.hiding import patch_grid_mask
from wsol_edge.methods.icl import ICL
from wsol_edge.methods.wtl import CAAM, SSAM, WhereToLook, complementary_masks, fusion_loss, with_whole_images
from wsol_edge.models import build_model, create_backbone


def test_complementary_masks_partition_the_image_exactly():
    g = torch.Generator().manual_seed(0)
    for patch in (16, 32, 44, 56, "mixed"):
        vx, vxt = complementary_masks(4, 100, 90, patch, generator=g)
        assert set(vx.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(vx + vxt, torch.ones_like(vx)) and torch.equal(vx * vxt, torch.zeros_like(vx))


def test_whole_image_share_shows_those_images_whole_to_both_views_and_keeps_the_others_complementary():
    vx, vxt = complementary_masks(400, 64, 64, "mixed", generator=torch.Generator().manual_seed(0))
    wx, wxt = with_whole_images(vx, vxt, 0.2, torch.Generator().manual_seed(1))
    whole = (wx == 1).flatten(1).all(1) & (wxt == 1).flatten(1).all(1)
    assert 0.13 < whole.float().mean() < 0.27  # 80 expected of 400
    assert torch.equal(wx[~whole] + wxt[~whole], torch.ones_like(wx[~whole]))
    assert torch.equal(wx[~whole], vx[~whole])
    unchanged = with_whole_images(vx, vxt, 0.0)
    assert unchanged[0] is vx and unchanged[1] is vxt  # share 0: the paper's pairs, untouched
    assert all(torch.equal(v, torch.ones_like(v)) for v in with_whole_images(vx, vxt, 1.0))


def test_wtl_with_every_image_whole_feeds_both_branches_the_unhidden_image():
    m = wtl_model(whole_share=1.0).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        fx, fxt = m.hidden_features(x, torch.Generator().manual_seed(0))
        torch.testing.assert_close(fx, m.backbone(x))
        torch.testing.assert_close(fxt, m.backbone(x))
    with pytest.raises(ValueError, match="whole-image share"):
        wtl_model(whole_share=1.5)


def test_patch_mask_is_constant_on_each_cell():
    m = patch_grid_mask(2, 64, 64, 16, 0.5, torch.Generator().manual_seed(1))
    cells = m.reshape(2, 1, 4, 16, 4, 16)
    assert torch.equal(cells.amax((3, 5)), cells.amin((3, 5)))


def test_caam_two_attentions_come_from_one_product_and_its_transpose():
    torch.manual_seed(0)
    fx, fxt = torch.randn(2, 8, 12), torch.randn(2, 8, 12)
    qx, qxt = CAAM.attention(fx, fxt)
    prod = fx @ fxt.transpose(1, 2)
    torch.testing.assert_close(qx, prod.softmax(-1))
    torch.testing.assert_close(qxt, prod.transpose(1, 2).softmax(-1))
    torch.testing.assert_close(qxt, (fxt @ fx.transpose(1, 2)).softmax(-1))  # = softmax(F_x~ F_x^T)
    torch.testing.assert_close(qx.sum(-1), torch.ones(2, 8))


def test_caam_and_ssam_start_as_identity_and_follow_the_equations():
    torch.manual_seed(0)
    fx, fxt = torch.randn(2, 16, 3, 4), torch.randn(2, 16, 3, 4)
    caam, ssam = CAAM(), SSAM(16)
    assert caam.delta_x.item() == 0 and caam.delta_xt.item() == 0 and ssam.alpha.item() == 0
    ox, oxt = caam(fx, fxt)
    assert torch.equal(ox, fx) and torch.equal(oxt, fxt) and torch.equal(ssam(fx), fx)
    with torch.no_grad():
        caam.delta_x.fill_(0.5)
        ssam.alpha.fill_(2.0)
    x, xt = fx.flatten(2), fxt.flatten(2)
    qx = (x @ xt.transpose(1, 2)).softmax(-1)
    torch.testing.assert_close(caam(fx, fxt)[0], (x + 0.5 * qx.transpose(1, 2) @ xt).reshape_as(fx))
    k = (ssam.m(fx).flatten(2).transpose(1, 2) @ ssam.l(fx).flatten(2)).softmax(-1)
    r = ssam.p(fx).flatten(2) @ k.transpose(1, 2)
    torch.testing.assert_close(ssam(fx), fx + 2.0 * r.reshape_as(fx))


def test_fusion_loss_is_zero_for_identical_and_two_for_orthogonal_maps():
    a = torch.rand(3, 7, 7)
    assert fusion_loss(a, a).item() == pytest.approx(0.0, abs=1e-6)
    assert fusion_loss(a, 5 * a).item() == pytest.approx(0.0, abs=1e-6)  # scale-invariant
    x, y = torch.zeros(1, 4, 4), torch.zeros(1, 4, 4)
    x[0, :2], y[0, 2:] = 1.0, 1.0
    assert fusion_loss(x, y).item() == pytest.approx(2.0)
    assert fusion_loss(x, y, "mean").item() == pytest.approx(2.0 / 16)  # averaged over the 16 positions
    with pytest.raises(ValueError, match="reduction"):
        fusion_loss(x, y, "max")


def test_relu_fusion_loss_compares_positive_parts_only():
    x, y = torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)
    x[0, 0] = torch.tensor([3.0, -5.0])
    y[0, 0] = torch.tensor([1.0, -0.1])
    y[0, 1] = torch.tensor([-2.0, -7.0])
    assert fusion_loss(x, y, "sum", "relu").item() == pytest.approx(0.0, abs=1e-6)  # both relu to (1, 0, 0, 0) direction
    assert fusion_loss(x, y, "sum", "raw").item() > 0.5
    # hand-computed: relu(x) = (3, 0, 0, 4) -> (0.6, 0, 0, 0.8); relu(y) = (0, 1, 0, 0)
    x2, y2 = torch.tensor([[[3.0, -1.0], [-2.0, 4.0]]]), torch.tensor([[[-3.0, 1.0], [0.0, -4.0]]])
    assert fusion_loss(x2, y2, "sum", "relu").item() == pytest.approx(0.36 + 1.0 + 0.64)
    assert fusion_loss(x2, y2, "mean", "relu").item() == pytest.approx(2.0 / 4)
    with pytest.raises(ValueError, match="fuse map"):
        fusion_loss(x, y, "sum", "abs")


def wtl_model(**kw):
    torch.manual_seed(0)
    return WhereToLook(create_backbone("efficientnet_lite0", pretrained=False), 5, agg_channels=32, **kw)


def test_wtl_refuses_unknown_fuse_options_when_built():
    with pytest.raises(ValueError, match="fuse reduction"):
        wtl_model(fuse_reduction="max")
    with pytest.raises(ValueError, match="fuse map"):
        wtl_model(fuse_map="abs")


def test_wtl_total_loss_is_ce_x_plus_ce_xt_plus_beta_fuse():
    m = wtl_model(patch=32, beta_warmup_epochs=1.0).train()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eval()  # deterministic recomputation below
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    loss, logits = m.training_loss(x, y, torch.Generator().manual_seed(7))
    vx, vxt = complementary_masks(2, 64, 64, 32, generator=torch.Generator().manual_seed(7))
    feats = m.backbone(torch.cat([x * vx, x * vxt]))
    tx, txt = m.branch_features(feats[:2], feats[2:])
    lx, lxt = m.cls_x(tx.mean((2, 3))), m.cls_xt(txt.mean((2, 3)))
    cam = lambda cls, t: torch.einsum("bc,bchw->bhw", cls.weight[y], t)  # noqa: E731
    fuse = ((F.normalize(cam(m.cls_x, tx).flatten(1), dim=1) - F.normalize(cam(m.cls_xt, txt).flatten(1), dim=1)) ** 2).mean()
    expected = F.cross_entropy(lx, y) + F.cross_entropy(lxt, y) + 50.0 * fuse  # default: mean over positions and batch
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits, lx)
    m.set_progress(0.25)  # a quarter into the 1-epoch warm-up: beta = 12.5
    loss, _ = m.training_loss(x, y, torch.Generator().manual_seed(7))
    torch.testing.assert_close(loss, expected - 37.5 * fuse)
    assert m.current_beta() == 12.5
    m.set_progress(3.0)
    assert m.current_beta() == 50.0 and wtl_model().current_beta() == 50.0  # no warm-up by default
    literal = wtl_model(patch=32, fuse_reduction="sum").train()
    literal.load_state_dict(m.state_dict())
    for mod in literal.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.eval()
    loss, _ = literal.training_loss(x, y, torch.Generator().manual_seed(7))
    n = tx.shape[2] * tx.shape[3]
    torch.testing.assert_close(loss, expected + 50.0 * (n - 1) * fuse)


def test_wtl_ablation_flags_switch_parts_off():
    m = wtl_model(use_caam=False, use_ssam=False, use_fuse=False)
    assert m.caam is None and m.ssam_x is None and not m.use_fuse
    loss, _ = m.training_loss(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("aggregation", ["conv3x3", "conv1x1", "linear"])
def test_wtl_inference_graph_equals_its_training_path_without_hiding(aggregation):
    m = wtl_model(aggregation=aggregation).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = m.backbone(x)
        tx, _ = m.branch_features(f, f)  # CAAM/SSAM at their identity init: conv(F + F)
        expected_logits = m.cls_x(tx.mean((2, 3)))
        cam_model = m.inference_model().eval()
        logits, feats = cam_model(x)
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(feats, tx)


def test_wtl_aggregation_kinds():
    from wsol_edge.methods.wtl import aggregation_conv

    default = wtl_model()
    assert [type(l).__name__ for l in default.agg] == ["Conv2d", "ReLU"] and default.agg[0].kernel_size == (3, 3)
    pointwise = wtl_model(aggregation="conv1x1")
    assert [type(l).__name__ for l in pointwise.agg] == ["Conv2d", "ReLU"] and pointwise.agg[0].kernel_size == (1, 1)
    linear = wtl_model(aggregation="linear").eval()
    conv = linear.agg[0]
    f = torch.randn(2, linear.backbone.out_channels, 4, 4)
    with torch.no_grad():
        t = linear.agg(f)
        expected = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], f) + conv.bias[None, :, None, None]
        torch.testing.assert_close(t, expected)  # a bare 1x1 conv: no ReLU
        # the served map is a CAM of the backbone's features through one matrix: W_cls (2 A) F + W_cls b
        served = linear.inference_model().eval()
        x = torch.randn(1, 3, 64, 64)
        _, feats = served(x)
        fb = linear.backbone(x)
        torch.testing.assert_close(feats, torch.einsum("oc,bchw->bohw", 2 * conv.weight[:, :, 0, 0], fb)
                                   + conv.bias[None, :, None, None])
    assert t.min() < 0
    with pytest.raises(ValueError, match="unknown Where-to-Look aggregation"):
        aggregation_conv(8, 4, "conv5x5")


def test_wtl_linear_identity_starts_as_cam_on_the_backbones_features():
    """A fresh linear_identity Where-to-Look is CAM's head read by two classifiers: its aggregation
    conv is I/2 on the backbone's C channels, so conv(F^c + F^s) = conv(2F) = F while delta and
    alpha are 0, in training (with hiding) and in the served graph (conv(2F) with the weight doubled)."""
    from wsol_edge.models.cam import class_cams

    torch.manual_seed(0)
    m = WhereToLook(create_backbone("efficientnet_lite0", pretrained=False), 5, aggregation="linear_identity").eval()
    c = m.backbone.out_channels
    conv = m.agg[0]
    assert conv.weight.shape == (c, c, 1, 1) and m.cls_x.in_features == c
    torch.testing.assert_close(conv.weight[:, :, 0, 0], 0.5 * torch.eye(c), rtol=0, atol=0)
    assert not conv.bias.any()
    x, labels = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    with torch.no_grad():
        fx, fxt = m.hidden_features(x, torch.Generator().manual_seed(0))
        tx, txt = m.branch_features(fx, fxt)  # CAAM and SSAM at their identity init
        torch.testing.assert_close(tx, fx)
        torch.testing.assert_close(txt, fxt)
        logits_x, _, cam_x, _ = m.branches(x, labels, torch.Generator().manual_seed(0))
        torch.testing.assert_close(cam_x, class_cams(m.cls_x.weight, fx, labels))  # the plain CAM of the hidden image
        served = m.inference_model().eval()
        f = m.backbone(x)
        logits, feats = served(x)
        torch.testing.assert_close(feats, f)
        torch.testing.assert_close(logits, m.cls_x(f.mean((2, 3))))
        torch.testing.assert_close(served.cams(feats, labels), class_cams(m.cls_x.weight, f, labels))


def test_wtl_linear_identity_refuses_other_channel_counts():
    with pytest.raises(ValueError, match="keeps the backbone's 1280 channels: leave agg_channels"):
        WhereToLook(create_backbone("efficientnet_lite0", pretrained=False), 5, agg_channels=512,
                    aggregation="linear_identity")
    from wsol_edge.methods.wtl import aggregation_conv
    with pytest.raises(ValueError, match="linear_identity aggregation keeps the backbone's 8 channels, not 4"):
        aggregation_conv(8, 4, "linear_identity")
    assert WhereToLook(create_backbone("efficientnet_lite0", pretrained=False), 5).cls_x.in_features == 512  # the default


def test_has_hides_only_in_training_and_reduces_to_cam():
    cam = build_model("efficientnet_lite0", 4, pretrained=False)
    has = HideAndSeek(cam, grid_sizes=(16,))
    assert has.inference_model() is cam
    loss, logits = has.training_loss(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    assert torch.isfinite(loss) and logits.shape == (2, 4)
    with pytest.raises(ValueError, match="Hide-and-Seek: patch sizes must be whole numbers >= 0"):
        HideAndSeek(cam, grid_sizes=(16, -1))


@pytest.mark.parametrize("method,extra", [("has", []), ("wtl", ["--wtl-patch", "16", "--wtl-agg-channels", "32"]),
                                          ("wtl", ["--wtl-patch", "mixed", "--wtl-agg-channels", "32", "--no-caam", "--no-fuse"]),
                                          ("icl", []), ("twopath", ["--twopath-channels", "16"]),
                                          ("sat", ["--sat-dim", "32", "--sat-heads", "2"]),
                                          ("sat", ["--sat-dim", "32", "--sat-heads", "2", "--sat-mask-pool"]),
                                          ("sat", ["--backbone", "deit_tiny", "--no-pretrained"])])
def test_methods_train_evaluate_and_export_through_the_clis(method, extra, tmp_path):
    from wsol_edge import evaluate, train
    from wsol_edge.backends import load_backend
    from wsol_edge.export.__main__ import main as export_main

    syn = ["--dataset", "synthetic", "--synthetic-images", "8", "--synthetic-size", "64", "--no-progress"]
    assert train.main([*syn, "--input-size", "64", "--resize", "72", "--epochs", "1", "--batch-size", "4",
                       "--method", method, *extra, "--out", str(tmp_path)]) == 0
    ckpt = tmp_path / "checkpoint.pt"
    (epoch,) = json.loads((tmp_path / "train_log.json").read_text())["history"]
    terms = {"has": set(), "wtl": {"ce_x", "ce_xt"} | ({"fuse"} if "--no-fuse" not in extra else set()),
             "icl": {"ce", "contrastive", "consistency"}, "twopath": {"ce", "ce_attention"},
             "sat": {"ce", "area", "norm"}}[method]
    assert set(epoch.get("loss_terms", {})) == terms
    if method in ("icl", "twopath", "sat"):  # unit weights: the epoch's loss is the sum of its terms' means
        assert epoch["loss"] == pytest.approx(sum(epoch["loss_terms"].values()), rel=1e-5)
    if method == "icl":  # the epoch split by the drop kind each step drew adds back up to the epoch
        groups = epoch["by_step_group"]
        assert set(groups) <= set(ICL.DROP_KINDS) and sum(g["steps"] for g in groups.values()) == 2
        assert sum(g["images"] for g in groups.values()) == 8
        for key in ("loss", "train_acc"):
            assert epoch[key] == pytest.approx(sum(g[key] * g["images"] for g in groups.values()) / 8, rel=1e-5)
        assert epoch["loss_terms"]["ce"] == pytest.approx(
            sum(g["loss_terms"]["ce"] * g["images"] for g in groups.values()) / 8, rel=1e-5)
    else:
        assert "by_step_group" not in epoch
    assert evaluate.main(["--checkpoint", str(ckpt), *syn, "--output", str(tmp_path / "r.json")]) == 0
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "m.onnx"), "--cam-threshold", "0.3"]) == 0
    onnx_b, torch_b = load_backend(tmp_path / "m.onnx"), load_backend(ckpt)
    assert onnx_b.meta["method"] == method
    x = torch.randn(2, 3, 64, 64).numpy()
    a, b = onnx_b.infer(x), torch_b.infer(x)
    assert abs(a["logits"] - b["logits"]).max() < 1e-3
    assert abs(a["cams"] - b["cams"]).max() <= 1e-4 * max(1.0, abs(b["cams"]).max())  # the method's own map in the graph


# ---------------------------------------------------------------- ICL
from wsol_edge.methods.icl import (ICL, NonLocalAttention, consistency_loss, contrastive_attention_loss,  # noqa: E402
                                   masked_mean, minmax)


def icl_model(**kw):
    torch.manual_seed(0)
    return ICL(build_model("efficientnet_lite0", 4, pretrained=False, output_stride=16), **kw)


def test_icl_fresh_nonlocal_attention_is_adl_channel_mean_then_follows_the_equation():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 3, 5)
    nl = NonLocalAttention(8, inter_channels=4)
    torch.testing.assert_close(nl(x), x.mean(1, keepdim=True))  # W_z starts at 0
    torch.nn.init.normal_(nl.w_z.weight)
    theta, phi, g = nl.theta(x).flatten(2), nl.phi(x).flatten(2), nl.g(x).flatten(2)
    aff = (theta.transpose(1, 2) @ phi).softmax(-1)            # [B, N, N], rows sum to 1
    y = (g @ aff.transpose(1, 2)).reshape(2, 4, 3, 5)
    torch.testing.assert_close(nl(x), (x + nl.w_z(y)).mean(1, keepdim=True))


def test_icl_drop_maps_on_a_hand_made_attention():
    m = icl_model(gamma=0.8, gamma_bg=0.2)
    a = torch.tensor([0.0, 1.0, 2.0, 5.0, 9.0, 10.0]).reshape(1, 1, 2, 3)  # normalised: 0 .1 .2 .5 .9 1
    assert m.drop_map("discriminative", a).flatten().tolist() == [1, 1, 1, 1, 0, 0]
    assert m.drop_map("background", a).flatten().tolist() == [0, 0, 1, 1, 1, 1]
    torch.testing.assert_close(m.drop_map("importance", a), torch.sigmoid(a))
    assert torch.equal(minmax(torch.full((1, 1, 2, 2), 3.0)), torch.zeros(1, 1, 2, 2))  # constant map guard
    wider = icl_model(gamma_bg=0.3)  # --icl-gamma-bg: more of the low-attention area is dropped
    assert wider.drop_map("background", a).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    for bad in (0.0, 0.5, 0.7, -0.1):  # at or past tau_fg the background would overlap the foreground
        with pytest.raises(ValueError, match="gamma_bg"):
            icl_model(gamma_bg=bad)


def test_icl_contrastive_loss_hand_values():
    fg = torch.tensor([[1.0, 0.0]])
    bg = torch.tensor([[0.0, 1.0]])
    # dropped == foreground, orthogonal to the background: cos 1 vs 0 at T = 0.1
    assert contrastive_attention_loss(fg * 3, fg, bg, 0.1).item() == pytest.approx(math.log1p(math.exp(-10)), rel=1e-5)
    # dropped == background: the positive and negative swap
    assert contrastive_attention_loss(bg, fg, bg, 0.1).item() == pytest.approx(math.log1p(math.exp(10)), rel=1e-5)
    # halfway: cos(d, fg) = cos(d, bg) -> log 2
    assert contrastive_attention_loss(fg + bg, fg, bg, 0.5).item() == pytest.approx(math.log(2), rel=1e-5)
    x = torch.arange(8.0).reshape(1, 2, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([[1.5, 5.5]]))
    assert masked_mean(x, torch.zeros_like(mask)).abs().sum() == 0  # an empty region pools to 0, not NaN


def test_icl_consistency_loss_uses_the_last_map_as_a_detached_reference():
    last = torch.rand(1, 1, 4, 4, requires_grad=True)
    early = torch.rand(1, 1, 4, 4, requires_grad=True)
    loss = consistency_loss([early], last)
    torch.testing.assert_close(loss, ((early - last) ** 2).mean())
    loss.backward()
    assert last.grad is None and early.grad is not None
    assert consistency_loss([last.detach().clone()], last).item() == 0
    big = torch.rand(1, 1, 8, 8)  # an earlier layer at twice the resolution is resized to the last one's
    resized = F.interpolate(big, size=(4, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(consistency_loss([big], last), ((resized - last) ** 2).mean())


def test_icl_total_loss_and_ablation_flags():
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    plain = icl_model(use_contrastive=False, use_consistency=False, drop_probs=(0, 0, 1))  # importance map only
    loss, logits = plain.training_loss(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))
    assert icl_model(attention="channel_mean").attention_map(17, torch.ones(1, 4, 2, 2)).shape == (1, 1, 2, 2)
    no_bg = icl_model(use_bg_drop=False)
    assert no_bg.drop_probs[1] == 0 and no_bg.drop_probs.sum().item() == pytest.approx(1.0)
    no_disc = icl_model(drop_probs=(0, 0.25, 0.25))  # weights, normalised: the others' shares double
    assert no_disc.drop_probs.tolist() == [0.0, 0.5, 0.5]
    for bad in [(0, 0, 0), (0.5, -0.25, 0.75), (float("nan"), 0.5, 0.5)]:
        with pytest.raises(ValueError, match="ICL drop probabilities must be 3 non-negative numbers"):
            icl_model(drop_probs=bad)
    full = icl_model()
    assert full.insert_after == [11, 15, 17] and torch.isfinite(full.training_loss(x, y)[0])


def test_icl_loss_weights_scale_their_terms():
    """L = CE + lambda_ca L_ca + lambda_fc L_fc (--icl-loss-weights), each term as logged."""
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    kw = dict(attention="channel_mean", drop_probs=(0, 1, 0))
    for ca, fc in ((1.0, 1.0), (2.0, 1.0), (4.0, 0.5)):
        m = icl_model(lambda_ca=ca, lambda_fc=fc, **kw).eval()
        loss, _ = m.training_loss(x, y)
        t = m.loss_terms
        assert t["contrastive"] > 0 and t["consistency"] > 0
        torch.testing.assert_close(loss.detach(), t["ce"] + ca * t["contrastive"] + fc * t["consistency"])
    for bad in ((-1.0, 1.0), (1.0, float("nan")), (float("inf"), 1.0)):
        with pytest.raises(ValueError, match="ICL loss weights"):
            icl_model(lambda_ca=bad[0], lambda_fc=bad[1])


def test_icl_input_hiding_is_hide_and_seeks_step_and_off_by_default():
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    kw = dict(attention="channel_mean", drop_probs=(0, 0, 1), use_contrastive=False, use_consistency=False)
    hiding = icl_model(hide_grid_sizes=(16,), **kw).eval()  # eval: BatchNorm does not move between the two calls
    loss, _ = hiding.training_loss(x, y, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    torch.multinomial(hiding.drop_probs, 1, generator=g)  # the drop kind is drawn first
    torch.randint(1, (1,), generator=g)                   # then the patch size, from one size
    hidden = x * patch_grid_mask(2, 64, 64, 16, 0.5, g)
    assert (hidden == 0).any() and not torch.equal(hidden, x)
    no_hiding = icl_model(**kw).eval()
    torch.testing.assert_close(loss, no_hiding.training_loss(hidden, y)[0])
    # off by default: the step leaves the generator where ICL alone leaves it
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    icl_model(**kw).training_loss(x, y, g1)
    torch.multinomial(no_hiding.drop_probs, 1, generator=g2)
    assert torch.equal(g1.get_state(), g2.get_state())
    with pytest.raises(ValueError, match="patch sizes must be whole numbers >= 0"):
        icl_model(hide_grid_sizes=(16, -1))


def test_icl_inference_graph_is_the_plain_cam_forward():
    m = icl_model().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        h = x
        for layer in m.backbone.layers_in_order():  # the layered forward ICL trains with, no drop
            h = layer(h)
        cam = m.inference_model()
        logits, feats = cam(x)
    assert cam is m.model and type(cam).__name__ == "CamModel"
    torch.testing.assert_close(feats, h)
    torch.testing.assert_close(logits, cam.classifier(h.mean((2, 3))))


# ---------------------------------------------------------------- two-path
from wsol_edge.methods.twopath import TwoPath  # noqa: E402


def twopath_model(**kw):
    torch.manual_seed(0)
    return TwoPath(create_backbone("efficientnet_lite0", pretrained=False, output_stride=16), 4, channels=16, **kw)


def test_twopath_paths_follow_the_equations():
    m = twopath_model().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, logits_att, f_att, maps, mask = m.paths(x)
        f = m.backbone(x)
        fa, fp = m.extract_attention(f), m.extract_perception(f)
        torch.testing.assert_close(f_att, torch.cat([fa, fp], 1))            # both extractors feed the attention
        w, b = m.att_classifier.weight[:, :, 0, 0], m.att_classifier.bias
        torch.testing.assert_close(maps, torch.einsum("kc,bchw->bkhw", w, f_att) + b[None, :, None, None])
        torch.testing.assert_close(logits_att, maps.mean((2, 3)))
        assert mask.shape == (2, 1, 4, 4) and 0 < mask.min() and mask.max() < 1
        torch.testing.assert_close(logits, m.classifier((fp * (1 + mask)).mean((2, 3))))  # F' = F (1 + M)
        inf = m.inference_model().eval()
        il, feats = inf(x)
        torch.testing.assert_close(il, logits)
        ids = torch.tensor([2, 0])
        torch.testing.assert_close(inf.cams(feats, ids), maps[torch.arange(2), ids] - b[ids, None, None])
        torch.testing.assert_close(inf.all_cams(feats), maps - b[None, :, None, None])


def test_twopath_loss_is_the_sum_of_both_cross_entropies_and_the_shared_ablation():
    m = twopath_model().eval()  # eval: BatchNorm uses running stats, so both calls see the same graph
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    loss, logits = m.training_loss(x, y)
    _, logits_att, *_ = m.paths(x)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) + F.cross_entropy(logits_att, y))
    shared = twopath_model(share_extractor=True)
    assert shared.extract_attention is None and shared.att_classifier.in_channels == 16
    unmasked = twopath_model(use_mask=False).eval()
    with torch.no_grad():
        logits, *_ = unmasked.paths(x)
        fp = unmasked.extract_perception(unmasked.backbone(x))
    torch.testing.assert_close(logits, unmasked.classifier(fp.mean((2, 3))))


def test_twopath_detached_maps_keep_the_forward_and_stop_only_the_perception_loss_at_the_maps():
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    grads = {}
    for detach in (False, True):
        m = twopath_model(extractor_kind="linear", detach_maps=detach).eval()
        logits, _, _, _, mask = m.paths(x)
        grads[detach] = torch.autograd.grad(F.cross_entropy(logits, y),  # the perception path's loss alone
                                            [m.att_classifier.weight, m.extract_attention[0].weight,
                                             m.att_to_mask[0].weight, m.extract_perception[0].weight],
                                            allow_unused=True, materialize_grads=True)
        if detach:  # same seed, same weights: the forward pass is unchanged
            torch.testing.assert_close(logits, plain_logits)
            torch.testing.assert_close(mask, plain_mask)
        plain_logits, plain_mask = logits.detach(), mask.detach()
    att_w, att_extractor, mask_head, perception = grads[True]
    assert att_w.abs().max() == 0 and att_extractor.abs().max() == 0    # the maps learn from CE(logits_att) alone
    assert mask_head.abs().max() > 0 and perception.abs().max() > 0     # the mask head and E_p still train
    assert grads[False][0].abs().max() > 0 and grads[False][1].abs().max() > 0


def test_twopath_extractor_kinds():
    from wsol_edge.methods.twopath import extractor

    default = twopath_model()
    assert [type(m).__name__ for m in default.extract_perception] == ["Conv2d", "BatchNorm2d", "ReLU"] * 2
    assert default.extract_perception[3].groups == 16                       # the 3x3 depthwise conv
    pointwise = twopath_model(extractor_kind="pointwise")
    assert [type(m).__name__ for m in pointwise.extract_attention] == ["Conv2d", "BatchNorm2d", "ReLU"]
    linear = twopath_model(extractor_kind="linear").eval()
    f = torch.randn(2, linear.backbone.out_channels, 4, 4)
    with torch.no_grad():
        e = linear.extract_perception(f)
        torch.testing.assert_close(linear.extract_perception(-2 * f), -2 * e)  # linear: no BN, no ReLU
        torch.testing.assert_close(e, torch.einsum("oc,bchw->bohw", linear.extract_perception[0].weight[:, :, 0, 0], f))
    assert e.min() < 0
    with pytest.raises(ValueError, match="unknown two-path extractor"):
        extractor(8, 4, "wide")


@pytest.mark.parametrize("share", [False, True])
def test_twopath_linear_identity_starts_as_cam_on_the_backbones_features(share):
    """Each linear_identity extractor starts as I on the backbone's C channels: a fresh attention path is
    the CAM (W_a + W_p) F of the backbone's features (W_p F when the extractor is shared), the perception
    path classifies F (1 + M), and the served map is that CAM."""
    from wsol_edge.models.cam import class_cams

    torch.manual_seed(0)
    m = TwoPath(create_backbone("efficientnet_lite0", pretrained=False, output_stride=16), 4,
                extractor_kind="linear_identity", share_extractor=share).eval()
    c = m.backbone.out_channels
    for e in (m.extract_perception, m.extract_attention)[:1 if share else 2]:
        assert [type(l).__name__ for l in e] == ["Conv2d"] and e[0].bias is None
        torch.testing.assert_close(e[0].weight[:, :, 0, 0], torch.eye(c), rtol=0, atol=0)
    x, ids = torch.randn(2, 3, 64, 64), torch.tensor([3, 1])
    with torch.no_grad():
        f = m.backbone(x)
        logits, _, f_att, maps, mask = m.paths(x)
        torch.testing.assert_close(f_att, f if share else torch.cat([f, f], 1))
        w = m.att_classifier.weight[:, :, 0, 0]
        cam_weight = w if share else w[:, :c] + w[:, c:]
        torch.testing.assert_close(logits, m.classifier((f * (1 + mask)).mean((2, 3))))
        inf = m.inference_model().eval()
        _, feats = inf(x)
        torch.testing.assert_close(inf.cams(feats, ids), class_cams(cam_weight, f, ids))
    with pytest.raises(ValueError, match="keeps the backbone's 1280 channels: leave channels"):
        TwoPath(create_backbone("efficientnet_lite0", pretrained=False), 4, channels=256, extractor_kind="linear_identity")
    from wsol_edge.methods.twopath import extractor
    with pytest.raises(ValueError, match="linear_identity extractor keeps the backbone's 8 channels, not 4"):
        extractor(8, 4, "linear_identity")


# ---------------------------------------------------------------- SAT
from wsol_edge.methods.sat import (SAT, Attention, PatchEmbed, batch_area_loss, build_sat,  # noqa: E402
                                   gaussian_smooth, load_deit_weights, normalization_loss)


def test_sat_spatial_aware_attention_equation():
    torch.manual_seed(0)
    att = Attention(8, 2)
    x = torch.randn(3, 1 + 4 + 1, 8)  # cls, 4 patches, spatial token
    out, mask = att(x, num_patches=4)
    q, k, v = att.qkv(x).reshape(3, 6, 3, 2, 4).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) * 4 ** -0.5
    expected_mask = torch.sigmoid(logits[:, :, 5, :].mean(1))[:, 1:5]   # spatial token's query, head mean
    torch.testing.assert_close(mask, expected_mask)
    assert 0 < mask.min() and mask.max() < 1
    scale = torch.cat([torch.ones(3, 1), expected_mask, torch.ones(3, 1)], 1)
    ref = ((logits.softmax(-1) * scale[:, None, None, :]) @ v).transpose(1, 2).reshape(3, 6, 8)
    torch.testing.assert_close(out, att.proj(ref))
    plain, none = att(x)
    assert none is None
    torch.testing.assert_close(plain, att.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(3, 6, 8)))


def test_sat_losses_hand_values():
    half = torch.full((2, 1, 3, 3), 0.5)
    assert batch_area_loss(half).item() == pytest.approx(0.25)
    assert batch_area_loss(torch.cat([torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)])).item() == pytest.approx(0.0)
    assert normalization_loss(half).item() == pytest.approx(0.25)        # smoothing keeps a constant map
    assert normalization_loss(torch.ones(1, 1, 4, 4)).item() == 0 and normalization_loss(torch.zeros(1, 1, 4, 4)).item() == 0
    delta = torch.zeros(1, 1, 5, 5)
    delta[0, 0, 2, 2] = 16.0
    torch.testing.assert_close(gaussian_smooth(delta)[0, 0, 1:4, 1:4], torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]))
    s = gaussian_smooth(delta)[0, 0]
    expected = float(((1 - s) * s).mean())
    assert normalization_loss(delta).item() == pytest.approx(expected)


def test_sat_authors_code_details_mask_every_key_smooth_sharper_and_drop_paths():
    from statistics import NormalDist

    from wsol_edge.methods.sat import authors_kernel, drop_path
    torch.manual_seed(0)
    att = Attention(8, 2, mask_keys="all")
    x = torch.randn(3, 1 + 4 + 1, 8)
    out, mask = att(x, num_patches=4)
    q, k, v = att.qkv(x).reshape(3, 6, 3, 2, 4).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) * 4 ** -0.5
    fg = torch.sigmoid(logits[:, :, 5, :].mean(1))          # every key, the class and spatial tokens' too
    torch.testing.assert_close(mask, fg[:, 1:5])            # the map is still the patch keys' part
    torch.testing.assert_close(out, att.proj(((logits.softmax(-1) * fg[:, None, None, :]) @ v).transpose(1, 2).reshape(3, 6, 8)))
    with pytest.raises(ValueError, match="unknown SAT mask keys 'some'"):
        Attention(8, 2, mask_keys="some")
    # The authors' kernel by hand: the normal mass between -8.17, -2.72, 2.72, 8.17 (nsig 6, 3 taps)
    nd, step = NormalDist(), 13 / 3
    edges = [-6 - step / 2 + i * (12 + step) / 3 for i in range(4)]
    mass = [nd.cdf(b) - nd.cdf(a) for a, b in zip(edges, edges[1:])]
    raw = torch.tensor([[(mi * mj) ** 0.5 for mj in mass] for mi in mass], dtype=torch.float64)
    torch.testing.assert_close(authors_kernel(), (raw / raw.sum()).float())
    assert authors_kernel()[1, 1].item() == pytest.approx(0.8054, abs=1e-4)
    delta = torch.zeros(1, 1, 5, 5)
    delta[0, 0, 2, 2] = 1.0
    torch.testing.assert_close(gaussian_smooth(delta, "authors")[0, 0, 1:4, 1:4], authors_kernel())
    ones = torch.ones(1, 1, 3, 3)  # zero padding: a constant map loses mass at its border, unlike replicate
    assert gaussian_smooth(ones, "authors")[0, 0, 0, 0].item() == pytest.approx(float(authors_kernel()[1:, 1:].sum()))
    assert normalization_loss(ones, "authors").item() > 0 and normalization_loss(ones).item() == 0
    # Stochastic depth: identity in eval; in training each sample keeps its branch scaled by 1/(1-p) or drops it
    y = torch.ones(1000, 2, 3)
    assert torch.equal(drop_path(y, 0.25, training=False), y) and torch.equal(drop_path(y, 0.0, training=True), y)
    d = drop_path(y, 0.25, training=True)
    kept = d[:, 0, 0] != 0
    torch.testing.assert_close(d[kept], torch.full_like(d[kept], 4 / 3))
    assert torch.equal(d[~kept], torch.zeros_like(d[~kept]))
    assert 0.7 < kept.float().mean() < 0.8
    with pytest.raises(ValueError, match="unknown SAT smoothing kernel 'wide'"):
        sat_hybrid(norm_kernel="wide")
    with pytest.raises(ValueError, match="unknown SAT smoothing kernel 'wide'"):
        gaussian_smooth(delta, "wide")
    m = SAT(PatchEmbed(16), 4, dim=16, heads=2, depth=12, sat_depth=3, drop_path=0.1)
    assert [round(b.drop_path_rate, 4) for b in m.blocks] == [round(0.1 * i / 11, 4) for i in range(12)]  # 0 ... 0.1


def sat_hybrid(**kw):
    torch.manual_seed(0)
    return SAT(create_backbone("efficientnet_lite0", pretrained=False, output_stride=16), 4, dim=16, heads=2,
               depth=3, **kw)


def test_sat_map_is_the_mean_of_the_last_blocks_masks_and_the_loss_adds_both_terms():
    m = sat_hybrid().eval()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    masks = []
    hooks = [blk.attn.register_forward_hook(lambda mod, inp, out: masks.append(out[1])) for blk in m.blocks]
    with torch.no_grad():
        logits, loc = m(x)
    for h in hooks:
        h.remove()
    assert loc.shape == (2, 1, 4, 4) and 0 < loc.min() and loc.max() < 1
    torch.testing.assert_close(loc.flatten(1), torch.stack(masks).mean(0))
    loss, train_logits = m.training_loss(x, y)
    torch.testing.assert_close(train_logits, logits)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) + batch_area_loss(loc) + normalization_loss(loc))
    off = sat_hybrid(use_area_loss=False, use_norm_loss=False).eval()
    loss, logits = off.training_loss(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))
    deit_like = SAT(PatchEmbed(16), 4, dim=16, heads=2, depth=4, sat_depth=3)
    deit_like(x)
    assert [blk.attn for blk in deit_like.blocks][:1]  # only the last 3 of 4 blocks are spatial-aware:
    seen = []
    hooks = [blk.attn.register_forward_hook(lambda mod, inp, out: seen.append(out[1] is not None)) for blk in deit_like.blocks]
    deit_like(x)
    assert seen == [False, True, True, True]


def test_sat_inference_graph_equals_the_sat_forward():
    m = sat_hybrid().eval()
    x = torch.randn(2, 3, 64, 64)
    inf = m.inference_model().eval()
    with torch.no_grad():
        logits, loc = m(x)
        il, maps = inf(x)
    torch.testing.assert_close(il, logits)
    torch.testing.assert_close(inf.cams(maps, torch.tensor([1, 2])), loc[:, 0])
    assert inf.all_cams(maps).shape == (2, 4, 4, 4) and torch.equal(inf.all_cams(maps)[:, 3], loc[:, 0])


def test_sat_mask_pool_weights_each_class_map_by_the_map():
    from wsol_edge.methods.sat import mask_pooled
    torch.manual_seed(0)
    a = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(mask_pooled(a, torch.full((2, 1, 4, 4), 0.3)), a.mean((2, 3)))  # uniform: the GAP
    m = torch.zeros(2, 1, 4, 4)
    m[0, 0, 1, 2], m[1, 0, 3, 0], m[1, 0, 0, 0] = 0.5, 0.9, 0.3
    expected = torch.stack([a[0, :, 1, 2], (0.9 * a[1, :, 3, 0] + 0.3 * a[1, :, 0, 0]) / 1.2])
    torch.testing.assert_close(mask_pooled(a, m), expected)
    # d logit_k / d m_i = (A_k,i - logit_k) / sum(m): the loss reaches the map wherever a class map differs from its pooled value
    m = torch.rand(2, 1, 4, 4, requires_grad=True)
    logits = mask_pooled(a, m)
    (grad,) = torch.autograd.grad(logits[1, 2], m)
    torch.testing.assert_close(grad[1, 0], (a[1, 2] - logits[1, 2].detach()) / m[1].detach().sum())
    assert torch.equal(grad[0], torch.zeros_like(grad[0]))
    net = sat_hybrid(mask_pool=True).eval()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    with torch.no_grad():
        logits, loc = net(x)
        _, class_maps, masks = net.maps(x)
        il, maps = net.inference_model().eval()(x)
    torch.testing.assert_close(loc, masks.mean(0))          # the map itself is unchanged
    torch.testing.assert_close(logits, mask_pooled(class_maps, loc))
    assert not torch.allclose(logits, class_maps.mean((2, 3)))
    torch.testing.assert_close(il, logits)
    torch.testing.assert_close(maps, loc)
    loss, train_logits = net.training_loss(x, y)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) + batch_area_loss(loc) + normalization_loss(loc))
    plain = sat_hybrid()  # same seed, same weights: only the pooling differs
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x)[0], class_maps.mean((2, 3)))


def test_sat_deit_loads_timm_style_weights_and_refuses_others(tmp_path):
    torch.manual_seed(0)
    src = build_sat("deit_tiny", 10, pretrained=False, weights=None, backbone_kwargs={})
    timm_state = {("patch_embed." + k[len("backbone."):] if k.startswith("backbone.") else k): v
                  for k, v in src.state_dict().items() if not k.startswith(("head.", "spatial_"))}
    timm_state["head.weight"] = torch.zeros(1000, 192)
    torch.save({"model": timm_state}, tmp_path / "deit.pth")
    dst = build_sat("deit_tiny", 5, pretrained=True, weights=str(tmp_path / "deit.pth"), backbone_kwargs={})
    torch.testing.assert_close(dst.blocks[7].attn.qkv.weight, src.blocks[7].attn.qkv.weight)
    torch.testing.assert_close(dst.backbone.proj.weight, src.backbone.proj.weight)
    with pytest.raises(FileNotFoundError, match="--weights"):
        build_sat("deit_small", 5, pretrained=True, weights=None, backbone_kwargs={})
    with pytest.raises(FileNotFoundError, match="weights file .*none.pth not found"):
        build_sat("deit_tiny", 5, pretrained=True, weights=str(tmp_path / "none.pth"), backbone_kwargs={})
    with pytest.raises(ValueError, match="not a DeiT checkpoint"):
        load_deit_weights(build_sat("deit_small", 5, pretrained=False, weights=None, backbone_kwargs={}),
                          str(tmp_path / "deit.pth"))
