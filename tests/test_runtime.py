import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsol_edge import Localizer
from wsol_edge.backends import BackendError
from wsol_edge.run import main as run_main
from wsol_edge.runtime import sources as sources_mod

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def model(tiny_onnx):
    return tiny_onnx


def photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    return img


def test_localizer_api_any_size_and_layout(model):
    loc = Localizer(model)
    for frame in (photo(480, 640), photo(1, 1), photo(37, 5000), photo(50, 60)[:, :, 0],
                  np.dstack([photo(50, 60), np.full((50, 60), 255, np.uint8)]), (photo(40, 40).astype(np.uint16) * 257)):
        r = loc(frame)
        h, w = frame.shape[:2]
        assert 0 <= r.box[0] <= r.box[2] <= w - 1 and 0 <= r.box[1] <= r.box[3] <= h - 1
        assert r.class_name in ("a", "b", "c") and 0 < r.score <= 1 and r.cam.shape == (2, 2)
    batch = loc.batch([photo(100, 100, s) for s in range(3)])
    assert len(batch) == 3 and loc.threshold == 0.3
    with pytest.raises(ValueError, match="frame must be"):
        loc(np.zeros((0, 5, 3), np.uint8))
    for topk in (0, -1, 2.5, True):  # was clamped to 1 without a word
        with pytest.raises(ValueError, match=r"^topk must be a whole number >= 1"):
            Localizer(model, topk=topk)
    with pytest.raises(BackendError, match="device cuda applies to a .pt checkpoint"):  # was ignored: ran on the CPU
        Localizer(model, device="cuda")
    with pytest.raises(ValueError, match=r"^device, threads: options for loading a model file; this backend is"):
        Localizer(loc.backend, device="cuda", threads=2)  # dropped too, before


def test_localizer_with_ivr_normalises_by_it_and_needs_a_threshold(model, capsys):
    from wsol_edge.postprocess import box_from_scoremap, cam_to_scoremap
    from wsol_edge.runtime.localizer import box_to_frame_pixels

    loc = Localizer(model, threshold=0.2, ivr_percentile=0.6)
    frame = photo(120, 160)
    r = loc(frame)
    want = cam_to_scoremap(r.cam, loc.size, ivr_percentile=0.6)
    np.testing.assert_array_equal(r.scoremap, want)
    assert r.box == box_to_frame_pixels(box_from_scoremap(want, 0.2), (160, 120), loc.size)
    assert not np.array_equal(want, Localizer(model, threshold=0.2)(frame).scoremap)  # min-max differs
    with pytest.raises(ValueError, match="chosen on min-max maps"):
        Localizer(model, ivr_percentile=0.6)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Localizer(model, threshold=0.2, ivr_percentile=1.0)
    assert run_main(["--engine", str(model), "--source", "camera:0", "--ivr-percentile", "0.6"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "give --threshold" in err


def write_folder(d: Path):
    d.mkdir()
    for i in range(3):
        cv2.imwrite(str(d / f"good{i}.jpg"), photo(60 + i, 80, i))
    sub = d / "sub"; sub.mkdir()
    cv2.imwrite(str(sub / "gray.png"), photo(30, 30)[:, :, 0])
    cv2.imwrite(str(sub / "rgba.png"), np.dstack([photo(30, 30), np.full((30, 30), 100, np.uint8)]))
    cv2.imwrite(str(sub / "deep.png"), photo(30, 30).astype(np.uint16) * 257)
    cv2.imwrite(str(d / "tiny.png"), photo(1, 1))
    (d / "empty.jpg").write_bytes(b"")
    (d / "corrupt.png").write_bytes(b"\x89PNG garbage")
    data = cv2.imencode(".jpg", photo(64, 64))[1].tobytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "notes.txt").write_text("not an image")


def test_cli_folder_with_bad_files_matches_api(model, tmp_path, capsys):
    src = tmp_path / "imgs"
    write_folder(src)
    out, jl = tmp_path / "out", tmp_path / "r.jsonl"
    assert run_main(["--engine", str(model), "--source", str(src), "--output", str(out), "--jsonl", str(jl),
                     "--batch", "3", "--no-progress", "--topk", "2"]) == 0
    err = capsys.readouterr().err
    lines = [json.loads(x) for x in jl.read_text().splitlines()]
    bad = {Path(x["source"]).name for x in lines if "error" in x}
    good = {Path(x["source"]).name: x for x in lines if "error" not in x}
    assert bad == {"empty.jpg", "corrupt.png", "truncated.jpg", "notes.txt"}
    assert set(good) == {"good0.jpg", "good1.jpg", "good2.jpg", "gray.png", "rgba.png", "deep.png", "tiny.png"}
    assert err.count("skipped:") == 4 and "7 frame(s)" in err
    assert len(list(out.glob("*.jpg"))) == 7
    loc = Localizer(model, topk=2)
    from wsol_edge.imageio import read_image_rgb
    for name, rec in good.items():
        api = loc(cv2.cvtColor(read_image_rgb(rec["source"]), cv2.COLOR_RGB2BGR))
        assert rec["class_id"] == api.class_id and rec["box"] == [round(v, 2) for v in api.box]
        assert rec["score"] == pytest.approx(api.score, abs=1e-5) and len(rec["topk"]) == 2
        assert set(rec["latency_ms"]) == {"decode", "preprocess", "inference", "postprocess"}


def make_video(path: Path, n: int) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 64))
    assert w.isOpened()
    for i in range(n):
        w.write(photo(64, 96, i))
    w.release()
    return path


