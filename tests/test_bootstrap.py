"""The bootstrap's metrics are the scorer's metrics: with every image drawn once they equal
``LocalizationScorer.compute``, and a draw with repeats equals scoring the repeated images."""
import numpy as np
import pytest

from wsol_edge.evaluation import LocalizationScorer, read_per_image, write_per_image
from wsol_edge.metrics.bootstrap import interval, metric_samples, resample_counts

KEYS = ("max_box_acc_v2", "gt_known_loc", "top1_loc", "top1_cls")


def random_images(n, seed=0, size=32):
    """Blob CAMs near (or away from) a GT box, and logits right or wrong: metrics far from 0 and 100."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = []
    for _ in range(n):
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(6, size // 2, 2)
        cx, cy = x0 + w / 2 + rng.normal(0, 4), y0 + h / 2 + rng.normal(0, 4)
        cam = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * rng.uniform(2, 8) ** 2)) + rng.uniform(0, .3, (size, size))
        label = int(rng.integers(0, 5))
        logits = rng.normal(0, 1, 5)
        logits[label] += rng.normal(2.5, 1.5)
        images.append((cam.astype(np.float32), label, np.array([[x0, y0, x0 + w, y0 + h]]), logits))
    return images


def score(images, protocol="wsoleval"):
    scorer = LocalizationScorer(protocol, size=32)
    for cam, label, box, logits in images:
        scorer.add(logits[None], cam[None], np.array([label]), [box])
    return scorer


def test_counts_of_one_give_the_scorers_metrics():
    scorer = score(random_images(60))
    got = metric_samples(scorer.per_image(), np.ones((1, 60)))
    want = scorer.compute()
    assert 5 < want["max_box_acc_v2"] < 95 and 5 < want["top1_loc"] < 95
    for key in KEYS:
        assert got[key][0] == pytest.approx(want[key], abs=1e-12), key


def test_a_draw_with_repeats_equals_scoring_the_repeated_images():
    images = random_images(25, seed=1)
    counts = resample_counts(25, 3, seed=3)
    samples = metric_samples(score(images).per_image(), counts)
    for r, row in enumerate(counts):
        drawn = [images[i] for i in np.repeat(np.arange(25), row.astype(int))]
        want = score(drawn).compute()
        for key in KEYS:
            assert samples[key][r] == pytest.approx(want[key], abs=1e-9), (r, key)


def test_resamples_are_seeded_draws_of_n_images():
    a, b = resample_counts(30, 200, seed=7), resample_counts(30, 200, seed=7)
    assert np.array_equal(a, b) and (a.sum(1) == 30).all() and not np.array_equal(a, resample_counts(30, 200, 8))
    assert abs(a.mean() - 1) < 0.05  # every image is drawn once on average
    with pytest.raises(ValueError):
        resample_counts(0, 10)


def test_sat_protocol_tables_have_no_multi_contour_metric():
    tables = score(random_images(10), "sat").per_image()
    assert "ious_multi" not in tables
    assert set(metric_samples(tables, np.ones((1, 10)))) == {"gt_known_loc", "top1_loc", "top1_cls"}


def test_interval_is_the_percentile_range():
    assert interval(np.arange(101.0)) == pytest.approx([2.5, 97.5])


def test_per_image_file_round_trip_and_bad_files(tmp_path):
    scorer = score(random_images(6))
    path = tmp_path / "p.npz"
    write_per_image(path, scorer.per_image(), [f"img{i}" for i in range(6)], {"split": "test"})
    tables, ids, info = read_per_image(path)
    assert ids == [f"img{i}" for i in range(6)] and info == {"split": "test"}
    assert all(np.array_equal(tables[k], v) for k, v in scorer.per_image().items())
    with pytest.raises(ValueError, match="differ in length"):
        write_per_image(tmp_path / "q.npz", scorer.per_image(), ["only-one"], {})
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a per-image file"):
        read_per_image(bad)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a per-image file"):
        read_per_image(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError):
        read_per_image(tmp_path / "missing.npz")
