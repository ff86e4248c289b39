"""Build a CAM model from its recorded config, and read one back from a checkpoint."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import load_checkpoint


def model_config(backbone: str, num_classes: int, output_stride: int | None, input_size: int,
                 class_names: list[str], method: str = "cam", method_kwargs: dict | None = None,
                 dilated: bool = False) -> dict:
    # Only these backbones take an output stride; resnet50 and vgg16 have theirs built in.
    takes_stride = backbone.startswith("efficientnet_lite") or backbone == "mobilenet_v2"
    kwargs = {"output_stride": output_stride} if output_stride and takes_stride else {}
    if dilated:  # recorded only when asked for, so the configs of every earlier run stay as they were
        if not backbone.startswith("efficientnet_lite"):
            raise ValueError(f"--dilated is for the efficientnet_lite backbones, not {backbone}")
        if (output_stride or 32) == 32:
            raise ValueError("--dilated needs --output-stride 16 or 8: at 32 no stage loses its stride")
        kwargs["dilated"] = True
    return {"method": method, "backbone": backbone, "num_classes": num_classes, "backbone_kwargs": kwargs,
            "method_kwargs": dict(method_kwargs or {}), "input_size": input_size, "class_names": list(class_names)}


def build_from_config(cfg: dict, *, pretrained: bool = False, weights: str | None = None):
    """The training-time module of the recorded method (``training_loss`` / ``inference_model``)."""
    from .methods import build_method

    return build_method(cfg.get("method", "cam"), cfg["backbone"], cfg["num_classes"], pretrained=pretrained,
                        weights=weights, backbone_kwargs=cfg.get("backbone_kwargs", {}),
                        method_kwargs=cfg.get("method_kwargs", {}))


def load_wrapper(path: str | Path):
    """(training-time module of the recorded method with the checkpoint's weights, model config,
    checkpoint dict); a checkpoint without a config or with weights of another model is a ValueError."""
    state = load_checkpoint(path)
    cfg = state.get("model_config")
    if not cfg:
        raise ValueError(f"{path}: checkpoint has no model_config")
    try:
        wrapper = build_from_config(cfg, pretrained=False)
        wrapper.load_state_dict(state["model"])
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{path}: weights do not match {cfg.get('method', 'cam')}/{cfg['backbone']} "
                         f"({str(exc).splitlines()[0]})") from None
    return wrapper, cfg, state


def load_model(path: str | Path):
    """(CamModel in eval mode, model config, checkpoint dict) from a training checkpoint of any
    method: the method's extra modules and losses are dropped by ``inference_model()``."""
    wrapper, cfg, state = load_wrapper(path)
    return wrapper.inference_model().eval(), cfg, state
