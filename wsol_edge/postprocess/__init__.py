"""CPU reference postprocess: raw CAMs -> score maps -> boxes (NumPy/OpenCV, no torch).

This is what evaluation and the runtime use without a GPU, and what CUDA kernels are held to.
"""
from .boxes import (
    DEFAULT_CAM_THRESHOLDS,
    boxes_at_thresholds,
    box_from_scoremap,
    cam_to_scoremap,
    cams_to_boxes,
    check_ivr_percentile,
    ivr_scoremap,
    largest_component_box,
    normalize_scoremap,
    quantize_scoremap,
    sat_box,
    sat_scoremap,
    translate_map,
    upsample_cam,
)

__all__ = [
    "DEFAULT_CAM_THRESHOLDS", "boxes_at_thresholds", "box_from_scoremap", "cam_to_scoremap",
    "cams_to_boxes", "check_ivr_percentile", "ivr_scoremap", "largest_component_box", "normalize_scoremap", "quantize_scoremap", "sat_box", "sat_scoremap", "translate_map", "upsample_cam",
]
