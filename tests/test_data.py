from pathlib import Path

import cv2
import numpy as np
import pytest

from wsol_edge.data import (check_classes, open_dataset, read_class_folders, read_csv_boxes, read_cub, read_voc,
                             read_wsoleval, synthetic_dataset)
from wsol_edge.imageio import ImageReadError, decode_image, read_image_rgb, to_rgb_uint8
from wsol_edge.preprocess import boxes_to_frame


def write(path, img, ext=".png"):
    ok, buf = cv2.imencode(ext, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def test_color_layouts_convert_to_rgb(tmp_path):
    rgb = np.zeros((6, 8, 3), np.uint8); rgb[..., 0] = 200  # red in RGB
    bgr = rgb[..., ::-1].copy()
    assert (read_image_rgb(write(tmp_path / "c.png", bgr)) == rgb).all()
    gray = read_image_rgb(write(tmp_path / "g.png", np.full((6, 8), 77, np.uint8)))
    assert gray.shape == (6, 8, 3) and (gray == 77).all()
    bgra = np.dstack([bgr, np.full((6, 8), 9, np.uint8)])
    assert (read_image_rgb(write(tmp_path / "a.png", bgra)) == rgb).all()
    deep = read_image_rgb(write(tmp_path / "d.png", np.full((6, 8, 3), 40000, np.uint16)))
    assert deep.dtype == np.uint8 and (deep == 40000 >> 8).all()
    assert to_rgb_uint8(np.ones((4, 4, 2), np.uint8) * 5).shape == (4, 4, 3)
    with pytest.raises(ImageReadError, match=r"channel count 8 \(a 3xHxW array\? images are HxWxC, channels last"):
        to_rgb_uint8(np.zeros((3, 6, 8), np.uint8))  # a tensor's layout
    with pytest.raises(ImageReadError, match=r"channel count 5$"):
        to_rgb_uint8(np.zeros((6, 8, 5), np.uint8))


def test_float_images_are_read_as_0_to_1_and_anything_else_refused(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for dtype in (np.float16, np.float32, np.float64):
        assert (to_rgb_uint8((rgb / 255.0).astype(dtype), bgr=False) == rgb).all()  # rounded, not truncated
    assert (to_rgb_uint8(np.zeros((2, 2), np.float32)) == 0).all() and (to_rgb_uint8(np.ones((2, 2))) == 255).all()
    ok, buf = cv2.imencode(".tiff", (rgb[..., ::-1] / 255.0).astype(np.float32))  # a float TIFF, as cameras write
    assert ok and (decode_image(buf.tobytes()) == rgb).all()
    # a 0-255 float frame was guessed from its values: a dark one (all <= 1) turned near white
    for frame, why in ((rgb.astype(np.float32), r"values in \[\d+, \d+\]; float images are read as \[0, 1\]"),
                       (np.full((2, 2), -0.5), r"values in \[-0\.5, -0\.5\]"),
                       (np.full((2, 2), np.nan, np.float32), "NaN or infinite")):
        with pytest.raises(ImageReadError, match=r"^frame: (float image with |image contains )?" + why):
            to_rgb_uint8(frame, source="frame")


def test_16bit_images_with_12bit_values_are_read_but_warned_about():
    twelve_bit = np.full((4, 4, 3), 4000, np.uint16)  # a machine-vision camera's 12-bit data in 16 bits
    with pytest.warns(UserWarning, match=r"^frame: 16-bit image whose brightest value is 4000: .* \(x << 4 for 12-bit"):
        out = to_rgb_uint8(twelve_bit, source="frame")
    assert (out == 4000 >> 8).all()  # the rule stays the 16-bit one: the warning does not guess
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full-range and black 16-bit images are read without a word
        to_rgb_uint8(np.full((4, 4), 40000, np.uint16)), to_rgb_uint8(np.zeros((4, 4), np.uint16))


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    img = PIL.new("CMYK", (8, 6), (0, 255, 255, 0))  # pure red in CMYK
    img.save(tmp_path / "cmyk.jpg")
    out = read_image_rgb(tmp_path / "cmyk.jpg")
    assert out.shape == (6, 8, 3) and out[..., 0].mean() > 200 and out[..., 1].mean() < 60


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"not an image at all", "not a decodable")])
def test_bad_files_name_the_file(tmp_path, content, match):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageReadError, match=match) as err:
        read_image_rgb(p)
    assert str(p) in str(err.value)


def test_truncated_jpeg_and_missing_file(tmp_path):
    data = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))[1].tobytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated"):
        read_image_rgb(tmp_path / "t.jpg")
    with pytest.raises(ImageReadError, match="not found"):
        read_image_rgb(tmp_path / "missing.jpg")


