import numpy as np
import pytest
import torch
from torch import nn

from wsol_edge.evaluation import LocalizationScorer
from wsol_edge.models.efficientnet_lite import SameConv2d
from wsol_edge.models.grid_offset import receptive_field_offset
from wsol_edge.models.tta import with_tta
from wsol_edge.postprocess import cam_to_scoremap, translate_map


class TinyCam(nn.Module):
    """The inference contract over a given feature extractor; ``gate`` squares the features (not linear)."""

    def __init__(self, body: nn.Module, channels: int, gate: bool = False):
        super().__init__()
        self.body, self.fc, self.gate = body, nn.Linear(channels, 3), gate
        self.mean, self.std, self.num_classes = (0.5,) * 3, (0.5,) * 3, 3

    def forward(self, x):
        f = self.body(x)
        if self.gate:
            f = f * f
        return self.fc(f.mean((2, 3))), f

    def cams(self, f, ids):
        return (self.fc.weight[ids][:, :, None, None] * f).sum(1)


def test_symmetric_padding_centres_cells_left_of_the_resize_grid():
    # conv k3 s2 p1 then maxpool k3 s2 p1: cell k looks at input pixel 4k; a resize draws it at 4k + 1.5
    model = TinyCam(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1)), 4)
    assert receptive_field_offset(model, 32) == (-1.5, -1.5)


def test_tf_same_padding_centres_cells_right_of_and_below_the_resize_grid():
    # SAME k3 s2 on an even input pads (0, 1): cell i looks at 2i + 1; twice: 4k + 3, drawn at 4k + 1.5
    body = nn.Sequential(SameConv2d(3, 4, 3, 2), nn.BatchNorm2d(4), nn.ReLU6(), SameConv2d(4, 4, 3, 2))
    model = TinyCam(body, 4).eval()
    assert receptive_field_offset(model, 32) == (1.5, 1.5)
    # flip TTA averages the map with its mirror's: centred across by construction, not down
    assert receptive_field_offset(with_tta(model, "flip"), 32) == (0.0, 1.5)


def test_efficientnet_lite0_at_stride_16_draws_its_maps_7_5_px_up_and_left():
    from wsol_edge.models import build_model

    model = build_model("efficientnet_lite0", 5, pretrained=False, output_stride=16).eval()
    # four stride-2 SAME layers (stem, stages 2-4): centres at 16j + 8 + 4 + 2 + 1, drawn at 16j + 7.5
    assert receptive_field_offset(model, 32) == (7.5, 7.5)


def test_a_map_that_is_not_linear_in_the_image_is_refused():
    model = TinyCam(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1)), 4, gate=True)
    with pytest.raises(ValueError, match="not linear"):
        receptive_field_offset(model, 32)


def test_translate_map_moves_right_and_down_with_edges_repeated():
    m = np.zeros((40, 50), np.float32)
    m[20, 10] = 1.0
    m[:, 0] = 0.5  # the left edge column, repeated into the gap
    moved = translate_map(m, (3, 5))
    assert moved[25, 13] == 1.0 and moved[20, 10] == 0.0
    assert np.all(moved[5:, :3] == 0.5) and np.all(moved[:5, :4] == 0.5)
    half = translate_map(m, (0.5, 0))  # a fractional shift splits the value between two pixels
    assert half[20, 10] == pytest.approx(0.5) and half[20, 11] == pytest.approx(0.5)
    assert translate_map(m, (0, 0)) is m


def test_scorer_with_an_offset_scores_the_moved_map():
    cam = np.zeros((7, 7), np.float32)
    cam[2:4, 2:4] = 1.0
    gt = np.array([[40, 40, 100, 100]])
    plain = LocalizationScorer("wsoleval", 112, np.arange(0, 1, 0.1), (50,), with_classification=False)
    moved = LocalizationScorer("wsoleval", 112, np.arange(0, 1, 0.1), (50,), with_classification=False,
                               map_offset_px=(8.0, -4.0))
    m0 = plain.add(None, cam[None], None, [gt])[0]
    m1 = moved.add(None, cam[None], None, [gt])[0]
    np.testing.assert_allclose(m1, cam_to_scoremap(cam, 112, (8.0, -4.0)))
    ys, xs = np.nonzero(m0 > 0.5)
    ys1, xs1 = np.nonzero(m1 > 0.5)
    assert xs1.mean() - xs.mean() == pytest.approx(8.0, abs=0.5)
    assert ys1.mean() - ys.mean() == pytest.approx(-4.0, abs=0.5)
    assert not np.array_equal(plain.single.ious, moved.single.ious)


def test_effective_offset_of_a_uniform_model_is_its_arithmetic_offset():
    from benchmarks.field_offset import effective_offset

    model = TinyCam(nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.MaxPool2d(3, 2, 1)), 4).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.fill_(1.0)
                mod.bias.zero_()
    model.body[2] = nn.AvgPool2d(3, 2, 1)  # max pooling's gradient would pick one pixel per window
    images = torch.rand(3, 3, 32, 32) + 0.5
    dx, dy = effective_offset(model, images, torch.tensor([0, 1, 2]))
    assert (dx, dy) == pytest.approx(receptive_field_offset(model, 32), abs=1e-6)  # (-1.5, -1.5)
    assert effective_offset(model, images.flip(-1), None) == pytest.approx((-1.5, -1.5), abs=1e-6)


def test_field_offset_cli_refuses_missing_inputs_in_one_line(tmp_path, capsys):
    from benchmarks import field_offset

    data = tmp_path / "cub"
    assert field_offset.main(["--checkpoints", str(tmp_path / "none.pt"), "--data-root", str(data),
                              "--output", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and not (tmp_path / "o.json").exists()
