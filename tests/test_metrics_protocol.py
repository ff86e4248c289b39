"""Hand-computed cases for every wsoleval convention of evaluation-protocol.md."""
import numpy as np
import pytest

from wsol_edge.metrics import BoxAccumulator, PxAPAccumulator, iou_matrix, max_box_acc, max_box_acc_v2
from wsol_edge.postprocess import (DEFAULT_CAM_THRESHOLDS, box_from_scoremap, boxes_at_thresholds,
                                   cam_to_scoremap, ivr_scoremap, normalize_scoremap, quantize_scoremap, sat_box,
                                   upsample_cam)


def blank(h=20, w=20):
    return np.zeros((h, w), np.float32)


def test_default_thresholds_match_wsolevaluation_arange():
    assert len(DEFAULT_CAM_THRESHOLDS) == 100
    np.testing.assert_array_equal(DEFAULT_CAM_THRESHOLDS, np.arange(0, 1, 0.01))
    assert DEFAULT_CAM_THRESHOLDS[35] == 0.35000000000000003  # arange's value, not the literal 0.35


def test_box_is_bounding_rect_with_exclusive_looking_x1_y1():
    m = blank()
    m[2:5, 3:7] = 1.0  # rows 2..4, cols 3..6
    # cv2.boundingRect gives x=3, w=4, y=2, h=3; the protocol box is (x, y, x+w, y+h)
    assert box_from_scoremap(m, 0.5).tolist() == [3, 2, 7, 5]


def test_threshold_is_strictly_greater():
    m = blank()
    m[0:4, 0:4] = 1.0            # u8 255
    m[10:14, 10:16] = 0.2        # u8 51 == int(0.2 * 255)
    # at tau = 0.2, int(0.2 * 255) = 51 and pixels equal to 51 are NOT in the mask
    assert box_from_scoremap(m, 0.2).tolist() == [0, 0, 4, 4]
    # just below, the larger 4x6 block (contour area 15 > 9) wins
    assert box_from_scoremap(m, 0.19).tolist() == [10, 10, 16, 14]


def test_uint8_truncation_not_rounding():
    m = blank()
    m[0:2, 0:2] = 1.0
    m[5:15, 5:15] = 0.5   # 127.5 -> 127 by truncation (rounding would give 128)
    assert quantize_scoremap(m)[5, 5] == 127
    # tau = 0.5: threshold int(0.5 * 255) = 127; 127 > 127 is false, so the big block is out
    assert box_from_scoremap(m, 0.5).tolist() == [0, 0, 2, 2]


def test_threshold_uses_max_of_quantized_map():
    m = blank()
    m[3:6, 3:6] = 0.6     # u8 153 is the max: threshold is int(tau * 153), not int(tau * 255)
    m[10:18, 10:18] = 0.3  # u8 76
    assert box_from_scoremap(m, 0.5).tolist() == [3, 3, 6, 6]     # int(76.5)=76: 76 > 76 false
    assert box_from_scoremap(m, 0.49).tolist() == [10, 10, 18, 18]  # int(74.97)=74: 76 > 74


def test_x1_y1_clipped_to_size_minus_one():
    m = blank(10, 12)
    m[6:10, 8:12] = 1.0  # touches the bottom-right corner
    assert box_from_scoremap(m, 0.5).tolist() == [8, 6, 11, 9]


def test_empty_mask_gives_zero_box():
    m = blank()
    m[4, 4] = 1.0
    assert box_from_scoremap(m, 0.999).tolist() == [4, 4, 5, 5]  # int(0.999*255)=254 < 255
    assert box_from_scoremap(blank(), 0.0).tolist() == [0, 0, 0, 0]  # all zero: nothing > 0


def test_constant_and_nan_maps_normalise_to_zeros():
    assert not normalize_scoremap(np.full((7, 7), 3.0)).any()
    nan = np.ones((7, 7)); nan[2, 2] = np.nan
    assert not normalize_scoremap(nan).any()
    assert not normalize_scoremap(np.full((7, 7), np.inf)).any()
    assert not cam_to_scoremap(np.full((7, 7), 5.0), 32).any()
    with pytest.raises(ValueError, match="NaN"):
        box_from_scoremap(nan, 0.5)


def test_normalised_map_spans_zero_to_one():
    cam = np.random.default_rng(0).normal(size=(7, 7)).astype(np.float32)
    m = cam_to_scoremap(cam, 224)
    assert m.shape == (224, 224) and m.min() == 0.0 and m.max() == 1.0