def test_video_source_and_max_frames(model, tmp_path):
    video = make_video(tmp_path / "v.mp4", 12)
    jl = tmp_path / "v.jsonl"
    assert run_main(["--engine", str(model), "--source", str(video), "--jsonl", str(jl), "--output", str(tmp_path / "o"),
                     "--batch", "4", "--no-progress"]) == 0
    recs = [json.loads(x) for x in jl.read_text().splitlines()]
    assert sorted(r["frame"] for r in recs) == list(range(12))
    assert (tmp_path / "o" / "v_annotated.mp4").stat().st_size > 0
    assert run_main(["--engine", str(model), "--source", str(video), "--jsonl", str(jl), "--max-frames", "5",
                     "--no-progress"]) == 0
    assert len(jl.read_text().splitlines()) == 5


def test_videos_in_a_folder_are_read_frame_by_frame_and_annotated_at_their_rate(model, tmp_path, capsys):
    from wsol_edge.runtime.sources import open_source

    src = tmp_path / "clips"
    (src / "day2").mkdir(parents=True)
    make_video(src / "cam.mp4", 6)
    make_video(src / "day2" / "cam.mp4", 4)  # the same name in a sub-folder: both kept
    cv2.imwrite(str(src / "still.jpg"), photo(64, 96))
    (src / "broken.mp4").write_bytes(b"not a video")
    assert open_source(str(src))[2] == 6 + 4 + 1 + 1  # frames, the still and the broken file's error line
    jl, out = tmp_path / "r.jsonl", tmp_path / "o"
    assert run_main(["--engine", str(model), "--source", str(src), "--jsonl", str(jl), "--output", str(out),
                     "--batch", "3", "--no-progress"]) == 0
    recs = [json.loads(x) for x in jl.read_text().splitlines()]
    frames = {}
    for r in recs:
        frames.setdefault(Path(r["source"]).relative_to(src).as_posix(), []).append(r.get("frame"))
    assert {k: sorted(v) for k, v in frames.items() if k.endswith("cam.mp4")} == {
        "cam.mp4": list(range(6)), "day2/cam.mp4": list(range(4))}
    assert [r["error"] for r in recs if "error" in r] == [f"{src / 'broken.mp4'}: cannot open the video (corrupt or "
                                                          "unsupported)"]
    assert (out / "still.jpg").is_file()
    for name, n in (("cam_annotated.mp4", 6), ("cam_1_annotated.mp4", 4)):
        cap = cv2.VideoCapture(str(out / name))
        assert (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)) == (n, 10.0)  # the source's rate
        cap.release()


def test_a_stream_that_changes_resolution_keeps_every_frame_in_its_annotated_video(model, tmp_path):
    from wsol_edge.runtime.sinks import AnnotatedSink
    from wsol_edge.runtime.sources import Frame

    loc = Localizer(model)
    sink = AnnotatedSink(tmp_path / "o")
    for i, (h, w) in enumerate([(64, 96)] * 3 + [(120, 160)] * 2):
        image = photo(h, w, i)
        sink.write(Frame("rtsp://cam/1", i, 0.0, image=image, video=True, fps=10.0), loc(image))
    sink.close()
    cap = cv2.VideoCapture(str(tmp_path / "o" / "1_annotated.mp4"))
    assert (int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))) == (5, 96)



