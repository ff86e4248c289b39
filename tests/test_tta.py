import pytest
import torch
from torch import nn

from wsol_edge import evaluate
from wsol_edge.models import build_model
from wsol_edge.models.tta import TTA_MODES, FlipAveraged, with_tta


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
