"""Markdown tables from the committed result files: ``python -m benchmarks.summary`` prints them
(the README's Results section is pasted from this output)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else None


def records(data) -> list[dict]:
    if data is None:
        return []
    if isinstance(data, list):
        return data
    return data.get("records", [data])


def fmt(v, nd=2):
    return "–" if v is None else f"{v:.{nd}f}"


def accuracy_table() -> str:
    rows = ["| model | Top-1 Cls | Top-1 Loc | GT-known Loc (τ) | MaxBoxAcc 30/50/70 | MaxBoxAccV2 | train time |",
            "|---|---|---|---|---|---|---|"]
    for name, label in (("cub50_imagenet_cam_lite0.json", "ImageNet CAM, untrained on birds (reference 96.0/54.8/9.0)"),
                        ("cub50_cam_lite0.json", "CAM, EfficientNet-Lite0, trained on cub50 train")):
        for r in records(load(name)):
            m = r["metrics"]
            mba = "/".join(fmt(m["max_box_acc"][k], 1) for k in ("30", "50", "70"))
            t = r.get("train_seconds") or 0
            rows.append(f"| {label} | {fmt(m.get('top1_cls'))} | {fmt(m.get('top1_loc'))} | "
                        f"{fmt(m['gt_known_loc'])} ({m['gt_known_threshold']:.2f}) | {mba} | {fmt(m['max_box_acc_v2'])} | "
                        f"{f'{t / 60:.0f} min' if t else '–'} |")
    return "\n".join(rows)


def main() -> int:
    print("### cub50 test (1,389 images), wsoleval protocol, PyTorch FP32\n")
    print(accuracy_table())
    reg = load("cub50_cam_lite0_precisions.json")
    if reg:
        print("\n### Precisions (same model, same split)\n")
        print(reg["table_markdown"])
    par = load("cub50_parity.json")
    if par:
        print(f"\nParity, ONNX Runtime FP32 vs PyTorch on {par['num_images']} cub50 test images: max |logit diff| "
              f"{par['max_abs_logit_diff']:.2e}, max |CAM diff| / CAM range {par['max_cam_diff_relative_to_range']:.2e}, "
              f"top-1 agreement {par['top1_agreement']:.2f}%, identical boxes {par['identical_boxes']:.2f}%.")
    speed = load("cpu_speed_lite0.json")
    if speed:
        m = speed["records"][0]["machine"]
        print(f"\n### Speed on this CPU ({m['cpu']}, {m['cores']} cores), run {speed['records'][0]['run_id']}\n")
        print(speed["table_markdown"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
