import pytest
import torch
from torch import nn

from wsol_edge import evaluate
from wsol_edge.models import build_model
from wsol_edge.models.tta import TTA_MODES, FlipAveraged, MultiScaleAveraged, with_tta


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("efficientnet_lite0", 5, pretrained=False, output_stride=16).eval()


def test_flip_averages_the_image_and_its_mirror_back(model):
    # three images, so a mix-up of which half is the mirror, or of the pairing, cannot pass
    x = torch.randn(3, 3, 64, 64)
    ids = torch.tensor([4, 0, 2])
    with torch.no_grad():
        logits, feats = model(x)
        logits_m, feats_m = model(x.flip(-1))
        tta = FlipAveraged(model)
        t_logits, t_in = tta(x)
        torch.testing.assert_close(t_logits, (logits + logits_m) / 2)
        torch.testing.assert_close(tta.cams(t_in, ids), (model.cams(feats, ids) + model.cams(feats_m, ids).flip(-1)) / 2)
        torch.testing.assert_close(tta.all_cams(t_in), (model.all_cams(feats) + model.all_cams(feats_m).flip(-1)) / 2)
    assert (tta.mean, tta.std, tta.num_classes) == (model.mean, model.std, 5)


@pytest.mark.parametrize("method", ["twopath", "sat"])
def test_flip_wraps_the_methods_whose_map_is_not_a_plain_cam(method):
    from wsol_edge.methods.sat import SAT
    from wsol_edge.methods.twopath import TwoPath
    from wsol_edge.models import create_backbone

    torch.manual_seed(0)
    backbone = create_backbone("efficientnet_lite0", pretrained=False, output_stride=16)
    wrapper = TwoPath(backbone, 4, channels=16) if method == "twopath" else SAT(backbone, 4, dim=16, heads=2, depth=3)
    model = wrapper.eval().inference_model().eval()
    x, ids = torch.randn(2, 3, 64, 64), torch.tensor([3, 1])
    with torch.no_grad():
        (logits, maps_in), (logits_m, maps_in_m) = model(x), model(x.flip(-1))
        tta = FlipAveraged(model)
        t_logits, t_in = tta(x)
        torch.testing.assert_close(t_logits, (logits + logits_m) / 2)
        torch.testing.assert_close(tta.cams(t_in, ids), (model.cams(maps_in, ids) + model.cams(maps_in_m, ids).flip(-1)) / 2)
        torch.testing.assert_close(tta.all_cams(t_in),
                                   (model.all_cams(maps_in) + model.all_cams(maps_in_m).flip(-1)) / 2)


def test_flip_of_a_mirror_symmetric_image_is_the_plain_map_made_symmetric(model):
    half = torch.randn(1, 3, 32, 16)
    x = torch.cat([half, half.flip(-1)], -1)  # the image equals its mirror
    ids = torch.tensor([1])
    with torch.no_grad():
        logits, feats = model(x)
        t_logits, t_in = FlipAveraged(model)(x)
        plain = model.cams(feats, ids)
        torch.testing.assert_close(t_logits, logits)
        torch.testing.assert_close(FlipAveraged(model).cams(t_in, ids), (plain + plain.flip(-1)) / 2)


def test_with_tta_modes():
    m = nn.Linear(2, 2)
    assert with_tta(m, "none") is m and with_tta(m, None) is m
    assert isinstance(with_tta(build_model("efficientnet_lite0", 2, pretrained=False).eval(), "flip"), FlipAveraged)
    with pytest.raises(ValueError, match="unknown test-time augmentation 'rot90'"):
        with_tta(m, "rot90")
    # evaluate lists the modes without importing torch; they must stay the same
    action = next(a for a in evaluate.build_parser()._actions if a.dest == "tta")
    assert tuple(action.choices) == TTA_MODES


