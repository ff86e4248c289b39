"""Reader for a folder of images with Pascal VOC XML annotations (one XML per image)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .samples import Sample, SampleSet, as_boxes


def _text(node: ET.Element, tag: str, xml: Path) -> str:
    found = node.find(tag)
    if found is None or found.text is None:
        raise ValueError(f"{xml}: missing <{tag}>")
    return found.text.strip()


def read_voc(images_dir: str | Path, annotations_dir: str | Path | None = None,
             class_names: list[str] | None = None) -> SampleSet:
    """One sample per XML file. The image label is the class of its first object; every box
    of that class is kept (WSOL has one label per image). Classes are sorted names unless given.
    """
    images_dir = Path(images_dir)
    ann_dir = Path(annotations_dir) if annotations_dir else images_dir
    xmls = sorted(ann_dir.glob("*.xml"))
    if not xmls:
        raise FileNotFoundError(f"{ann_dir}: no Pascal VOC .xml annotation files")
    parsed = []
    for xml in xmls:
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            raise ValueError(f"{xml}: invalid XML ({exc})") from None
        filename = _text(root, "filename", xml)
        objects = []
        for obj in root.findall("object"):
            bb = obj.find("bndbox")
            if bb is None:
                raise ValueError(f"{xml}: object without <bndbox>")
            objects.append((_text(obj, "name", xml),
                            tuple(float(_text(bb, t, xml)) for t in ("xmin", "ymin", "xmax", "ymax"))))
        if not objects:
            raise ValueError(f"{xml}: no <object>")
        size = root.find("size")
        wh = (int(float(_text(size, "width", xml))), int(float(_text(size, "height", xml)))) if size is not None else None
        parsed.append((xml.stem, filename, objects, wh))
    names = class_names or sorted({name for _, _, objs, _ in parsed for name, _ in objs})
    index = {n: i for i, n in enumerate(names)}
    samples = []
    for stem, filename, objects, wh in parsed:
        label_name = objects[0][0]
        if label_name not in index:
            raise ValueError(f"{ann_dir / (stem + '.xml')}: class {label_name!r} is not one of the {len(names)} "
                             "given")
        boxes = [b for n, b in objects if n == label_name]
        samples.append(Sample(image_id=stem, label=index[label_name], boxes=as_boxes(boxes),
                              path=str(images_dir / filename), size=wh))
    return SampleSet(f"voc:{images_dir.name}", samples, names)
