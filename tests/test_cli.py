import json
import subprocess
import sys

import pytest
import torch

from wsol_edge import evaluate, train
from wsol_edge.checkpoint import load_checkpoint
from wsol_edge.config import parse_args

SYN = ["--dataset", "synthetic", "--synthetic-images", "16", "--synthetic-size", "64", "--no-progress"]


def write_class_folders(root, num_images: int, num_classes: int, split=lambda i: "train"):
    """Synthetic images in the folders layout, ROOT/<split>/<class>/<i>.png; returns the SampleSet."""
    import cv2

    from wsol_edge.data import synthetic_dataset

    ds = synthetic_dataset(num_images, num_classes, 64, seed=0)
    for i, sample in enumerate(ds):
        folder = root / split(i) / ds.class_names[sample.label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(sample.load(), cv2.COLOR_RGB2BGR))
    return ds


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert train.main([*SYN, "--epochs", "2", "--batch-size", "8", "--out", str(out), "--freeze-layers", "3"]) == 0
    return out


@pytest.mark.parametrize("module", ["wsol_edge.train", "wsol_edge.evaluate"])
def test_help(module):
    res = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "--config" in res.stdout


def test_checkpoint_is_weights_only_and_complete(trained):
    state = torch.load(trained / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["epoch"] == 2 and state["model_config"]["num_classes"] == 4
    assert len(state["history"]) == 2 and state["train_seconds"] > 0
    assert all("commit" in h for h in state["history"])  # the code each epoch ran on (None outside git)
    assert json.loads((trained / "train_log.json").read_text())["epochs"] == 2


def test_resume_extends_a_finished_run(tmp_path, capsys):
    """--resume with a larger --epochs trains on from the last epoch (the cosine schedule is then
    the new total's, so the result is not an uninterrupted run's: that is the interruption test below)."""
    from wsol_edge.checkpoint import save_checkpoint

    common = [*SYN, "--batch-size", "8", "--seed", "5", "--freeze-layers", "3", "--precise-bn", "0",
              "--threshold-images", "0"]
    assert train.main([*common, "--epochs", "1", "--out", str(tmp_path)]) == 0
    first = load_checkpoint(tmp_path / "checkpoint.pt")
    capsys.readouterr()
    assert train.main([*common, "--epochs", "2", "--out", str(tmp_path), "--resume"]) == 0
    assert "predates saved random state" not in capsys.readouterr().err  # it was saved, and is restored
    second = load_checkpoint(tmp_path / "checkpoint.pt")
    assert second["epoch"] == 2 and second["history"][0] == first["history"][0] and len(second["history"]) == 2
    assert any(not torch.equal(first["model"][k], second["model"][k]) for k in first["model"])
    # a checkpoint from before the random state was saved: the resumed epochs are told to differ
    save_checkpoint(tmp_path / "checkpoint.pt", {**second, "torch_rng_state": None})
    assert train.main([*common, "--epochs", "3", "--out", str(tmp_path), "--resume"]) == 0
    assert "predates saved random state" in capsys.readouterr().err


@pytest.mark.parametrize("method, extra", [("cam", ["--freeze-layers", "3"]), ("has", []), ("icl", [])])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch, method, extra):
    """An interrupted run resumed with the same command ends with an uninterrupted run's weights:
    the optimizer's momentum and the schedule's position come back (every method), and so does
    torch's global generator, from which HaS's hiding and ICL's drop kind draw (rows of
    benchmarks.methods may resume)."""
    from wsol_edge.methods import PlainCam
    from wsol_edge.methods.has import HideAndSeek
    from wsol_edge.methods.icl import ICL

    a, b = tmp_path / "a", tmp_path / "b"
    common = [*SYN, "--method", method, "--batch-size", "8", "--seed", "3", "--epochs", "3", "--precise-bn", "0",
              "--threshold-images", "0", *extra]
    assert train.main([*common, "--out", str(a)]) == 0
    cls = {"cam": PlainCam, "has": HideAndSeek, "icl": ICL}[method]
    real, calls = cls.training_loss, []

    def stop_in_the_third_epoch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # 2 steps per epoch: the first step of epoch 3
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, "training_loss", stop_in_the_third_epoch)
    assert train.main([*common, "--out", str(b)]) == 130
    assert load_checkpoint(b / "checkpoint.pt")["epoch"] == 2
    monkeypatch.setattr(cls, "training_loss", real)
    assert train.main([*common, "--out", str(b), "--resume"]) == 0
    sa, sb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert [h["loss"] for h in sa["history"]] == [h["loss"] for h in sb["history"]]
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])


def test_adamw_decays_weight_matrices_only_and_keeps_the_two_learning_rates():
    """AdamW: decay on weight matrices; none on biases, norm weights and the tokens passed in; the
    backbone at --lr, new layers at --lr x --head-lr-mult. SGD: one group each, decay on all."""
    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    head, token = torch.nn.Linear(4, 2), torch.nn.Parameter(torch.zeros(1, 1, 4))
    head_params = [*head.parameters(), token]
    opt = train.make_optimizer("adamw", list(body.parameters()), head_params, 1e-4, 10, 0.9, 0.05, [token])
    assert isinstance(opt, torch.optim.AdamW)
    where = {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}
    assert where[id(body[0].weight)] == (1e-4, 0.05)
    assert where[id(body[0].bias)] == where[id(body[1].weight)] == where[id(body[1].bias)] == (1e-4, 0.0)
    assert where[id(head.weight)] == (pytest.approx(1e-3), 0.05)
    assert where[id(head.bias)] == where[id(token)] == (pytest.approx(1e-3), 0.0)
    assert len(where) == 7
    sgd = train.make_optimizer("sgd", list(body.parameters()), head_params, 1e-2, 10, 0.9, 1e-4)
    assert [(len(g["params"]), g["weight_decay"]) for g in sgd.param_groups] == [(4, 1e-4), (3, 1e-4)]


def test_sat_names_its_undecayed_tokens():
    from wsol_edge.methods import build_method

    model = build_method("sat", "efficientnet_lite0", 3, pretrained=False)
    ids = {id(p) for p in model.no_weight_decay()}
    assert {n for n, p in model.named_parameters() if id(p) in ids} == {"cls_token", "pos_embed", "spatial_token",
                                                                        "spatial_pos"}