def test_an_annotated_video_short_of_frames_is_one_line_and_the_jsonl_is_kept(model, tmp_path, capsys, monkeypatch):
    # VideoWriter.write returns nothing and raises nothing: a disk that fills up mid-run is found by reading back
    video = make_video(tmp_path / "v.mp4", 12)
    real = cv2.VideoWriter

    class FullDiskWriter:  # the frames after the third never reach the file; or (cut) neither does its index
        cut = False

        def __init__(self, path, *args):
            self.path, self.inner, self.calls = path, real(path, *args), 0

        def isOpened(self):
            return self.inner.isOpened()

        def write(self, img):
            self.calls += 1
            if self.calls <= 3 or self.cut:
                self.inner.write(img)

        def release(self):
            self.inner.release()
            if self.cut:
                data = Path(self.path).read_bytes()
                Path(self.path).write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(cv2, "VideoWriter", FullDiskWriter)
    jl, out = tmp_path / "r.jsonl", tmp_path / "o"
    for cut, said in ((False, "holds 3 of the 12 frames written"),
                      (True, "cannot be read back (12 frames were written to it)")):
        FullDiskWriter.cut = cut
        assert run_main(["--engine", str(model), "--source", str(video), "--jsonl", str(jl), "--output", str(out),
                         "--no-progress"]) == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert errors == [f"error: annotated video incomplete: {out / 'v_annotated.mp4'} {said}; the video writer "
                          "reported no error (a full disk?)"]
        assert len(jl.read_text().splitlines()) == 12  # every frame's result is kept
    monkeypatch.setattr(cv2, "VideoWriter", real)
    assert run_main(["--engine", str(model), "--source", str(video), "--output", str(out), "--no-progress"]) == 0