class _PooledRamp(nn.Module):
    """A stride-4 'CAM model' whose one map is the image's first channel averaged over each cell: the
    simplest model whose map is drawn where its cells are."""
    mean, std, num_classes = (0.0,) * 3, (1.0,) * 3, 1

    def forward(self, images):
        feats = nn.functional.avg_pool2d(images[:, :1], 4)
        return feats.mean((1, 2, 3))[:, None], feats

    def cams(self, feats, class_ids):
        return feats[:, 0]

    def all_cams(self, feats):
        return feats


def test_multi_size_maps_of_a_ramp_land_on_one_another():
    # a linear ramp across the image: resized (bilinear, half-pixel centres) and pooled, each size's
    # map holds the ramp's value at its cells' centres in the original frame, so once on the finest
    # grid the sizes agree wherever no cell reaches the border (where resizing repeats the edge)
    x = torch.arange(32.0).expand(1, 3, 32, 32).clone()
    ms = MultiScaleAveraged(_PooledRamp(), (32, 48, 64))
    with torch.no_grad():
        logits, maps_in = ms(x)
        fine = ms.model.cams(maps_in[2], torch.tensor([0]))  # 64 px: 16x16, the finest grid
        averaged = ms.cams(maps_in, torch.tensor([0]))
    assert averaged.shape == (1, 16, 16)
    torch.testing.assert_close(averaged[..., 2:-2], fine[..., 2:-2])
    # and not trivially: the finest map is the ramp at its cells' centres, (j + 0.5) * 2 - 0.5
    torch.testing.assert_close(fine[0, 0, 2:-2], torch.arange(2, 14) * 2 + 0.5)


def test_multi_size_averages_logits_and_maps_of_each_size(model):
    x, ids = torch.randn(2, 3, 64, 64), torch.tensor([3, 1])
    ms = MultiScaleAveraged(model, (64, 96))
    with torch.no_grad():
        l64, f64 = model(x)
        l96, f96 = model(nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False))
        t_logits, t_in = ms(x)
        torch.testing.assert_close(t_logits, (l64 + l96) / 2)
        up = nn.functional.interpolate(model.cams(f64, ids)[:, None], size=(6, 6), mode="bilinear",
                                       align_corners=False)[:, 0]
        torch.testing.assert_close(ms.cams(t_in, ids), (up + model.cams(f96, ids)) / 2)
        assert ms.all_cams(t_in).shape == (2, 5, 6, 6)
        torch.testing.assert_close(ms.all_cams(t_in)[torch.arange(2), ids], ms.cams(t_in, ids))
    assert (ms.mean, ms.std, ms.num_classes) == (model.mean, model.std, 5)


def test_multi_size_refuses_sizes_off_the_stride_and_bad_lists(model):
    x = torch.randn(1, 3, 64, 64)
    ms = MultiScaleAveraged(model, (64, 72))  # 72 is not a multiple of stride 16
    with torch.no_grad(), pytest.raises(ValueError, match="multiples of the model's stride"):
        ms.cams(ms(x)[1], torch.tensor([0]))
    for sizes in ((), (64, 64), (0, 64)):
        with pytest.raises(ValueError, match="distinct positive sizes"):
            MultiScaleAveraged(model, sizes)


def test_with_tta_sizes(model):
    assert with_tta(model, "none", 64, (64,)) is model  # the model's own size alone: unchanged
    both = with_tta(model, "flip", 64, (64, 96))
    assert isinstance(both, MultiScaleAveraged) and isinstance(both.model, FlipAveraged)
    x, ids = torch.randn(2, 3, 64, 64), torch.tensor([0, 4])
    with torch.no_grad():
        flip_only = FlipAveraged(model)
        t_logits, t_in = both(x)
        l64, _ = flip_only(x)
        l96, _ = flip_only(nn.functional.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False))
        torch.testing.assert_close(t_logits, (l64 + l96) / 2)
        assert both.cams(t_in, ids).shape == (2, 6, 6)
