"""Reader for a CSV of boxes: ``filename,width,height,class,xmin,ymin,xmax,ymax``, a row per box."""
from __future__ import annotations

import csv
from pathlib import Path

from .samples import Sample, SampleSet, as_boxes

COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


def read_csv_boxes(csv_path: str | Path, images_dir: str | Path | None = None,
                   split_csv: str | Path | None = None, split: str | None = None,
                   class_names: list[str] | None = None) -> SampleSet:
    """Rows of one filename are grouped into one sample with all its boxes (in file order).

    ``split_csv`` (filename,split) with ``split`` selects a subset, as in the raccoon data. The class
    names come from every row, so a class index means the same in each split. A row whose four box
    fields are empty labels its image without a box (WSOL trains on labels alone).
    """
    csv_path = Path(csv_path)
    if images_dir is None:  # images/ beside the CSV (the raccoon layout), else the CSV's own folder
        images_dir = csv_path.parent / "images" if (csv_path.parent / "images").is_dir() else csv_path.parent
    images_dir = Path(images_dir)
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing columns {', '.join(missing)}")
        rows = list(reader)
    keep = None
    if split_csv is not None and split is not None:
        with Path(split_csv).open(newline="", encoding="utf-8") as f:
            keep = {r["filename"] for r in csv.DictReader(f) if r["split"] == split}
    grouped: dict[str, dict] = {}
    for lineno, r in enumerate(rows, 2):
        if keep is not None and r["filename"] not in keep:
            continue
        fields = [(r[k] or "").strip() for k in ("xmin", "ymin", "xmax", "ymax")]
        try:
            box = None if not any(fields) else tuple(float(v) for v in fields)
            wh = (int(float(r["width"])), int(float(r["height"])))
        except ValueError:
            raise ValueError(f"{csv_path}:{lineno}: non-numeric box or size (a row without a box leaves all "
                             "four box fields empty)") from None
        g = grouped.setdefault(r["filename"], {"cls": r["class"], "boxes": [], "wh": wh})
        if r["class"] == g["cls"] and box is not None:
            g["boxes"].append(box)
    names = class_names or sorted({r["class"] for r in rows})
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted({g["cls"] for g in grouped.values()} - set(index))
    if unknown:  # given the model's classes: a class it was not trained on has no map to score
        raise ValueError(f"{csv_path}: class {unknown[0]!r} is not one of the {len(names)} given"
                         f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}")
    samples = [Sample(image_id=fn, label=index[g["cls"]], boxes=as_boxes(g["boxes"]),
                      path=str(images_dir / fn), size=g["wh"]) for fn, g in grouped.items()]
    return SampleSet(f"csv:{csv_path.stem}", samples, names)