def test_boxes_to_frame_truncates_like_wsolevaluation():
    # int(x * 224 / W): 99.9 * 224 / 300 = 74.59 -> 74; 300 * 224 / 300 = 224
    assert boxes_to_frame(np.array([[99.9, 0.0, 300.0, 150.0]]), (300, 200), 224).tolist() == [[74, 0, 224, 168]]


def make_cub(root, n=6, classes=("001.A", "002.B")):
    """A CUB-200 layout of ``n`` images cycling through ``classes`` (folder and class names); the first
    half is the training split."""
    for name in classes:
        (root / "images" / name).mkdir(parents=True)
    lines = {k: [] for k in ("images", "labels", "split", "boxes")}
    for i in range(1, n + 1):
        label = (i - 1) % len(classes)
        folder = classes[label]
        write(root / "images" / folder / f"img{i}.jpg", np.full((30, 40, 3), i * 20, np.uint8), ".jpg")
        lines["images"].append(f"{i} {folder}/img{i}.jpg")
        lines["labels"].append(f"{i} {label + 1}")
        lines["split"].append(f"{i} {1 if i <= n // 2 else 0}")
        lines["boxes"].append(f"{i} 1.5 2.0 10.0 20.5")
    (root / "images.txt").write_text("\n".join(lines["images"]) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(lines["labels"]) + "\n")
    (root / "train_test_split.txt").write_text("\n".join(lines["split"]) + "\n")
    (root / "bounding_boxes.txt").write_text("\n".join(lines["boxes"]) + "\n")
    (root / "classes.txt").write_text("".join(f"{k + 1} {name}\n" for k, name in enumerate(classes)))


def test_cub_reader(tmp_path):
    make_cub(tmp_path)
    train, test = read_cub(tmp_path, "train"), read_cub(tmp_path, "test")
    assert len(train) == 3 and len(test) == 3
    assert train.class_names == ["001.A", "002.B"]
    s = train[0]
    assert s.label == 0 and s.boxes.tolist() == [[1.5, 2.0, 11.5, 22.5]]  # x, y, x + w, y + h
    assert s.load().shape == (30, 40, 3)
    with pytest.raises(FileNotFoundError, match="missing"):
        read_cub(tmp_path / "images", "train")


def test_wsoleval_reader_keeps_all_boxes(tmp_path):
    meta = tmp_path / "meta" / "test"
    meta.mkdir(parents=True)
    write(tmp_path / "a.png", np.zeros((10, 10, 3), np.uint8))
    write(tmp_path / "b.png", np.zeros((10, 10, 3), np.uint8))
    (meta / "image_ids.txt").write_text("a.png\nb.png\n")
    (meta / "class_labels.txt").write_text("a.png,0\nb.png,1\n")
    (meta / "image_sizes.txt").write_text("a.png,10,10\nb.png,10,10\n")
    (meta / "localization.txt").write_text("a.png,1,1,5,5\na.png,6,6,9,9\nb.png,0,0,9,9\n")
    ds = read_wsoleval(tmp_path / "meta", tmp_path, "test")
    assert len(ds) == 2 and ds[0].boxes.shape == (2, 4) and ds[1].label == 1 and ds[0].size == (10, 10)


def test_voc_reader(tmp_path):
    write(tmp_path / "x.jpg", np.zeros((20, 30, 3), np.uint8), ".jpg")
    (tmp_path / "x.xml").write_text(
        "<annotation><filename>x.jpg</filename><size><width>30</width><height>20</height></size>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>12</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>15</xmin><ymin>2</ymin><xmax>25</xmax><ymax>18</ymax></bndbox></object>"
        "</annotation>")
    ds = read_voc(tmp_path)
    assert ds.class_names == ["dog"] and ds[0].boxes.shape == (2, 4) and ds[0].size == (30, 20)
    # a model's classes: the split's labels index them, and a class the model lacks is refused
    assert open_dataset("voc", str(tmp_path), "test", class_names=["cat", "dog"])[0].label == 1
    with pytest.raises(ValueError, match=r"x\.xml: class 'dog' is not one of the 2 given$"):
        open_dataset("voc", str(tmp_path), "test", class_names=["cat", "cow"])
    (tmp_path / "bad.xml").write_text("<annotation><filename>")
    with pytest.raises(ValueError, match="invalid XML"):
        read_voc(tmp_path)


