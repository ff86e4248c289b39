"""Equation-level tests for the seed methods (issue 3): the equations, not just the shapes."""
import torch
import torch.nn.functional as F
import pytest

from wsol_edge.methods.has import HideAndSeek
from wsol_edge.methods.hiding import patch_grid_mask
from wsol_edge.methods.wtl import CAAM, SSAM, WhereToLook, complementary_masks, fusion_loss
from wsol_edge.models import build_model, create_backbone


def test_complementary_masks_partition_the_image_exactly():
    g = torch.Generator().manual_seed(0)
    for patch in (16, 32, 44, 56, "mixed"):
        vx, vxt = complementary_masks(4, 100, 90, patch, generator=g)
        assert set(vx.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(vx + vxt, torch.ones_like(vx)) and torch.equal(vx * vxt, torch.zeros_like(vx))


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


def wtl_model(**kw):
    torch.manual_seed(0)
    return WhereToLook(create_backbone("efficientnet_lite0", pretrained=False), 5, agg_channels=32, **kw)


def test_wtl_total_loss_is_ce_x_plus_ce_xt_plus_beta_fuse():
    m = wtl_model(patch=32).train()
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
    expected = F.cross_entropy(lx, y) + F.cross_entropy(lxt, y) + 50.0 * fusion_loss(cam(m.cls_x, tx), cam(m.cls_xt, txt))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(logits, lx)


def test_wtl_ablation_flags_switch_parts_off():
    m = wtl_model(use_caam=False, use_ssam=False, use_fuse=False)
    assert m.caam is None and m.ssam_x is None and not m.use_fuse
    loss, _ = m.training_loss(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    assert torch.isfinite(loss)


def test_wtl_inference_graph_equals_its_training_path_without_hiding():
    m = wtl_model().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = m.backbone(x)
        tx, _ = m.branch_features(f, f)  # CAAM/SSAM at their identity init: conv(F + F)
        expected_logits = m.cls_x(tx.mean((2, 3)))
        cam_model = m.inference_model().eval()
        logits, feats = cam_model(x)
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(feats, tx)


def test_has_hides_only_in_training_and_reduces_to_cam():
    cam = build_model("efficientnet_lite0", 4, pretrained=False)
    has = HideAndSeek(cam, grid_sizes=(16,))
    assert has.inference_model() is cam
    loss, logits = has.training_loss(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    assert torch.isfinite(loss) and logits.shape == (2, 4)


@pytest.mark.parametrize("method,extra", [("has", []), ("wtl", ["--wtl-patch", "16", "--wtl-agg-channels", "32"]),
                                          ("wtl", ["--wtl-patch", "mixed", "--wtl-agg-channels", "32", "--no-caam", "--no-fuse"])])
def test_methods_train_evaluate_and_export_through_the_clis(method, extra, tmp_path):
    from wsol_edge import evaluate, train
    from wsol_edge.backends import load_backend
    from wsol_edge.export.__main__ import main as export_main

    syn = ["--dataset", "synthetic", "--synthetic-images", "8", "--synthetic-size", "64", "--no-progress"]
    assert train.main([*syn, "--input-size", "64", "--resize", "72", "--epochs", "1", "--batch-size", "4",
                       "--method", method, *extra, "--out", str(tmp_path)]) == 0
    ckpt = tmp_path / "checkpoint.pt"
    assert evaluate.main(["--checkpoint", str(ckpt), *syn, "--output", str(tmp_path / "r.json")]) == 0
    assert export_main(["onnx", "--checkpoint", str(ckpt), "--output", str(tmp_path / "m.onnx"), "--cam-threshold", "0.3"]) == 0
    onnx_b, torch_b = load_backend(tmp_path / "m.onnx"), load_backend(ckpt)
    assert onnx_b.meta["method"] == method
    x = torch.randn(2, 3, 64, 64).numpy()
    a, b = onnx_b.infer(x), torch_b.infer(x)
    assert abs(a["logits"] - b["logits"]).max() < 1e-3
