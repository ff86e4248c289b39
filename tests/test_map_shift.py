import numpy as np
import pytest
import torch

from benchmarks.map_shift import displacement_px, profile_correlation
from wsol_edge.models import build_model
from wsol_edge.models.map_shift import ShiftedMaps, shift_columns


def test_shift_columns_whole_and_fractional_cells():
    m = torch.arange(2 * 3 * 6, dtype=torch.float32).reshape(2, 3, 6) ** 1.5  # not linear: interpolation shows
    assert shift_columns(m, 0) is m
    # whole cells: out[..., j] = m[..., j + k], edge columns repeated
    torch.testing.assert_close(shift_columns(m, 2), torch.cat([m[..., 2:], m[..., -1:], m[..., -1:]], -1))
    torch.testing.assert_close(shift_columns(m, -1), torch.cat([m[..., :1], m[..., :-1]], -1))
    # a quarter cell: a quarter of the way to the right neighbour
    expect = 0.75 * m + 0.25 * torch.cat([m[..., 1:], m[..., -1:]], -1)
    torch.testing.assert_close(shift_columns(m, 0.25), expect)
    # -1.25 cells: between j-2 and j-1
    mm = torch.cat([m[..., :1], m[..., :1], m], -1)
    torch.testing.assert_close(shift_columns(m, -1.25), 0.75 * mm[..., 1:7] + 0.25 * mm[..., 0:6])
    # a ramp keeps its slope: moved left by 0.4 cells, every interior value rises by 0.4
    ramp = torch.arange(8, dtype=torch.float32).expand(1, 2, 8)
    torch.testing.assert_close(shift_columns(ramp, 0.4)[..., :-1], ramp[..., :-1] + 0.4)


def test_shifted_maps_moves_the_maps_by_input_pixels_and_nothing_else():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 5, pretrained=False, output_stride=16).eval()
    x, ids = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    shifted = ShiftedMaps(model, 8.0, 64)  # 64 px input, 4-wide maps: 8 px = half a cell
    with torch.no_grad():
        logits, feats = model(x)
        s_logits, s_feats = shifted(x)
        torch.testing.assert_close(s_logits, logits)
        torch.testing.assert_close(shifted.cams(s_feats, ids), shift_columns(model.cams(feats, ids), 0.5))
        torch.testing.assert_close(shifted.all_cams(s_feats), shift_columns(model.all_cams(feats), 0.5))
    assert (shifted.mean, shifted.std, shifted.num_classes) == (model.mean, model.std, 5)
    with pytest.raises(ValueError, match="finite"):
        ShiftedMaps(model, float("nan"), 64)


@pytest.mark.parametrize("b", [5.5, -3.0, 0.0])
def test_displacement_is_recovered_from_image_and_mirror_maps(b):
    """Blobs anywhere in the frame; the image's map at +b, the mirror's (mirrored back) at -b."""
    rng = np.random.default_rng(1)
    xs = np.arange(224) + 0.5
    corr = 0
    for _ in range(40):
        x0, y0, sx = rng.uniform(50, 174), rng.uniform(40, 184), rng.uniform(15, 40)
        blob = lambda cx: np.exp(-((xs[None, :] - cx) ** 2) / (2 * sx ** 2) - ((xs[:, None] - y0) ** 2) / 800)
        corr = corr + profile_correlation(blob(x0 + b), blob(x0 - b))
    assert displacement_px(corr) == pytest.approx(b, abs=0.15)


def test_displacement_at_the_edge_of_the_lags_is_refused():
    with pytest.raises(ValueError, match="edge"):
        displacement_px(np.arange(81, dtype=float))


def test_map_shift_bad_input_is_one_line(tmp_path, capsys):
    from benchmarks.map_shift import main

    assert main(["--checkpoints", "x.pt", "--data-root", str(tmp_path / "none"), "--output", str(tmp_path / "o.json")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "o.json").exists()