def test_csv_reader_groups_boxes_and_splits(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "a.jpg,100,50,raccoon,1,2,30,40\na.jpg,100,50,raccoon,50,2,90,45\nb.jpg,80,60,raccoon,0,0,79,59\n")
    ds = read_csv_boxes(tmp_path / "labels.csv")
    assert len(ds) == 2 and ds[0].boxes.shape == (2, 4) and ds[0].size == (100, 50)
    (tmp_path / "split.csv").write_text("filename,split\na.jpg,train\nb.jpg,test\n")
    test = open_dataset("csv", str(tmp_path / "labels.csv"), "test")
    assert [s.image_id for s in test] == ["b.jpg"]
    (tmp_path / "broken.csv").write_text("filename,width\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_csv_boxes(tmp_path / "broken.csv")
    # the folder instead of the file: one ValueError naming the file to give (not IsADirectoryError)
    with pytest.raises(ValueError, match=r"not a folder; .* e\.g\. .*labels\.csv$"):
        open_dataset("csv", str(tmp_path), "test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no labels CSV"):
        open_dataset("csv", str(tmp_path / "empty"), "test")


def test_csv_labels_only_rows_and_class_indices_shared_by_the_splits(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "a.jpg,100,50,cat,1,2,30,40\nb.jpg,80,60,dog,,,,\nc.jpg,80,60,emu,0,0,79,59\n")
    (tmp_path / "split.csv").write_text("filename,split\na.jpg,train\nb.jpg,test\nc.jpg,test\n")
    train, test = (open_dataset("csv", str(tmp_path / "labels.csv"), s) for s in ("train", "test"))
    # cat is in train only, yet dog and emu keep the indices they have in train's class list
    assert train.class_names == test.class_names == ["cat", "dog", "emu"]
    assert [(s.image_id, s.label, s.boxes.shape) for s in test] == [("b.jpg", 1, (0, 4)), ("c.jpg", 2, (1, 4))]
    (tmp_path / "half.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\nb.jpg,80,60,dog,1,,,\n")
    with pytest.raises(ValueError, match=r"half\.csv:2: non-numeric box or size \(a row without a box"):
        read_csv_boxes(tmp_path / "half.csv")


def test_check_classes_compares_count_and_names_at_each_index():
    ds = synthetic_dataset(4, 3, 32)  # disc, square, triangle
    assert check_classes(ds, ["disc", "square", "triangle"]) is ds
    assert check_classes(ds, ["0", "1", "2"]) is ds  # numbered classes (wsoleval metadata) name nothing
    assert check_classes(ds, None) is ds
    for names, why in ((["disc", "square"], "^the model has 2 classes but synthetic:train has 3$"),
                       (["square", "disc", "triangle"], r"class 0 is 'square' but synthetic:train's is 'disc' \(the "
                                                        r"same classes in another order\); 2 of 3 classes differ"),
                       (["disc", "square", "cat"], r"^m\.pt's class 2 is 'cat' but synthetic:train's is 'triangle'; "
                                                   "1 of 3")):
        with pytest.raises(ValueError, match=why):
            check_classes(ds, names, "the model" if "model" in why else "m.pt")


def test_class_folders_reader(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for rel in ("train/cat/1.png", "train/cat/more/2.jpg", "train/dog/3.png", "train/emu/4.png", "val/dog/5.png",
                "val/emu/6.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write(tmp_path / rel, img, Path(rel).suffix)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "README.md").write_text("a file beside the splits")
    train, val = read_class_folders(tmp_path, "train"), open_dataset("folders", str(tmp_path), "val")
    assert train.class_names == val.class_names == ["cat", "dog", "emu"]  # val has no cat: same indices
    assert [(s.image_id, s.label) for s in train] == [("cat/1.png", 0), ("cat/more/2.jpg", 0), ("dog/3.png", 1),
                                                      ("emu/4.png", 2)]
    assert [(s.image_id, s.label) for s in val] == [("dog/5.png", 1), ("emu/6.png", 2)]
    assert all(s.boxes.shape == (0, 4) for s in train) and train[1].load().shape == (8, 8, 3)
    with pytest.raises(FileNotFoundError, match=r"no 'test' folder .*found: train, val"):
        read_class_folders(tmp_path, "test")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no images in class folders"):
        read_class_folders(tmp_path, "empty")


def test_synthetic_dataset_is_exact_and_deterministic():
    a, b = synthetic_dataset(8, 4, 64, seed=3), synthetic_dataset(8, 4, 64, seed=3)
    assert (a[5].load() == b[5].load()).all()
    for s in a:
        mask = s.load_mask()
        ys, xs = np.nonzero(mask)
        assert s.boxes.tolist() == [[xs.min(), ys.min(), xs.max(), ys.max()]]
        assert s.load().shape == (64, 64, 3)
    assert [s.label for s in a] == [0, 1, 2, 3, 0, 1, 2, 3]
    test = synthetic_dataset(8, 4, 64, seed=3, split="test")
    assert not (test[0].load() == a[0].load()).all()


def test_real_cub50_if_present():
    from conftest import shared_dataset
    root = shared_dataset("cub50")
    train, test = read_cub(root, "train"), read_cub(root, "test")
    assert (len(train), len(test), train.num_classes) == (1500, 1389, 50)