def new_parameters_by_rate(method: str, kw: dict) -> tuple[set, set]:
    """train.split_by_learning_rate on a fresh model: (names of the new parameters in the body group,
    names in the head group), after checking that the two groups hold every parameter once and the
    body every backbone parameter."""
    from wsol_edge.methods import backbone_of, build_method

    model = build_method(method, "efficientnet_lite0", 3, pretrained=False, method_kwargs=kw)
    body, head = train.split_by_learning_rate(model)
    names = {id(p): n for n, p in model.named_parameters()}
    backbone = {id(p) for p in backbone_of(model).parameters()}
    assert backbone <= {id(p) for p in body} and len(body) + len(head) == len(names)
    return {names[id(p)] for p in body if id(p) not in backbone}, {names[id(p)] for p in head}


@pytest.mark.parametrize("kw, gates", [({}, {"caam.delta_x", "caam.delta_xt", "ssam_x.alpha", "ssam_xt.alpha"}),
                                       ({"use_caam": False}, {"ssam_x.alpha", "ssam_xt.alpha"}),
                                       ({"use_ssam": False}, {"caam.delta_x", "caam.delta_xt"})])
def test_where_to_look_gates_train_at_the_backbones_rate(kw, gates):
    """CAAM's deltas and SSAM's alphas go with the pretrained weights (at --lr); every other new
    parameter with the head (at --lr x --head-lr-mult)."""
    body, head = new_parameters_by_rate("wtl", kw)
    assert body == gates
    assert {n.split(".")[0] for n in head} == {"ssam_x", "ssam_xt", "agg", "cls_x", "cls_xt"} - (
        {"ssam_x", "ssam_xt"} if kw.get("use_ssam") is False else set())


@pytest.mark.parametrize("aggregation", ["linear", "conv3x3", "linear_identity"])
def test_where_to_look_slow_aggregation_moves_only_the_aggregation_conv(aggregation):
    """--wtl-slow-aggregation adds exactly the aggregation conv's weight and bias to the gates at the
    backbone's rate; SSAM's convs and both classifiers stay with the head."""
    kw = {"aggregation": aggregation, **({} if aggregation == "linear_identity" else {"agg_channels": 16})}
    (body, head), (slow_body, slow_head) = (new_parameters_by_rate("wtl", {**kw, "slow_aggregation": s})
                                            for s in (False, True))
    agg = {"agg.0.weight", "agg.0.bias"}
    assert agg <= head and not agg & body
    assert slow_body == body | agg and slow_head == head - agg
    assert {n.split(".")[0] for n in slow_head} == {"ssam_x", "ssam_xt", "cls_x", "cls_xt"}


@pytest.mark.parametrize("share, kind", [(False, "linear"), (True, "linear"), (False, "linear_identity"),
                                         (False, "pointwise_depthwise")])
def test_twopath_slow_extractors_train_at_the_backbones_rate_and_only_they_move(share, kind):
    """--twopath-slow-extractors moves exactly the extractors (both, or the shared one; the specified
    extractor with its BatchNorms) to the body group; without it they sit with the head, as every
    other new two-path layer does."""
    kw = {"share_extractor": share, "extractor_kind": kind, **({} if kind == "linear_identity" else {"channels": 16})}
    groups = {slow: new_parameters_by_rate("twopath", {**kw, "slow_extractors": slow}) for slow in (False, True)}
    layers = (["0.weight", "1.weight", "1.bias", "3.weight", "4.weight", "4.bias"] if kind == "pointwise_depthwise"
              else ["0.weight"])
    extractors = {f"{e}.{p}" for e in ("extract_perception",) + (() if share else ("extract_attention",))
                  for p in layers}
    assert groups[False][0] == set() and extractors <= groups[False][1]
    assert groups[True][0] == extractors and groups[True][1] == groups[False][1] - extractors
    assert {n.split(".")[0] for n in groups[True][1]} == {"att_classifier", "att_to_mask", "classifier"}


def test_sat_slow_blocks_move_every_new_layer_but_the_classifier_conv():
    """--sat-slow-blocks: the projection, tokens, position embeddings, blocks and norm go to the body
    group; only the classifier conv stays at the head's rate. Without it every new layer is head."""
    kw = {"dim": 16, "heads": 2, "depth": 3, "sat_depth": 3}
    (body, head), (slow_body, slow_head) = (new_parameters_by_rate("sat", {**kw, "slow_blocks": s})
                                            for s in (False, True))
    assert body == set() and slow_head == {"head.weight", "head.bias"}
    assert slow_body == head - slow_head
    assert {n.split(".")[0] for n in slow_body} == {"proj", "cls_token", "pos_embed", "spatial_token", "spatial_pos",
                                                   "blocks", "norm"}