def test_output_into_the_source_folder_is_refused_and_the_photos_are_kept(model, tmp_path, capsys):
    photos = tmp_path / "photos"
    (photos / "day2").mkdir(parents=True)
    for name in ("a.jpg", "b.png", "day2/c.jpg"):
        cv2.imwrite(str(photos / name), photo(40, 60, len(name)))
    before = {p: p.read_bytes() for p in photos.rglob("*.*")}
    for source, output in ((photos, photos), (f"{photos}/*.png", f"{photos}/"), (photos / "day2" / "c.jpg", photos / "day2")):
        assert run_main(["--engine", str(model), "--source", str(source), "--output", str(output), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds the source's own files" in err[0] and "give another --output folder" in err[0]
    assert {p: p.read_bytes() for p in photos.rglob("*.*")} == before  # nothing written, nothing replaced
    # another folder, twice: the second run replaces only what the first wrote
    for _ in range(2):
        assert run_main(["--engine", str(model), "--source", str(photos), "--output", str(tmp_path / "out"),
                         "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]


@pytest.mark.parametrize("stage", ["inference", "postprocessing"])
def test_a_failing_stage_stops_the_run_and_every_frame_read_is_accounted_for(model, stage):
    import time

    from wsol_edge.backends import load_backend
    from wsol_edge.runtime.pipeline import Pipeline
    from wsol_edge.runtime.sources import Frame

    backend = load_backend(model)
    loc = Localizer(backend)
    owner, name = (backend, "infer") if stage == "inference" else (loc, "postprocess")
    works, calls = getattr(owner, name), []

    def fails_on_the_third_batch(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("device lost")
        return works(*args)

    setattr(owner, name, fails_on_the_third_batch)
    read = []

    def frames():
        for i in range(40):
            read.append(i)
            yield Frame("cam", i, time.time(), image=photo(30, 40, i))

    done, failed = [], []
    pipe = Pipeline(loc, frames(), live=False, batch=2)
    stats = pipe.run(lambda f, r: done.append(f.index), lambda f: failed.append((f.index, f.error)))
    why = f"{stage} failed: RuntimeError: device lost"
    assert pipe.fatal == why  # a postprocessing error ended its thread and run() waited for ever
    assert failed == [(4, f"cam: {why}"), (5, f"cam: {why}")]  # an inference error dropped them without a line
    assert sorted(done + [i for i, _ in failed]) == read and len(read) < 40  # it stopped; nothing read was lost
    assert (stats.frames, stats.errors) == (len(done), 2)


def test_a_sink_that_raises_ends_the_run_and_its_threads(model):
    import threading
    import time

    from wsol_edge.runtime.pipeline import Pipeline
    from wsol_edge.runtime.sources import Frame

    frames = (Frame("cam", i, time.time(), image=photo(30, 40, i)) for i in range(200))
    pipe = Pipeline(Localizer(model), frames, live=False, batch=2)

    def disk_full(frame, result):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        pipe.run(disk_full, lambda f: None)
    stages = {"_capture", "_preprocess", "_infer", "_postprocess"}
    deadline = time.time() + 5
    while any(t.name in stages for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not [t.name for t in threading.enumerate() if t.name in stages]  # none left waiting on a full queue


def test_a_gstreamer_pipeline_on_an_opencv_without_gstreamer_says_so(monkeypatch):
    from wsol_edge.runtime import sources

    info = "  Video I/O:\n    FFMPEG:                      YES\n    GStreamer:                   NO\n"
    monkeypatch.setattr(sources.cv2, "getBuildInformation", lambda: info)  # as PyPI's wheels are built
    assert (sources.opencv_has("FFMPEG"), sources.opencv_has("GStreamer"), sources.opencv_has("V4L")) == (True, False, False)
    monkeypatch.setattr(sources, "_open_capture", lambda cap_args: None)
    with pytest.raises(sources.SourceError, match=r"was built without GStreamer .* the OpenCV JetPack installs"):
        sources.open_source("nvarguscamerasrc ! nvvidconv ! appsink")
    with pytest.raises(sources.SourceError, match="cannot open"):  # other sources keep the general message
        sources.open_source("rtsp://127.0.0.1:9/none", reconnect=0)


def test_show_without_a_window_is_one_line_before_any_frame(model, tmp_path, capsys, monkeypatch):
    """--show on opencv-python-headless (the base install's) was a traceback at the first frame and an abort
    from destroyAllWindows on the way out (exit 134)."""
    from wsol_edge.runtime import sinks

    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), photo(20, 20))
    argv = ["--engine", str(model), "--source", str(img), "--show", "--jsonl", str(tmp_path / "r.jsonl"),
            "--no-progress"]
    if "not implemented" in window_error_here():  # this OpenCV itself: no GUI
        assert run_main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            "error: --show: this OpenCV has no GUI (opencv-python-headless, as the base install has); install "
            "opencv-python in its place to show frames, or write them with --output / --jsonl"]

    def no_display(*args):
        raise cv2.error("OpenCV(4.10.0) window_gtk.cpp:635: error: (-2:Unspecified error) Can't initialize GTK "
                        "backend in function 'cvInitSystem'")

    monkeypatch.setattr(sinks.cv2, "namedWindow", no_display)
    assert run_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --show: OpenCV cannot show a window here (no display?): ")
    assert "Can't initialize GTK backend" in err[0]
    # a window that opened and then fails (the display went away) ends the run in one line too
    monkeypatch.setattr(sinks.cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(sinks.cv2, "imshow", no_display)
    monkeypatch.setattr(sinks.cv2, "destroyWindow", no_display)
    assert run_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: --show: OpenCV cannot show a window here") and "Traceback" not in "".join(err)


def test_a_full_disk_mid_run_ends_it_in_one_line_keeping_what_was_written(model, tmp_path, capsys, monkeypatch):
    import errno

    from wsol_edge.runtime import sinks

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        cv2.imwrite(str(src / f"{i}.jpg"), photo(20, 20, i))
    real_replace, written = os.replace, []

    def replace_until_full(a, b):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(b)
        real_replace(a, b)

    monkeypatch.setattr(sinks.os, "replace", replace_until_full)
    out, jl = tmp_path / "out", tmp_path / "r.jsonl"
    assert run_main(["--engine", str(model), "--source", str(src), "--output", str(out), "--jsonl", str(jl),
                     "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error")]
    assert err == [f"error: cannot write {out / '1.jpg'} (No space left on device)"]
    assert sorted(p.name for p in out.iterdir()) == ["0.jpg"]  # no temporary left behind
    assert len(jl.read_text().splitlines()) >= 1  # the frames finished before it are kept

    class FullDisk:
        def write(self, *text):
            raise OSError(errno.ENOSPC, "No space left on device")

        flush = close = write

    sink = sinks.JsonlSink(tmp_path / "x.jsonl")
    sink.f.close()
    sink.f = FullDisk()
    with pytest.raises(sinks.OutputError, match=r"x\.jsonl \(No space left on device\); the lines before are kept$"):
        sink.write({"frame": 0})
    sink.close()  # the failed flush is not raised again on the way out


def window_error_here() -> str:
    """OpenCV's message for a window on this machine ("" where one opens)."""
    try:
        cv2.namedWindow("probe")
        cv2.destroyWindow("probe")
        return ""
    except cv2.error as exc:
        return str(exc)


def test_truncated_videos(model, tmp_path, capsys):
    # AVI (MJPG) cut at 60%: the frames before the cut are all processed, with a warning
    w = cv2.VideoWriter(str(tmp_path / "v.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for i in range(30):
        w.write(photo(64, 96, i))
    w.release()
    data = (tmp_path / "v.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    jl = tmp_path / "c.jsonl"
    assert run_main(["--engine", str(model), "--source", str(tmp_path / "cut.avi"), "--jsonl", str(jl), "--no-progress"]) == 0
    n = len(jl.read_text().splitlines())
    assert 0 < n < 30 and f"ended after {n} of 30 frames" in capsys.readouterr().err
    # MP4 cut before its index (moov atom): cannot be opened -> one clear error
    data = make_video(tmp_path / "v.mp4", 30).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    assert run_main(["--engine", str(model), "--source", str(tmp_path / "cut.mp4"), "--no-progress"]) == 2
    # the file is there: the message says what is wrong is in it, not "no such device/file"
    assert f"error: {tmp_path / 'cut.mp4'}: cannot open the video (corrupt or unsupported)" in capsys.readouterr().err


def test_a_source_that_cannot_open_is_one_line_and_verbose_adds_the_libraries_own(tiny_onnx, tmp_path):
    """In a fresh process, as a user runs it: FFmpeg's "moov atom not found" and OpenCV's warnings are hidden, so
    the failure is this tool's line alone, which says how to see theirs; --verbose shows them."""
    data = make_video(tmp_path / "v.mp4", 30).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    argv = [sys.executable, "-m", "wsol_edge.run", "--engine", str(tiny_onnx), "--source", str(tmp_path / "cut.mp4"),
            "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    quiet = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [f"error: {tmp_path / 'cut.mp4'}: cannot open the video (corrupt or "
                                         "unsupported); --verbose shows OpenCV's and FFmpeg's own messages"]
    verbose = subprocess.run([*argv, "--verbose"], capture_output=True, text=True, env=env, timeout=120)
    assert verbose.returncode == 2 and "moov atom not found" in verbose.stderr
    said = f"error: {tmp_path / 'cut.mp4'}: cannot open the video (corrupt or unsupported)"
    assert verbose.stderr.splitlines()[-1] == said


class FakeCapture:
    """A camera that delivers 3 frames, then disconnects and never comes back."""
    opened = 0

    def __init__(self, *args):
        FakeCapture.opened += 1
        self.left = 3 if FakeCapture.opened == 1 else 0

    def isOpened(self):
        return self.left > 0

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, photo(48, 64, self.left)

    def get(self, prop):
        return 0

    def release(self):
        pass


def test_camera_disconnect_reconnects_then_fails_clearly(model, tmp_path, monkeypatch, capsys):
    FakeCapture.opened = 0
    monkeypatch.setattr(sources_mod.cv2, "VideoCapture", FakeCapture)
    jl = tmp_path / "cam.jsonl"
    rc = run_main(["--engine", str(model), "--source", "camera:0", "--jsonl", str(jl), "--reconnect", "2",
                   "--no-drop-frames", "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "did not come back after 2 attempts" in err and "reconnecting" in err
    assert len(jl.read_text().splitlines()) == 3  # every frame read before the drop was written
    assert FakeCapture.opened == 3


def test_bad_model_and_output(model, tmp_path, capsys):
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), photo(20, 20))
    assert run_main(["--engine", str(tmp_path / "missing.onnx"), "--source", str(img)]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    assert run_main(["--engine", str(tmp_path / "junk.onnx"), "--source", str(img)]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert run_main(["--engine", str(tmp_path / "m.engine"), "--source", str(img)]) == 2
    assert "not found" in capsys.readouterr().err
    assert run_main(["--engine", str(model), "--source", str(tmp_path / "nothing_here")]) == 2
    assert "no such file" in capsys.readouterr().err
    # a file where the output folder should be (unwritable even for root, unlike chmod)
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    assert run_main(["--engine", str(model), "--source", str(img), "--output", str(blocker / "out")]) == 2
    assert "not writable" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a traceback from open() before
        run_main(["--engine", str(model), "--source", str(img), "--jsonl", str(tmp_path)])
    assert f"argument --jsonl: {tmp_path} is a folder; give the file to write" in capsys.readouterr().err


def test_a_checkpoint_on_the_base_install_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    from wsol_edge import backends

    monkeypatch.setattr(backends, "torch_installed", lambda: False)  # the base install: no torch
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), photo(20, 20))
    assert run_main(["--engine", str(tmp_path / "model.pt"), "--source", str(img)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs torch" in err[0] and 'pip install "wsol_edge[train]"' in err[0]


def test_runtime_imports_no_torch(model, tmp_path):
    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), photo(20, 20))
    code = ("import sys; from wsol_edge.run import main; rc = main(['--engine', sys.argv[1], '--source', sys.argv[2], "
            "'--no-progress']); assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code, str(model), str(img)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_raccoon_photos_and_video_jsonl_match_api(model, tmp_path):
    from conftest import shared_dataset
    from wsol_edge.imageio import read_image_rgb

    root = shared_dataset("raccoon")
    photos = sorted((root / "images").glob("*.jpg"))[:16]
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in photos:
        (folder / p.name).symlink_to(p)
    jl = tmp_path / "photos.jsonl"
    assert run_main(["--engine", str(model), "--source", str(folder), "--jsonl", str(jl), "--batch", "4",
                     "--no-progress"]) == 0
    loc = Localizer(model)
    recs = [json.loads(x) for x in jl.read_text().splitlines()]
    assert len(recs) == len(photos)
    for rec in recs:
        api = loc(cv2.cvtColor(read_image_rgb(rec["source"]), cv2.COLOR_RGB2BGR))
        assert rec["class_id"] == api.class_id and rec["box"] == [round(v, 2) for v in api.box]
    # a video made from the same photos (lossless MJPG would still re-encode: compare with its own frames)
    frames = [cv2.resize(cv2.imread(str(p)), (320, 240)) for p in photos]
    video = tmp_path / "raccoon.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    for f in frames:
        w.write(f)
    w.release()
    jl = tmp_path / "video.jsonl"
    assert run_main(["--engine", str(model), "--source", str(video), "--jsonl", str(jl), "--batch", "3",
                     "--no-progress"]) == 0
    recs = sorted((json.loads(x) for x in jl.read_text().splitlines()), key=lambda r: r["frame"])
    cap = cv2.VideoCapture(str(video))
    decoded = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        decoded.append(f)
    assert len(recs) == len(decoded) == len(photos)
    for rec, f in zip(recs, decoded):
        api = loc(f)
        assert rec["class_id"] == api.class_id and rec["box"] == [round(v, 2) for v in api.box]
        assert rec["image_size"] == [320, 240]


def test_ctrl_c_finishes_cleanly_with_results_flushed(model, tmp_path):
    import signal
    import time

    video = make_video(tmp_path / "long.mp4", 300)
    jl = tmp_path / "int.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "wsol_edge.run", "--engine", str(model), "--source", str(video),
                             "--jsonl", str(jl), "--fps", "30", "--no-progress"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell without job control starts background jobs with SIGINT ignored, and
                            # Python keeps it ignored: give the child the default so Ctrl-C is delivered
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and (not jl.exists() or len(jl.read_text().splitlines()) < 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted" in err and "frame(s)" in err
    lines = jl.read_text().splitlines()
    assert 5 <= len(lines) < 300
    frames = [json.loads(x)["frame"] for x in lines]  # every line is complete JSON
    assert frames == sorted(frames)


def test_huge_image_file(model, tmp_path):
    big = np.zeros((8000, 8000, 3), np.uint8)
    big[2000:6000, 3000:7000] = 200
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    jl = tmp_path / "big.jsonl"
    assert run_main(["--engine", str(model), "--source", str(path), "--jsonl", str(jl), "--no-progress"]) == 0
    rec = json.loads(jl.read_text())
    assert rec["image_size"] == [8000, 8000] and all(0 <= v <= 7999 for v in rec["box"])
