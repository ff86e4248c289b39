"""Build a CAM model from its recorded config, and read one back from a checkpoint."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import load_checkpoint


def model_config(backbone: str, num_classes: int, output_stride: int | None, input_size: int,
                 class_names: list[str], method: str = "cam") -> dict:
    kwargs = {"output_stride": output_stride} if output_stride and backbone in ("efficientnet_lite0", "mobilenet_v2") else {}
    return {"method": method, "backbone": backbone, "num_classes": num_classes, "backbone_kwargs": kwargs,
            "input_size": input_size, "class_names": list(class_names)}


def build_from_config(cfg: dict, *, pretrained: bool = False, weights: str | None = None):
    from .models import build_model

    return build_model(cfg["backbone"], cfg["num_classes"], pretrained=pretrained, weights=weights,
                       **cfg.get("backbone_kwargs", {}))


def load_model(path: str | Path):
    """(model in eval mode, model config, checkpoint dict) from a training checkpoint."""
    state = load_checkpoint(path)
    cfg = state.get("model_config")
    if not cfg:
        raise ValueError(f"{path}: checkpoint has no model_config")
    model = build_from_config(cfg, pretrained=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match {cfg['backbone']} ({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, cfg, state