def test_ivr_subtracts_the_percentile_value_and_rescales_by_hand():
    # ten pixels 0..9 in shuffled order; percentile 0.6 -> sorted index int(10 * 0.6) = 6 -> value 6
    cam = np.array([[3, 9, 0, 6, 1], [8, 2, 7, 5, 4]], dtype=np.float32)
    want = np.array([[0, 1, 0, 0, 0], [2 / 3, 0, 1 / 3, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(ivr_scoremap(cam, 0.6), want, rtol=1e-6)
    # the protocol's min-max step leaves an IVR map unchanged (min 0, max 1)
    np.testing.assert_array_equal(normalize_scoremap(ivr_scoremap(cam, 0.6)), ivr_scoremap(cam, 0.6))
    # index int(10 * 0.8) = 8: only the max is left, and it is 1; at index 9 nothing is left (zeros)
    np.testing.assert_array_equal(ivr_scoremap(cam, 0.8), (cam == 9).astype(np.float32))
    assert not ivr_scoremap(cam, 0.95).any()


def test_ivr_at_percentile_zero_is_min_max_and_matches_a_full_sort():
    rng = np.random.default_rng(3)
    for shape in ((7, 7), (224, 224), (13, 31)):
        cam = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_array_equal(ivr_scoremap(cam, 0.0), normalize_scoremap(cam))
        for p in (0.3, 0.6, 0.85):
            floor = np.sort(cam.ravel())[int(cam.size * p)]  # Kim et al.'s own construction
            ref = np.maximum(cam - floor, 0)
            np.testing.assert_array_equal(ivr_scoremap(cam, p), ref / ref.max())
    np.testing.assert_array_equal(cam_to_scoremap(cam, 224, ivr_percentile=0.6), ivr_scoremap(upsample_cam(cam, 224), 0.6))


def test_ivr_guards_constant_nan_and_flat_top_maps():
    assert not ivr_scoremap(np.full((7, 7), 3.0), 0.6).any()
    nan = np.ones((7, 7)); nan[2, 2] = np.nan
    assert not ivr_scoremap(nan, 0.6).any()
    flat_top = np.zeros((10, 10)); flat_top[:, 5:] = 2.0  # the 60th-percentile pixel already equals the max
    assert not ivr_scoremap(flat_top, 0.6).any()
    assert ivr_scoremap(flat_top, 0.4).max() == 1.0
    from wsol_edge.evaluation import LocalizationScorer

    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            ivr_scoremap(flat_top, bad)
        with pytest.raises(ValueError, match=r"\[0, 1\)"):  # when built, not at its first image
            LocalizationScorer(ivr_percentile=bad)


def test_largest_is_by_contour_area_not_pixel_count():
    m = blank(40, 40)
    m[0, 0:20] = m[19, 0:20] = m[0:20, 0] = m[0:20, 19] = 1.0  # 1-px square outline: 76 px, area 361
    m[25:37, 25:37] = 1.0                                       # solid block: 144 px, area 121
    assert box_from_scoremap(m, 0.5).tolist() == [0, 0, 20, 20]
    # the SAT rule picks the component with most pixels (and exclusive max coordinates)
    assert sat_box(m, 0.5).tolist() == [25, 25, 37, 37]


def test_iou_inclusive_plus_one_area():
    assert iou_matrix([[0, 0, 0, 0]], [[0, 0, 0, 0]])[0, 0] == 1.0
    assert iou_matrix([[0, 0, 1, 1]], [[1, 1, 2, 2]])[0, 0] == pytest.approx(1 / 7)
    assert iou_matrix([[0, 0, 1, 1]], [[2, 2, 3, 3]])[0, 0] == 0.0
    # touching edges overlap by one pixel column under inclusive coordinates
    assert iou_matrix([[0, 0, 4, 4]], [[4, 0, 8, 4]])[0, 0] == pytest.approx(5 / 45)
    assert iou_matrix([[0, 0, 4, 4]], [[4, 0, 8, 4]], inclusive=False)[0, 0] == 0.0


def test_several_gt_boxes_best_counts():
    m = blank()
    m[10:15, 10:15] = 1.0  # box (10,10,15,15)
    gts = [np.array([[0, 0, 3, 3], [10, 10, 15, 15]])]
    res = max_box_acc(m[None], gts, cam_thresholds=[0.5], iou_thresholds=(50,))
    assert res[50]["acc"] == 100.0
    res = max_box_acc(m[None], [gts[0][:1]], cam_thresholds=[0.5], iou_thresholds=(50,))
    assert res[50]["acc"] == 0.0


def test_max_box_acc_best_threshold_is_first_maximum():
    m1 = blank(); m1[0:10, 0:10] = 1.0; m1[0:4, 12:20] = 0.3
    m2 = blank(); m2[5:15, 5:15] = 1.0
    gts = [np.array([[0, 0, 10, 10]]), np.array([[5, 5, 15, 15]])]
    # tau=0.0: image 1's mask is both blocks, largest contour is the 10x10 one -> correct.
    # All three thresholds give 100%; the first (0.0) is reported.
    res = max_box_acc(np.stack([m1, m2]), gts, cam_thresholds=[0.0, 0.2, 0.5], iou_thresholds=(30, 50, 70))
    assert res == {30: {"acc": 100.0, "best_threshold": 0.0}, 50: {"acc": 100.0, "best_threshold": 0.0},
                   70: {"acc": 100.0, "best_threshold": 0.0}}
    # with a GT that only tau=0.5 isolates: (0,0,10,10) vs the merged region... use a GT on the small block
    gts2 = [np.array([[12, 0, 20, 4]]), np.array([[5, 5, 15, 15]])]
    res = max_box_acc(np.stack([m1, m2]), gts2, cam_thresholds=[0.0, 0.2, 0.5], iou_thresholds=(50,))
    assert res[50] == {"acc": 50.0, "best_threshold": 0.0}


def test_multi_contour_takes_best_matching_box():
    m = blank(30, 30)
    m[0:12, 0:12] = 1.0   # large: box (0,0,12,12)
    m[20:26, 20:26] = 1.0  # small: box (20,20,26,26)
    gt = [np.array([[20, 20, 26, 26]])]
    assert max_box_acc(m[None], gt, cam_thresholds=[0.5], iou_thresholds=(50,))[50]["acc"] == 0.0
    assert max_box_acc(m[None], gt, cam_thresholds=[0.5], iou_thresholds=(50,), multi_contour=True)[50]["acc"] == 100.0
    assert max_box_acc_v2(m[None], gt, cam_thresholds=[0.5]) == 100.0
    assert len(boxes_at_thresholds(m, [0.5], multi_contour=True)[0]) == 2


def test_iou_threshold_is_inclusive():
    m = blank()
    m[0:10, 0:5] = 1.0  # box (0,0,5,10): area 6*11 = 66
    gt = [np.array([[0, 0, 10, 10]])]  # area 121; intersection 66 -> IoU 66/121 = 0.545
    assert max_box_acc(m[None], gt, cam_thresholds=[0.5], iou_thresholds=(54, 55))[54]["acc"] == 100.0
    assert max_box_acc(m[None], gt, cam_thresholds=[0.5], iou_thresholds=(54, 55))[55]["acc"] == 0.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="\\[N, H, W\\]"):
        max_box_acc(np.zeros((4, 4)), [np.zeros((1, 4))], cam_thresholds=[0.5])
    with pytest.raises(ValueError, match="GT box arrays"):
        max_box_acc(np.zeros((2, 4, 4)), [np.zeros((1, 4))], cam_thresholds=[0.5])
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        max_box_acc(np.full((1, 4, 4), 2.0), [np.zeros((1, 4))], cam_thresholds=[0.5])
    with pytest.raises(ValueError, match="ground-truth"):
        BoxAccumulator([0.5]).add(blank(), np.zeros((0, 4)))


def test_pxap_perfect_and_chance():
    mask = np.zeros((10, 10), np.uint8); mask[2:6, 2:6] = 1
    acc = PxAPAccumulator(); acc.add(mask.astype(np.float32), mask)
    assert acc.compute() == pytest.approx(100.0)
    acc = PxAPAccumulator(); acc.add(np.zeros((10, 10), np.float32), mask)
    assert acc.compute() == pytest.approx(16.0)  # precision = prevalence 16/100 at the only point
    ign = mask.copy(); ign[0, :] = 255  # ignored pixels do not count
    acc = PxAPAccumulator(); acc.add(np.zeros((10, 10), np.float32), ign)
    assert acc.compute() == pytest.approx(100 * 16 / 90)