def test_resume_refuses_another_method_or_method_option_in_one_line(tmp_path, capsys):
    """A flag that changes the model (the method, or one of its options, even one that keeps every
    weight's shape, like --twopath-detach-maps) is refused on --resume, naming both values, and the
    checkpoint is left as it was."""
    common = [*SYN, "--batch-size", "8", "--precise-bn", "0", "--threshold-images", "0", "--out", str(tmp_path)]
    twopath = [*common, "--method", "twopath", "--twopath-extractor", "linear"]
    assert train.main([*twopath, "--epochs", "1"]) == 0
    before = (tmp_path / "checkpoint.pt").read_bytes()
    capsys.readouterr()  # the first run's own output
    for extra, said in ((["--twopath-detach-maps"], "trained with detach_maps=(unset), resumed with detach_maps=True"),
                        (["--twopath-slow-extractors"], "slow_extractors=(unset), resumed with slow_extractors=True"),
                        (["--twopath-channels", "64"], "trained with channels=256, resumed with channels=64")):
        assert train.main([*twopath, "--epochs", "2", "--resume", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and said in err[0]
    assert train.main([*common, "--method", "cam", "--epochs", "2", "--resume"]) == 2
    assert "trained with --method twopath, resumed with --method cam" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert train.main([*twopath, "--epochs", "2", "--resume"]) == 0  # the same flags still resume


def test_resume_on_a_dataset_with_other_classes_is_refused(tmp_path, capsys):
    """A class folder renamed between runs keeps the count: resuming would train label k as another class."""
    write_class_folders(tmp_path / "data", 6, 3)
    argv = ["--dataset", "folders", "--data-root", str(tmp_path / "data"), "--batch-size", "3", "--input-size", "64",
            "--resize", "72", "--no-pretrained", "--precise-bn", "0", "--no-progress", "--out", str(tmp_path / "run")]
    assert train.main([*argv, "--epochs", "1"]) == 0
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    (tmp_path / "data" / "train" / "square").rename(tmp_path / "data" / "train" / "box")
    capsys.readouterr()
    assert train.main([*argv, "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    ckpt = tmp_path / "run" / "checkpoint.pt"
    assert err == [f"error: {ckpt}'s class 0 is 'disc' but folders:data/train's is 'box'; 2 of 3 classes differ, so "
                   "its labels would stand for other classes"]
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path, capsys, monkeypatch):
    import errno
    import os

    from wsol_edge import atomic

    argv = [*SYN, "--batch-size", "8", "--precise-bn", "0", "--threshold-images", "0", "--out", str(tmp_path)]
    assert train.main([*argv, "--epochs", "1"]) == 0
    before = (tmp_path / "checkpoint.pt").read_bytes()
    capsys.readouterr()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    assert train.main([*argv, "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: cannot write ") and err[-1].endswith(
        " (No space left on device); the file there before is kept") and "Traceback" not in " ".join(err)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_schedule_and_crop_options_that_cannot_work_are_refused_in_one_line(tmp_path, capsys):
    # --input-size 288 alone (the default --resize is 256) ended in numpy's "high <= 0"
    assert train.main([*SYN, "--epochs", "1", "--input-size", "288", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --resize 256 is smaller than --input-size 288: the training crop is taken from the resized image; "
        "give --resize 329 (the usual 256/224) or more"]
    assert not (tmp_path / "r").exists()
    assert train.main([*SYN, "--epochs", "2", "--warmup-epochs", "2", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --warmup-epochs 2 is not shorter than --epochs 2: the learning rate would never reach --lr; give "
        "fewer warm-up epochs (the default is 0.5)"]
    # more layers to freeze than the backbone has froze the whole backbone without a word
    assert train.main([*SYN, "--epochs", "1", "--input-size", "64", "--resize", "72", "--no-pretrained",
                       "--freeze-layers", "99", "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --freeze-layers 99: this backbone has 18 layers (18 freezes all of them, so that only the head trains)"]
    assert not (tmp_path / "r").exists()


def test_a_corrupt_image_read_by_a_worker_process_is_one_line(tmp_path, capsys):
    """torch hands a worker's exception back with its whole traceback as the message."""
    write_class_folders(tmp_path / "data", 6, 2)
    bad = tmp_path / "data" / "train" / "disc" / "bad.png"
    bad.write_bytes(b"junk")
    assert train.main(["--dataset", "folders", "--data-root", str(tmp_path / "data"), "--epochs", "1", "--batch-size",
                       "7", "--input-size", "64", "--resize", "72", "--no-pretrained", "--workers", "1",
                       "--no-progress", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {bad}: not a decodable image (corrupt or unsupported format)"]


def test_resume_reads_an_unrecorded_option_as_its_default():
    """An option the checkpoint does not record (saved before it was recorded) or this run leaves unset
    builds the module's default, so it is a change only when the other side holds another value."""
    cfg = {"method": "twopath", "backbone": "efficientnet_lite0", "backbone_kwargs": {"output_stride": 16},
           "method_kwargs": {"channels": 256, "share_extractor": False, "use_mask": True,
                             "extractor_kind": "pointwise_depthwise"}}
    older = {**cfg, "method_kwargs": {"channels": 256, "share_extractor": False, "use_mask": True}}
    assert train.architecture_changes(older, cfg) is None
    assert train.architecture_changes(older, {**cfg, "method_kwargs": {**cfg["method_kwargs"], "extractor_kind": "linear"}}) \
        == ("extractor_kind=(unset)", "extractor_kind=linear")
    stride_unset = {**cfg, "backbone_kwargs": {}}
    assert train.architecture_changes(stride_unset, {**cfg, "backbone_kwargs": {"output_stride": 32}}) is None
    assert train.architecture_changes(stride_unset, cfg) == ("output_stride=(unset)", "output_stride=16")


def test_sat_trains_with_adamw_and_resume_refuses_another_optimizer(tmp_path, capsys):
    common = [*SYN, "--method", "sat", "--batch-size", "8", "--epochs", "1", "--precise-bn", "0",
              "--threshold-images", "0", "--out", str(tmp_path)]
    assert train.main([*common, "--optimizer", "adamw", "--lr", "1e-4", "--weight-decay", "0.05"]) == 0
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["train_args"]["optimizer"] == "adamw" and "exp_avg_sq" in next(iter(state["optimizer"]["state"].values()))
    # the SAT tokens sit in an undecayed group: 4 groups, the two undecayed ones hold the 1-D parameters and the tokens
    groups = state["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0, 0.05, 0.0]
    assert train.main([*common, "--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and "trained with --optimizer adamw, resumed with --optimizer sgd" in err[-1]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1  # nothing was overwritten


def test_a_methods_flags_with_another_method_are_refused_in_one_line(tmp_path, capsys):
    """A flag of one method given with another would change nothing; it is refused before any folder
    is made. Every method flag of the model group is in train.METHOD_FLAGS, so none is missed."""
    group = next(g for g in train.build_parser()._action_groups if g.title == "model")
    shared = {"method", "backbone", "output_stride", "dilated", "pretrained", "weights", "freeze_layers"}
    listed = [name for names in train.METHOD_FLAGS.values() for name in names]
    assert sorted(a.dest for a in group._group_actions if a.dest not in shared) == sorted(listed)
    out = tmp_path / "run"
    assert train.main([*SYN, "--method", "cam", "--icl-hide-patches", "16", "--no-area-loss", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --icl-hide-patches is for --method icl; --no-area-loss is for --method sat; "
                   "this run trains --method cam"]
    assert not out.exists()
    assert train.main([*SYN, "--method", "has", "--no-area-loss", "--no-norm-loss", "--out", str(out)]) == 2
    assert "--no-area-loss, --no-norm-loss are for --method sat; this run trains --method has" in capsys.readouterr().err
    assert not out.exists()


def test_labels_only_class_folders_train_and_are_refused_for_scoring_in_one_line(tmp_path, capsys):
    """The usual labels-only layout trains; the checkpoint then has no threshold (said), and evaluate
    says the split cannot be scored instead of failing on its first image."""
    ds = write_class_folders(tmp_path / "data", 12, 3, split=lambda i: "train" if i < 9 else "val")
    run = tmp_path / "run"
    assert train.main(["--dataset", "folders", "--data-root", str(tmp_path / "data"), "--epochs", "1",
                       "--batch-size", "4", "--input-size", "64", "--resize", "72", "--no-pretrained",
                       "--no-progress", "--out", str(run)]) == 0
    assert "has no boxes, so the checkpoint carries no CAM threshold" in capsys.readouterr().err
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["model_config"]["class_names"] == ds.class_names and state.get("cam_threshold") is None
    assert evaluate.main(["--checkpoint", str(run / "checkpoint.pt"), "--dataset", "folders", "--data-root",
                          str(tmp_path / "data"), "--split", "val", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: folders:data/val has no boxes, so localisation cannot be scored on it: use a boxed split "
                   "(--dataset cub, wsoleval, voc, or csv with boxes)"]
    from wsol_edge.export.__main__ import main as export_main

    assert export_main(["regression", "--checkpoint", str(run / "checkpoint.pt"), "--workdir", str(tmp_path / "w"),
                        "--dataset", "folders", "--data-root", str(tmp_path / "data"), "--split", "val",
                        "--cam-threshold", "0.3", "--calibration-dir", str(tmp_path / "data")]) == 2
    assert "folders:data/val has no boxes" in capsys.readouterr().err
    assert not (tmp_path / "w" / "model.fp32.onnx").exists()  # refused before any export


def test_a_split_is_read_with_the_models_classes_or_refused_before_scoring(trained, tmp_path, capsys):
    """A CSV split names its classes by its rows: sorted, the synthetic ones come in another order than the
    model's, and a split without one of them has one class fewer. Read with the model's class names, its
    labels line up (before: scored against other classes' maps when the count matched, refused when not).
    A split with fixed class files (cub) whose classes differ is refused before any work."""
    import cv2

    from test_data import make_cub
    from wsol_edge.data import open_dataset, synthetic_dataset
    from wsol_edge.export.__main__ import main as export_main

    model_classes = load_checkpoint(trained / "checkpoint.pt")["model_config"]["class_names"]
    ds = synthetic_dataset(8, 4, 64, seed=1, split="test")
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
    kept = [(i, s) for i, s in enumerate(ds) if ds.class_names[s.label] != "square"]  # a split without one class
    for i, sample in kept:
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(sample.load(), cv2.COLOR_RGB2BGR))
        x0, y0, x1, y1 = sample.boxes[0]
        rows.append(f"{i}.png,64,64,{ds.class_names[sample.label]},{x0},{y0},{x1},{y1}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    ckpt, csv = str(trained / "checkpoint.pt"), str(tmp_path / "labels.csv")
    own = open_dataset("csv", csv, "test")
    assert own.class_names == ["cross", "disc", "triangle"]  # what the split alone says
    lined_up = open_dataset("csv", csv, "test", class_names=model_classes)
    assert [s.label for s in lined_up] == [s.label for _, s in kept]
    assert evaluate.main(["--checkpoint", ckpt, "--dataset", "csv", "--data-root", csv, "--no-progress",
                          "--output", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["num_images"] == len(kept)
    (tmp_path / "labels.csv").write_text("\n".join(rows + ["extra.png,64,64,ring,1,1,9,9"]) + "\n")
    assert evaluate.main(["--checkpoint", ckpt, "--dataset", "csv", "--data-root", csv, "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {csv}: class 'ring' is not one of the 4 given"

    reordered = [model_classes[k] for k in (1, 0, 2, 3)]
    make_cub(tmp_path / "cub", n=8, classes=reordered)
    assert evaluate.main(["--checkpoint", ckpt, "--dataset", "cub", "--data-root", str(tmp_path / "cub"),
                          "--no-progress", "--output", str(tmp_path / "c.json")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: the model's class 0 is {model_classes[0]!r} but cub:cub:test's is {reordered[0]!r} (the same classes "
        "in another order); 2 of 4 classes differ, so its labels would stand for other classes"]
    assert not (tmp_path / "c.json").exists()
    assert export_main(["regression", "--checkpoint", ckpt, "--workdir", str(tmp_path / "w"), "--dataset", "cub",
                        "--data-root", str(tmp_path / "cub"), "--cam-threshold", "0.3", "--calibration-dir",
                        str(tmp_path)]) == 2
    assert "(the same classes in another order)" in capsys.readouterr().err
    assert not (tmp_path / "w" / "model.fp32.onnx").exists()  # refused before any export


def test_training_again_into_a_finished_run_is_refused_unless_asked(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*SYN, "--epochs", "1", "--batch-size", "8", "--input-size", "64", "--resize", "72", "--no-pretrained",
            "--threshold-images", "0", "--out", str(out)]
    assert train.main(argv) == 0
    first = (out / "checkpoint.pt").read_bytes()
    assert train.main(argv) == 2  # a rerun of the same command: the finished model is kept
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {out / 'checkpoint.pt'} exists: continue it with --resume, replace it with --overwrite, or give "
        "another --out")
    assert (out / "checkpoint.pt").read_bytes() == first
    assert train.main([*argv, "--resume", "--overwrite"]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert train.main([*argv, "--overwrite", "--seed", "1"]) == 0
    assert (out / "checkpoint.pt").read_bytes() != first


def test_a_one_class_dataset_is_refused_in_one_line(tmp_path, capsys):
    """Its loss is 0 from the first step (it trained to 100% accuracy and a CAM of its start weights)."""
    out = tmp_path / "run"
    assert train.main([*SYN, "--synthetic-classes", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has one class (disc): a classifier over one class has nothing to learn" in err[0]
    assert not out.exists()


def test_an_output_that_cannot_be_written_is_refused_before_the_work(trained, tmp_path, capsys):
    (tmp_path / "taken").write_text("a file where a folder should go")
    blocked = tmp_path / "taken"
    assert train.main([*SYN, "--out", str(blocked / "run")]) == 2
    assert capsys.readouterr().err.strip() == f"error: output folder {blocked / 'run'} is not writable ({blocked} is a file)"
    ckpt = str(trained / "checkpoint.pt")
    for flag in ("--output", "--per-image"):  # refused as the flags are read, before evaluating
        with pytest.raises(SystemExit) as exc:
            evaluate.main(["--checkpoint", ckpt, *SYN, flag, str(blocked / "r.json")])
        err = capsys.readouterr()
        assert exc.value.code == 2 and err.err.strip().splitlines()[-1].endswith(
            f"error: argument {flag}: output folder {blocked} is not writable ({blocked} is a file)")
        assert "gt_known_loc" not in err.out
    config = tmp_path / "eval.yaml"  # a config file's values are checked by the same types
    config.write_text(f"output: {blocked / 'r.json'}\n")
    with pytest.raises(SystemExit):
        evaluate.main(["--config", str(config), "--checkpoint", ckpt, *SYN])
    err = capsys.readouterr()
    assert f"output folder {blocked} is not writable ({blocked} is a file)" in err.err and "gt_known_loc" not in err.out
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--overlays", str(blocked / "ov")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_config_file_and_flag_override(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("dataset: synthetic\nsynthetic_images: 8\nsynthetic_size: 64\nepochs: 5\nbatch_size: 4\n"
                   f"out: {tmp_path / 'o'}\nno_progress: true\n")
    assert train.main(["--config", str(cfg), "--epochs", "1"]) == 0
    assert load_checkpoint(tmp_path / "o" / "checkpoint.pt")["epoch"] == 1
    (tmp_path / "bad.json").write_text(json.dumps({"not_an_option": 1}))
    with pytest.raises(SystemExit):
        train.main(["--config", str(tmp_path / "bad.json")])


@pytest.mark.parametrize("module, argv, message", [
    ("wsol_edge.train", ["--epochs", "0"], "--epochs: must be 1 or more, got 0"),
    ("wsol_edge.train", ["--batch-size", "two"], "--batch-size: not a whole number: 'two'"),
    ("wsol_edge.evaluate", ["--batch-size", "-3"], "--batch-size: must be 1 or more, got -3"),
    ("wsol_edge.run", ["--engine", "m.onnx", "--source", "x", "--batch", "0"], "--batch: must be 1 or more, got 0"),
    ("wsol_edge.run", ["--engine", "m.onnx", "--source", "x", "--reconnect", "-1"], "--reconnect: must be 0 or more"),
    ("wsol_edge.export", ["onnx", "--checkpoint", "c.pt", "--output", "m.onnx", "--threshold-images", "0"],
     "--threshold-images: must be 1 or more, got 0"),
    ("benchmarks", ["speed", "--models", "m.onnx", "--images", "d", "--output", "o.json", "--rounds", "0"],
     "--rounds: must be 1 or more, got 0"),
])
def test_counts_out_of_range_are_refused_in_one_line(module, argv, message):
    res = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and message in res.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("argv, message", [
    (["--lr", "-0.01"], "--lr: must be 0 or more, got -0.01"),  # 0 is allowed: a checkpoint of the start weights
    (["--lr", "nan"], "--lr: must be a finite number, got nan"),
    (["--head-lr-mult", "-1"], "--head-lr-mult: must be 0 or more, got -1"),
    (["--momentum", "0"], "--momentum: must be between 0 and 1 (both excluded), got 0"),  # Nesterov needs one
    (["--weight-decay", "-0.0001"], "--weight-decay: must be 0 or more, got -0.0001"),
    (["--warmup-epochs", "-1"], "--warmup-epochs: must be 0 or more, got -1"),
    (["--clip-grad-norm", "0"], "--clip-grad-norm: must be more than 0, got 0"),  # would zero every gradient
    (["--method", "wtl", "--wtl-beta", "-50"], "--wtl-beta: must be 0 or more, got -50"),
    (["--method", "wtl", "--wtl-beta-warmup", "inf"], "--wtl-beta-warmup: must be a finite number, got inf"),
    (["--method", "sat", "--sat-area", "1.5"], "--sat-area: must be between 0 and 1 (both excluded), got 1.5"),
])
def test_rates_and_loss_weights_out_of_range_are_refused_in_one_line(tmp_path, capsys, argv, message):
    """Each of these trained without a word before (a negative rate climbs the loss, a zero norm freezes
    the model); now argparse refuses it before any folder is made."""
    with pytest.raises(SystemExit) as exit_info:
        train.main([*SYN, *argv, "--out", str(tmp_path / "never")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("argv", [["--method", "has", "--has-grid-sizes", "0", "16", "64"],
                                  ["--method", "wtl", "--wtl-patch", "64"],
                                  ["--method", "icl", "--icl-hide-patches", "0", "70"]])
def test_a_patch_as_large_as_the_crop_is_refused_in_one_line(tmp_path, capsys, argv):
    assert train.main([*SYN, "--input-size", "64", *argv, "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a patch must be smaller than the 64 px training crop" in err[0] and argv[2] in err[0]
    assert not (tmp_path / "never").exists()


def test_config_values_go_through_the_flags_checks(tmp_path, capsys):
    """argparse checks only what is typed on the command line; a config file gets the same checks."""
    for text, message in (("epochs: 0\n", "epochs: must be 1 or more, got 0"),
                          ("method: foo\n", "method: 'foo' is not one of cam, has"),
                          ("lr: fast\n", "lr: not a number: 'fast'"),
                          ("lr: -1\n", "lr: must be 0 or more, got -1")):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text)
        with pytest.raises(SystemExit):
            train.main(["--config", str(cfg), *SYN, "--out", str(tmp_path / "never")])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
    # YAML reads 1e-4 as a string; the flag's float type makes it the number the user meant
    cfg.write_text("lr: 1e-4\nhas_grid_sizes: [0, 16]\n")
    args = parse_args(train.build_parser(), ["--config", str(cfg)])
    assert args.lr == 1e-4 and args.has_grid_sizes == [0, 16]


@pytest.mark.parametrize("name, content, message", [
    ("missing.yaml", None, "not found"),
    ("list.yaml", "- epochs\n- 3\n", "must hold a mapping of option: value"),
    ("broken.yaml", "epochs: [1,\n", "not a readable config file"),
    ("broken.json", "{epochs", "not a readable config file"),
    ("binary.yaml", b"\xff\xfe\x00", "not a readable config file"),
])
def test_unreadable_config_files_are_one_line_errors(tmp_path, capsys, name, content, message):
    cfg = tmp_path / name
    if isinstance(content, bytes):
        cfg.write_bytes(content)
    elif content is not None:
        cfg.write_text(content)
    with pytest.raises(SystemExit) as exc:
        train.main(["--config", str(cfg), *SYN, "--out", str(tmp_path / "never")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and str(cfg) in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "never").exists()


def test_evaluate_writes_protocol_record_and_overlays(trained, tmp_path):
    out = tmp_path / "r.json"
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), *SYN, "--output", str(out),
                          "--overlays", str(tmp_path / "ov"), "--num-overlays", "3"]) == 0
    rec = json.loads(out.read_text())
    for key in ("kind", "dataset", "split", "num_images", "method", "backbone", "backend", "precision", "protocol",
                "input_size", "metrics", "train_seconds", "command", "commit", "machine", "cam_thresholds",
                "iou_thresholds", "resize", "train_commits"):
        assert key in rec, key
    state = load_checkpoint(trained / "checkpoint.pt")
    assert rec["train_commits"] == sorted({h["commit"] for h in state["history"] if h["commit"]})
    m = rec["metrics"]
    for key in ("top1_cls", "top5_cls", "top1_loc", "top5_loc", "gt_known_loc", "gt_known_threshold",
                "max_box_acc", "max_box_acc_v2", "pxap"):
        assert key in m, key
    assert set(m["max_box_acc"]) == {"30", "50", "70"} and rec["num_images"] == 16
    assert m["top1_loc"] <= m["top1_cls"] and m["top1_loc"] <= m["gt_known_loc"] <= m["max_box_acc"]["30"]
    assert len(list((tmp_path / "ov").glob("*.png"))) == 3
    d = rec["deployed_threshold"]  # the checkpoint's own threshold, chosen on training images
    assert d["cam_threshold"] == state["cam_threshold"] and d["source"] == state["cam_threshold_source"]
    assert d["gt_known_loc"] <= m["gt_known_loc"] and d["top1_loc"] <= m["top1_loc"]


def test_deployed_threshold_is_said_as_scored(trained, tmp_path, capsys):
    """Scored on the swept thresholds: a coarse step scores the nearest one, and says so (it printed that
    nearest one as "the checkpoint's own"); at another input size the maps differ, so it is not scored."""
    ckpt, out = str(trained / "checkpoint.pt"), tmp_path / "r.json"
    own = load_checkpoint(trained / "checkpoint.pt")["cam_threshold"]
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--cam-threshold-step", "0.5", "--output", str(out)]) == 0
    d = json.loads(out.read_text())["deployed_threshold"]
    nearest = min((0.0, 0.5), key=lambda t: abs(t - own))
    assert d["checkpoint_threshold"] == own and d["cam_threshold"] == nearest != own
    assert (f"at {nearest:.2f}, the swept threshold nearest the checkpoint's own {own:.2f} (--cam-threshold-step 0.5): "
            in capsys.readouterr().out)
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--input-size", "192", "--output", str(out)]) == 0
    assert "deployed_threshold" not in json.loads(out.read_text())
    assert "checkpoint's own" not in capsys.readouterr().out


def test_deployed_threshold_is_the_best_one_on_the_images_it_was_chosen_on(trained, tmp_path):
    out = tmp_path / "r.json"
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), *SYN, "--split", "train",
                          "--output", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["deployed_threshold"]["gt_known_loc"] == rec["metrics"]["gt_known_loc"]
    assert "16 images of synthetic:train" in rec["deployed_threshold"]["source"]


def test_evaluate_iou_thresholds_are_checked_and_printed_as_given(trained, tmp_path, capsys):
    base = ["--checkpoint", str(trained / "checkpoint.pt"), *SYN]
    for bad, message in (("0", "--iou-thresholds: must be a whole percent from 1 to 100, got 0"),
                         ("150", "--iou-thresholds: must be a whole percent from 1 to 100, got 150")):
        with pytest.raises(SystemExit):
            evaluate.main([*base, "--iou-thresholds", bad])
        assert message in capsys.readouterr().err
    assert evaluate.main([*base, "--iou-thresholds", "50", "50"]) == 2  # would count twice in MaxBoxAccV2
    assert capsys.readouterr().err.strip() == "error: --iou-thresholds 50 50: each threshold once"
    out = tmp_path / "r.json"
    assert evaluate.main([*base, "--iou-thresholds", "50", "--output", str(out)]) == 0
    record = json.loads(out.read_text())
    assert "MaxBoxAcc(50)=" in capsys.readouterr().out and record["iou_thresholds"] == [50]
    assert record["metrics"]["max_box_acc_v2"] == pytest.approx(list(record["metrics"]["max_box_acc"].values())[0])


def test_evaluate_with_flip_records_it_and_leaves_out_the_threshold_chosen_without_it(trained, tmp_path):
    out = tmp_path / "r.json"
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), *SYN, "--tta", "flip", "--output", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["tta"] == "flip" and "deployed_threshold" not in rec and rec["num_images"] == 16
    plain = tmp_path / "p.json"
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), *SYN, "--output", str(plain)]) == 0
    assert json.loads(plain.read_text())["tta"] == "none"


def test_evaluate_at_several_input_sizes_records_them(trained, tmp_path, capsys):
    ckpt = str(trained / "checkpoint.pt")
    out = tmp_path / "r.json"
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--tta-sizes", "224", "256", "--output", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["tta_sizes"] == [224, 256] and rec["tta"] == "none" and "deployed_threshold" not in rec
    plain = tmp_path / "p.json"
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--tta-sizes", "224", "--output", str(plain)]) == 0
    rec = json.loads(plain.read_text())  # the model's own size alone is no augmentation
    assert rec["tta_sizes"] is None and "deployed_threshold" in rec
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--tta-sizes", "224", "240"]) == 2
    assert "multiples of the model's stride" in capsys.readouterr().err
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--tta-sizes", "224", "256", "--align-maps"]) == 2
    assert "use one of them" in capsys.readouterr().err


def evaluate_variants(ckpt: str, tmp_path, **variants) -> dict:
    """``wsol_edge.evaluate`` of ``ckpt`` on the synthetic set once per NAME=[extra flags]: NAME -> (result
    record, read_per_image's (tables, image ids, info))."""
    from wsol_edge.evaluation import read_per_image

    runs = {}
    for name, extra in variants.items():
        out, npz = tmp_path / f"{name}.json", tmp_path / f"{name}.npz"
        assert evaluate.main(["--checkpoint", ckpt, *SYN, *extra, "--output", str(out), "--per-image", str(npz)]) == 0
        runs[name] = (json.loads(out.read_text()), read_per_image(npz))
    return runs


def test_evaluate_with_a_map_shift_scores_the_shifted_maps(trained, tmp_path, capsys):
    import numpy as np

    ckpt = str(trained / "checkpoint.pt")
    runs = evaluate_variants(ckpt, tmp_path, plain=[], shifted=["--map-shift-px", "24"])
    (plain, (plain_iou, _, _)), (shifted, (shifted_iou, _, _)) = runs["plain"], runs["shifted"]
    assert (plain["map_shift_px"], shifted["map_shift_px"]) == (0.0, 24.0)
    assert "deployed_threshold" not in shifted  # the checkpoint's threshold was chosen on unshifted maps
    assert shifted["metrics"]["top1_cls"] == plain["metrics"]["top1_cls"]  # logits untouched
    ious = [k for k in plain_iou if "iou" in k]
    assert ious and any(not np.array_equal(plain_iou[k], shifted_iou[k]) for k in ious)  # the boxes moved
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--map-shift-px", "5", "--tta", "flip"]) == 2
    assert "already cancels" in capsys.readouterr().err


def test_evaluate_with_ivr_normalisation_records_it_and_moves_the_boxes(trained, tmp_path, capsys):
    import numpy as np
    import pytest

    ckpt = str(trained / "checkpoint.pt")
    runs = evaluate_variants(ckpt, tmp_path, plain=[], ivr=["--ivr-percentile", "0.6"])
    (plain, (plain_iou, _, _)), (ivr, (ivr_iou, _, ivr_info)) = runs["plain"], runs["ivr"]
    assert (plain["scoremap_normalization"], plain["ivr_percentile"]) == ("min-max", None)
    assert (ivr["scoremap_normalization"], ivr["ivr_percentile"]) == ("ivr", 0.6) and ivr_info["ivr_percentile"] == 0.6
    assert "deployed_threshold" in plain and "deployed_threshold" not in ivr  # chosen on min-max maps
    assert ivr["metrics"]["top1_cls"] == plain["metrics"]["top1_cls"]  # logits untouched
    assert not np.array_equal(plain_iou["ious_multi"], ivr_iou["ious_multi"])
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--ivr-percentile", "0.6", "--protocol", "sat"]) == 2
    assert "sat protocol" in capsys.readouterr().err
    for bad in ("1", "-0.2", "high"):
        with pytest.raises(SystemExit):
            evaluate.main(["--checkpoint", ckpt, *SYN, "--ivr-percentile", bad])
        assert "--ivr-percentile" in capsys.readouterr().err


def test_evaluate_with_aligned_maps_records_the_offset_and_moves_the_boxes(trained, tmp_path, capsys):
    import numpy as np

    ckpt = str(trained / "checkpoint.pt")
    runs = evaluate_variants(ckpt, tmp_path, plain=[], aligned=["--align-maps"], flip=["--tta", "flip", "--align-maps"])
    (plain, (plain_iou, _, _)), (aligned, (aligned_iou, _, _)), (flip, _) = runs["plain"], runs["aligned"], runs["flip"]
    # the fixture's EfficientNet-Lite0 at the train CLI's default stride, 32: five SAME stride-2 layers put
    # cell j's field at 32j + 31, drawn at 32j + 15.5 (grid_offset.py); flip's average is centred across
    assert (plain["map_offset_px"], aligned["map_offset_px"], flip["map_offset_px"]) == ([0.0, 0.0], [15.5, 15.5],
                                                                                         [0.0, 15.5])
    assert "deployed_threshold" in plain and "deployed_threshold" not in aligned
    assert aligned["metrics"]["top1_cls"] == plain["metrics"]["top1_cls"]
    ious = [k for k in plain_iou if "iou" in k]
    assert ious and any(not np.array_equal(plain_iou[k], aligned_iou[k]) for k in ious)
    assert evaluate.main(["--checkpoint", ckpt, *SYN, "--align-maps", "--map-shift-px", "5"]) == 2
    assert "use one of them" in capsys.readouterr().err


def test_evaluate_sat_protocol(trained):
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), *SYN, "--protocol", "sat"]) == 0


def test_bad_checkpoint_and_mismatched_dataset(trained, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert evaluate.main(["--checkpoint", str(bad), *SYN]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), "--dataset", "synthetic",
                          "--synthetic-classes", "3", "--no-progress"]) == 2
    assert "classes" in capsys.readouterr().err


def test_corrupt_image_skipped_and_counted_in_training(tmp_path, monkeypatch):
    from wsol_edge.data import synthetic as syn
    from wsol_edge.imageio import ImageReadError

    real = syn._image

    def flaky(seed, index, k, size):
        if index == 3:
            raise ImageReadError("img3: not a decodable image")
        return real(seed, index, k, size)

    monkeypatch.setattr(syn, "_image", flaky)
    args = [*SYN, "--synthetic-images", "8", "--epochs", "1", "--batch-size", "4", "--out", str(tmp_path)]
    assert train.main(args) == 2  # stops with a clear error by default
    assert train.main([*args, "--skip-bad-images"]) == 0
    assert load_checkpoint(tmp_path / "checkpoint.pt")["skipped_images"] == 1


def test_evaluate_per_image_tables_feed_the_paired_bootstrap(trained, tmp_path, capsys):
    from benchmarks import paired_bootstrap
    from wsol_edge.evaluation import read_per_image

    out, npz = tmp_path / "r.json", tmp_path / "cam" / "per_image.npz"
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), *SYN, "--output", str(out),
                          "--per-image", str(npz)]) == 0
    tables, ids, info = read_per_image(npz)
    assert len(ids) == 16 == len(set(ids)) and tables["ious_multi"].shape == tables["ious_box"].shape == (16, 100)
    assert info["metrics"] == json.loads(out.read_text())["metrics"]
    result = tmp_path / "boot.json"
    # The model against itself: every difference is exactly 0 in every resample.
    assert paired_bootstrap.main(["--reference", str(npz), "--compare", f"same={npz}", "--resamples", "50",
                                  "--output", str(result)]) == 0
    rec = json.loads(result.read_text())
    assert rec["kind"] == "bootstrap" and rec["num_images"] == 16 and rec["reference"] == "cam"
    # each row names the weights it scored, the weights-only hash included
    evaluated = json.loads(out.read_text())
    for row in rec["models"]:
        assert {k: row[k] for k in ("checkpoint", "checkpoint_sha256", "weights_sha256")} == \
            {k: evaluated[k] for k in ("checkpoint", "checkpoint_sha256", "weights_sha256")}
    assert len(evaluated["weights_sha256"]) == 64
    for key, value in rec["models"][0]["metrics"].items():
        assert value["observed"] == info["metrics"][key] and value["ci95"][0] <= value["observed"] <= value["ci95"][1]
    diffs = rec["differences"][0]["metrics"]
    assert set(diffs) == {"max_box_acc_v2", "gt_known_loc", "top1_loc", "top1_cls"}
    assert all(d["observed"] == 0 and d["ci95"] == [0, 0] and d["share_of_resamples_above_zero"] == 0
               for d in diffs.values())
    # Files from other images cannot be paired: one error line.
    other = tmp_path / "other.npz"
    assert evaluate.main(["--checkpoint", str(trained / "checkpoint.pt"), *SYN, "--max-images", "8",
                          "--per-image", str(other)]) == 0
    res = subprocess.run([sys.executable, "-m", "benchmarks.paired_bootstrap", "--reference", str(npz), "--compare",
                          str(other), "--output", str(tmp_path / "never.json")], capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.startswith("error:") and "same images" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "never.json").exists()
    # Two files named alike (both from a folder "cam") would overwrite each other's rows: refused.
    other_cam = tmp_path / "lite2" / "cam" / "per_image.npz"
    other_cam.parent.mkdir(parents=True)
    other_cam.write_bytes(npz.read_bytes())
    with pytest.raises(SystemExit) as exc:
        paired_bootstrap.main(["--reference", str(npz), "--compare", str(other_cam), "--output", str(tmp_path / "n.json")])
    assert exc.value.code == 2 and "two models named cam; name them with NAME=NPZ" in capsys.readouterr().err
    assert not (tmp_path / "n.json").exists()


def test_run_device_serves_a_checkpoint_and_is_refused_for_other_models(trained, tiny_onnx, tmp_path, capsys,
                                                                       monkeypatch):
    import cv2
    import numpy as np

    from wsol_edge.run import main as run_main

    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.full((40, 60, 3), 128, np.uint8))
    ckpt, jl = str(trained / "checkpoint.pt"), tmp_path / "r.jsonl"
    assert run_main(["--engine", str(tiny_onnx), "--source", str(img), "--device", "cuda", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tiny_onnx}: device cuda applies to a .pt checkpoint; this model runs where providers say (cpu, "
        "cuda, tensorrt)"]
    assert run_main(["--engine", ckpt, "--source", str(img), "--providers", "cuda", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {ckpt}: providers and threads apply to ONNX Runtime; a PyTorch checkpoint runs where device says, "
        "with torch's threads (torch.set_num_threads)"]
    assert run_main(["--engine", ckpt, "--source", str(img), "--device", "auto", "--jsonl", str(jl),
                     "--no-progress"]) == 0
    assert len(jl.read_text().splitlines()) == 1
    threads = []  # --threads sets torch's for a checkpoint (recorded here, not set for the rest of the session)
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    assert run_main(["--engine", ckpt, "--source", str(img), "--threads", "1", "--no-progress"]) == 0
    assert threads == [1]
    if not torch.cuda.is_available():
        assert run_main(["--engine", ckpt, "--source", str(img), "--device", "cuda", "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: PyTorch backend: device cuda: ") and err.endswith("use device cpu")


def test_run_serves_a_checkpoint_with_flip_tta(trained, tmp_path, capsys):
    import cv2
    import numpy as np

    from wsol_edge.modelio import load_model
    from wsol_edge.run import main as run_main
    from wsol_edge.runtime.localizer import Localizer

    rng = np.random.default_rng(3)
    frame = cv2.resize(rng.integers(0, 255, (6, 9, 3), dtype=np.uint8), (90, 60), interpolation=cv2.INTER_CUBIC)
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), frame)
    ckpt = str(trained / "checkpoint.pt")
    # the checkpoint's threshold was chosen without flip: refused without --threshold, nothing written
    jl = tmp_path / "out.jsonl"
    assert run_main(["--engine", ckpt, "--source", str(img), "--tta", "flip", "--jsonl", str(jl), "--no-progress"]) == 2
    assert "chosen without it; give --threshold" in capsys.readouterr().err and not jl.exists()
    with pytest.raises(ValueError, match="chosen without it"):  # the Python API refuses it too, not 0.5 silently
        Localizer(ckpt, tta="flip")
    # an ONNX model carries its TTA in the graph (export onnx --tta), so the flag is refused there
    for threshold in (["--threshold", "0.3"], []):
        assert run_main(["--engine", str(tmp_path / "m.onnx"), "--source", str(img), "--tta", "flip", *threshold]) == 2
        assert "applies to PyTorch checkpoints only" in capsys.readouterr().err
    assert run_main(["--engine", ckpt, "--source", str(img), "--tta-sizes", "224", "256", "--no-progress"]) == 2
    assert "--tta-sizes 224 256: the checkpoint's CAM threshold was chosen without it" in capsys.readouterr().err
    assert run_main(["--engine", ckpt, "--source", str(img), "--tta", "flip", "--threshold", "0.3",
                     "--jsonl", str(jl), "--no-progress"]) == 0
    served = json.loads(jl.read_text().splitlines()[0])
    # by hand: the plain model on the frame and on its mirror, logits averaged
    model, _, _ = load_model(ckpt)
    x = torch.from_numpy(Localizer(ckpt).preprocess(frame))[None]
    with torch.no_grad():
        logits = (model(x)[0] + model(x.flip(-1))[0]) / 2
    probs = logits.softmax(1)[0]
    assert served["class_id"] == int(probs.argmax())
    assert served["score"] == pytest.approx(float(probs.max()), abs=1e-5)
    plain = torch.softmax(model(x)[0], 1)[0].max().item()
    assert abs(plain - float(probs.max())) > 1e-4  # the flip pass changed what was served
    # several input sizes: served with the logits averaged over the sizes (by hand: each size's pass)
    jl_sizes = tmp_path / "sizes.jsonl"
    assert run_main(["--engine", ckpt, "--source", str(img), "--tta-sizes", "224", "256", "--threshold", "0.3",
                     "--jsonl", str(jl_sizes), "--no-progress"]) == 0
    served = json.loads(jl_sizes.read_text().splitlines()[0])
    with torch.no_grad():
        x256 = torch.nn.functional.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        probs = ((model(x)[0] + model(x256)[0]) / 2).softmax(1)[0]
    assert served["class_id"] == int(probs.argmax())
    assert served["score"] == pytest.approx(float(probs.max()), abs=1e-5)
