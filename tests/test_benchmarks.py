import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.__main__ import main as bench_main
from benchmarks.report import markdown_table, speed_rows

REPO = Path(__file__).resolve().parents[1]


def test_speed_command_writes_schema_records(tiny_onnx, tmp_path):
    out = tmp_path / "speed.json"
    assert bench_main(["speed", "--models", str(tiny_onnx), "--images", str(REPO / "wsol_edge/samples/images"),
                       "--num-images", "4", "--batch", "1", "2", "--warmup", "1", "--repeats", "3",
                       "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    recs = data["records"]
    assert len(recs) == 2 and len({r["run_id"] for r in recs}) == 1
    for r in recs:
        for key in ("kind", "model", "backend", "precision", "device", "batch", "images_per_s", "latency_ms",
                    "stages_ms", "run_id", "command", "commit", "machine"):
            assert key in r, key
        assert set(r["stages_ms"]) == {"decode", "preprocess", "inference", "postprocess"}
        assert r["latency_ms"]["median"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert r["images_per_s"] > 0 and r["machine"]["cores"] >= 1
    assert out.with_suffix(".csv").is_file() and out.with_suffix(".png").stat().st_size > 1000
    assert "| onnxruntime | fp32 |" in markdown_table(speed_rows(recs))


def test_speed_skips_an_unreadable_image_up_front_instead_of_ending_part_way(tiny_onnx, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    good = sorted((REPO / "wsol_edge/samples/images").glob("*.jpg"))[0]
    (images / "a.jpg").write_bytes(good.read_bytes())
    (images / "b.jpg").write_bytes(good.read_bytes()[:300])  # truncated: decoding it failed at the second frame
    out = tmp_path / "speed.json"
    assert bench_main(["speed", "--models", str(tiny_onnx), "--images", str(images), "--num-images", "2",
                       "--batch", "1", "--warmup", "1", "--repeats", "4", "--output", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("skipped: ") == 1 and "b.jpg: truncated JPEG" in err
    assert json.loads(out.read_text())["records"][0]["repeats"] == 4
    (images / "a.jpg").unlink()
    assert bench_main(["speed", "--models", str(tiny_onnx), "--images", str(images), "--output", str(out)]) == 2
    assert "error: none of the 1 images could be read" in capsys.readouterr().err


def test_speed_rounds_pool_samples_and_ratios_are_taken_per_round(tiny_onnx, tmp_path):
    from benchmarks.speed import ratios_to_reference

    out = tmp_path / "speed.json"
    assert bench_main(["speed", "--models", str(tiny_onnx), "--images", str(REPO / "wsol_edge/samples/images"),
                       "--num-images", "2", "--batch", "1", "--warmup", "1", "--repeats", "3", "--rounds", "2",
                       "--output", str(out)]) == 0
    (rec,) = json.loads(out.read_text())["records"]
    assert rec["rounds"] == 2 and rec["repeats"] == 6 and len(rec["round_images_per_s"]) == 2

    def record(backend, precision, batch, ips, rounds):
        return {"backend": backend, "precision": precision, "batch": batch, "images_per_s": ips,
                "round_images_per_s": rounds, "model_file": f"{backend}-{precision}"}
    recs = [record("pytorch", "fp32", 1, 10.0, [8.0, 12.0]), record("onnxruntime", "int8", 1, 30.0, [32.0, 24.0]),
            record("onnxruntime", "int8", 8, 50.0, [50.0])]  # no PyTorch record at batch 8: no ratio
    (r,) = ratios_to_reference(recs)
    assert r["ratio"] == 3.0 and r["ratio_per_round"] == [4.0, 2.0] and r["batch"] == 1


def test_profile_command(tiny_onnx, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert bench_main(["profile", "--onnx", str(tiny_onnx), "--runs", "2", "--output", str(out)]) == 0
    prof = json.loads(out.read_text())["profiles"][0]
    assert "Conv" in prof["by_op_type_ms"] and abs(sum(prof["by_op_type_share"].values()) - 1) < 0.01
    capsys.readouterr()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")  # ONNX Runtime's own exception: a traceback before
    assert bench_main(["profile", "--onnx", str(junk), "--output", str(tmp_path / "q.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {junk}: ONNX Runtime cannot load it (")


def test_missing_images_folder(tiny_onnx, tmp_path, capsys):
    assert bench_main(["speed", "--models", str(tiny_onnx), "--images", str(tmp_path / "none"),
                       "--output", str(tmp_path / "x.json")]) == 2
    assert "error: image folder " in capsys.readouterr().err  # not "calibration folder": nothing calibrates here


def _method_row(name, v, sha=None, machine=None):
    return {"variant": name, "train_seconds": 60.0, "weights_sha256": sha, "commit": "0123456789abcdef",
            "machine": machine or {"cpu": "AMD EPYC"},
            "metrics": {"top1_cls": v, "top1_loc": v, "gt_known_loc": v, "max_box_acc_v2": v}}


def test_methods_table_rerun_of_one_row_replaces_only_that_row():
    from benchmarks.methods import TABLES, markdown, merge

    order = list(TABLES["main"])
    rows = merge([], [_method_row("wtl", 1.0), _method_row("cam", 2.0)], order)
    assert [r["variant"] for r in rows] == ["cam", "wtl"]  # table order, not arrival order
    rows = merge(rows, [_method_row("wtl", 3.0)], order)
    assert [(r["variant"], r["metrics"]["top1_cls"]) for r in rows] == [("cam", 2.0), ("wtl", 3.0)]
    assert "| wtl | 3.00 | 3.00 | 3.00 | 3.00 | 1.0 |" in markdown(rows)


def test_methods_rerun_says_whether_the_row_came_back():
    from benchmarks.methods import row_back

    epyc = {"cpu": "AMD EPYC", "cpu_capability": "AVX2"}
    xeon = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_capability": "AVX512"}
    assert row_back(None, _method_row("has", 1.0)) == "has: a new row (none to compare with)"
    assert row_back(_method_row("has", 1.0, "ab", epyc), _method_row("has", 1.0, "ab", epyc)) \
        == "has: the row came back: the same weights"
    # Rows written before records carried the weights' hash are compared by their metrics.
    assert row_back(_method_row("has", 1.0), _method_row("has", 1.0, "ab")).endswith("the same metrics (the old row has no weights hash)")
    assert row_back(_method_row("has", 1.0, "ab"), _method_row("has", 1.0, "cd")).endswith("the same metrics (other weights)")
    line = row_back(_method_row("has", 64.48, "ab", epyc), _method_row("has", 64.27, "cd", xeon))
    assert line.startswith("has: the row differs from the one it replaces: Top-1 Cls 64.48 -> 64.27 (-0.21)")
    assert "MaxBoxAccV2 64.48 -> 64.27 (-0.21)" in line
    assert "trained on AMD EPYC, AVX2 (scored at commit 01234567), this one on Intel(R) Xeon(R) Processor, AVX512" in line
    rescored = _method_row("has", 1.0, "ab", epyc)
    rescored["metrics"]["max_box_acc_v2"] = 1.5
    assert row_back(_method_row("has", 1.0, "ab", epyc), rescored) == (
        "has: the row differs from the one it replaces: MaxBoxAccV2 1.00 -> 1.50 (+0.50); "
        "the weights are the same, so the scoring changed")
    # The same CPU, with or without a recorded dispatch level, is not blamed for a difference.
    same_cpu = row_back(_method_row("has", 64.48, "ab"), _method_row("has", 64.27, "cd", epyc))
    assert "MaxBoxAccV2 64.48 -> 64.27" in same_cpu and "trained on" not in same_cpu


def test_methods_command_refuses_unknown_rows_and_missing_data(tmp_path, capsys):
    from benchmarks.methods import main

    assert main(["--only", "nosuch"]) == 2
    assert "unknown row" in capsys.readouterr().err
    assert main(["--only", "cam", "--data-root", str(tmp_path / "absent")]) == 2
    assert "not found" in capsys.readouterr().err
    # A file the rows cannot be merged into is refused before anything trains, in one line.
    for text in ("{not json", '{"rows": []}', '{"records": [{"metrics": {}}]}'):
        bad = tmp_path / "table.json"
        bad.write_text(text)
        assert main(["--only", "cam", "--data-root", str(tmp_path), "--runs", str(tmp_path / "runs"),
                     "--output", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {bad} is not a table this command writes") and err.count("\n") == 1
        assert not (tmp_path / "runs").exists() and bad.read_text() == text


def test_methods_tables_build_the_models_their_flags_name():
    from benchmarks.methods import SAME_RUN, TABLES
    from wsol_edge.train import build_parser, method_kwargs

    parser = build_parser()
    for table, rows in TABLES.items():
        for name, flags in rows.items():
            parser.parse_args(["--data-root", "x", *flags])  # argparse exits on a flag train lacks
    for (table, name), (run_table, run_name) in SAME_RUN.items():
        assert TABLES[table][name] == TABLES[run_table][run_name], (table, name)  # a shared run has one set of flags
    kw = {name: method_kwargs(parser.parse_args(["--data-root", "x", *flags]))
          for name, flags in TABLES["twopath_ablation"].items()}
    assert kw["two_extractors+reweight"] == {"channels": 256, "share_extractor": False, "use_mask": True,
                                             "extractor_kind": "pointwise_depthwise"}
    assert kw["one_extractor"] == {"channels": 256, "share_extractor": True, "use_mask": False,
                                   "extractor_kind": "pointwise_depthwise"}
    assert (kw["two_extractors"]["use_mask"], kw["one_extractor+reweight"]["share_extractor"]) == (False, True)
    assert [kw[f"two_extractors+reweight_{k}"]["extractor_kind"] for k in ("pointwise", "linear")] == ["pointwise", "linear"]
    assert kw["two_extractors+reweight_linear_detach_maps"] == {**kw["two_extractors+reweight_linear"], "detach_maps": True}
    assert "detach_maps" not in kw["two_extractors+reweight_linear"]  # older records keep their method_kwargs
    assert kw["two_extractors+reweight_linear_640"] == {**kw["two_extractors+reweight_linear"], "channels": 640}
    assert kw["two_extractors+reweight_linear_slow_extractors"] == {**kw["two_extractors+reweight_linear"],
                                                                    "slow_extractors": True}
    assert kw["two_extractors+reweight_slow_extractors"] == {**kw["two_extractors+reweight"], "slow_extractors": True}
    identity = {k: v for k, v in kw["two_extractors+reweight_linear_slow_extractors"].items() if k != "channels"}
    assert kw["two_extractors+reweight_linear_identity_slow_extractors"] == {**identity,
                                                                             "extractor_kind": "linear_identity"}
    wtl = {name: method_kwargs(parser.parse_args(["--data-root", "x", *flags]))
           for name, flags in TABLES["wtl_ablation"].items()}
    assert wtl["caam+ssam+fuse_relu"]["aggregation"] == "conv3x3" and wtl["caam+ssam+fuse_relu"]["fuse_map"] == "relu"
    assert wtl["caam+ssam+fuse_relu_linear"] == {**wtl["caam+ssam+fuse_relu"], "aggregation": "linear"}  # only the head differs
    assert wtl["caam+ssam+fuse_relu_linear_slow_aggregation"] == {**wtl["caam+ssam+fuse_relu_linear"],
                                                                   "slow_aggregation": True}
    identity = {k: v for k, v in wtl["caam+ssam+fuse_relu_linear_slow_aggregation"].items() if k != "agg_channels"}
    assert wtl["caam+ssam+fuse_relu_linear_identity_slow_aggregation"] == {**identity, "aggregation": "linear_identity"}
    assert wtl["caam+ssam+fuse_relu_linear"]["agg_channels"] == 512  # recorded as every earlier row recorded it
    assert wtl["caam+ssam+fuse_relu_linear_slow_aggregation_whole_share0.2"] == {
        **wtl["caam+ssam+fuse_relu_linear_slow_aggregation"], "whole_share": 0.2}
    assert "whole_share" not in wtl["caam+ssam+fuse_relu_linear_slow_aggregation"]  # older records keep their method_kwargs
    assert wtl["ssam+fuse_relu_linear_slow_aggregation_whole_share0.2"] == {
        **wtl["caam+ssam+fuse_relu_linear_slow_aggregation_whole_share0.2"], "use_caam": False}
    icl = {name: method_kwargs(parser.parse_args(["--data-root", "x", *flags]))
           for name, flags in TABLES["icl_ablation"].items()}
    full = icl["nonlocal+bg_drop+ca+fc"]
    assert full == {"attention": "nonlocal", "drop_probs": [0.5, 0.25, 0.25], "gamma_bg": 0.2, "use_bg_drop": True,
                    "use_contrastive": True, "use_consistency": True}
    # each ablation row takes away exactly one component of the full method
    assert icl["nonlocal+ca+fc"] == {**full, "use_bg_drop": False}
    assert icl["nonlocal+bg_drop+fc"] == {**full, "use_contrastive": False}
    assert icl["nonlocal+bg_drop+ca"] == {**full, "use_consistency": False}
    assert icl["channel_mean+bg_drop+ca+fc"] == {**full, "attention": "channel_mean"}
    assert icl["nonlocal+bg_drop+ca+fc_no_disc_drop"] == {**full, "drop_probs": [0.0, 0.25, 0.25]}
    # the one row that changes two components: exactly the two single-change rows above, together
    assert icl["channel_mean+bg_drop+ca+fc_no_disc_drop"] == {**full, "attention": "channel_mean",
                                                               "drop_probs": [0.0, 0.25, 0.25]}
    bg = {name: method_kwargs(parser.parse_args(["--data-root", "x", *flags]))
          for name, flags in TABLES["icl_background"].items()}
    best = icl["channel_mean+bg_drop+ca+fc_no_disc_drop"]
    assert bg["both_changes"] == best  # the rows below move the background drop of the best row, the last three its losses or input
    assert bg["bg_drop_3of4"] == {**best, "drop_probs": [0.0, 0.75, 0.25]}
    assert bg["bg_drop_only"] == {**best, "drop_probs": [0.0, 1.0, 0.0]}
    assert bg["gamma_bg_0.3"] == {**best, "gamma_bg": 0.3}
    assert bg["bg_drop_only_gamma_bg_0.1"] == {**bg["bg_drop_only"], "gamma_bg": 0.1}
    assert bg["bg_drop_only_no_losses"] == {**bg["bg_drop_only"], "use_contrastive": False, "use_consistency": False}
    assert bg["bg_drop_only_no_contrastive"] == {**bg["bg_drop_only"], "use_contrastive": False}
    assert bg["bg_drop_only_hide_patches"] == {**bg["bg_drop_only"], "hide_grid_sizes": [0, 16, 32, 44, 56]}
    winner = vars(parser.parse_args(["--data-root", "x", *TABLES["icl_background"]["bg_drop_only"]]))
    for size in (224, 240):  # the same model and method; only the training resize before the 224 crop differs
        row = vars(parser.parse_args(["--data-root", "x", *TABLES["icl_background"][f"bg_drop_only_resize_{size}"]]))
        assert row == {**winner, "resize": size} and winner["resize"] == 256
    for w in (2, 4):
        assert bg[f"bg_drop_only_ca_{w}"] == {**bg["bg_drop_only"], "lambda_ca": float(w), "lambda_fc": 1.0}
    sat = {name: method_kwargs(parser.parse_args(["--data-root", "x", *flags]))
           for name, flags in TABLES["sat_ablation"].items()}
    full = sat["spatial_token+area+norm"]
    assert full == {"area": 0.25, "use_area_loss": True, "use_norm_loss": True, "dim": 192, "heads": 3, "depth": 3,
                    "sat_depth": 3}
    assert sat["spatial_token+norm"] == {**full, "use_area_loss": False}
    assert sat["spatial_token+area"] == {**full, "use_norm_loss": False}
    assert sat["spatial_token+area+norm_1block"] == {**full, "depth": 1, "sat_depth": 1}
    assert sat["spatial_token+area+norm_1plain"] == {**full, "depth": 4}  # one plain block, then the same three
    assert sat["spatial_token+area+norm_slow_blocks"] == {**full, "slow_blocks": True}
    assert "slow_blocks" not in full  # older records keep their method_kwargs
    assert sat["spatial_token+area+norm_slow_blocks_authors_code"] == {
        **full, "slow_blocks": True, "mask_keys": "all", "norm_kernel": "authors", "drop_path": 0.1}
    assert sat["spatial_token+area+norm_slow_blocks_mask_pool"] == {**full, "slow_blocks": True, "mask_pool": True}
    assert sat["spatial_token+area+norm_mask_pool"] == {**full, "mask_pool": True}
    adamw = parser.parse_args(["--data-root", "x", *TABLES["sat_ablation"]["spatial_token+area+norm_adamw"]])
    assert sat["spatial_token+area+norm_adamw"] == full  # the same model; only the optimizer and its two settings differ
    assert (adamw.optimizer, adamw.lr, adamw.weight_decay, adamw.head_lr_mult) == ("adamw", 1e-4, 0.05, 10.0)
    one_lr = parser.parse_args(["--data-root", "x", *TABLES["sat_ablation"]["spatial_token+area+norm_adamw_one_lr"]])
    assert sat["spatial_token+area+norm_adamw_one_lr"] == full and vars(one_lr) == {**vars(adamw), "head_lr_mult": 1.0}
    from wsol_edge.methods import build_method
    one = build_method("sat", "efficientnet_lite0", 3, method_kwargs=sat["spatial_token+area+norm_1block"])
    assert (len(one.blocks), one.sat_depth) == (1, 1)  # the row builds (it once failed: depth 1 < sat_depth 3)
    plain = build_method("sat", "efficientnet_lite0", 3, method_kwargs=sat["spatial_token+area+norm_1plain"])
    assert (len(plain.blocks), plain.sat_depth) == (4, 3)
    with pytest.raises(ValueError, match="--sat-plain-blocks is for the hybrid SAT; deit_tiny has its 12 blocks"):
        method_kwargs(parser.parse_args(["--data-root", "x", "--method", "sat", "--backbone", "deit_tiny",
                                         "--sat-plain-blocks", "1"]))
    with pytest.raises(ValueError, match="--sat-dim, --sat-depth are for the hybrid SAT; deit_small has its 12"):
        method_kwargs(parser.parse_args(["--data-root", "x", "--method", "sat", "--backbone", "deit_small",
                                         "--sat-depth", "1", "--sat-dim", "64"]))


def test_best_icl_config_trains_the_benchmarked_row():
    """configs/cub50_icl_lite0.yaml is the background-drop table's chosen row, as benchmarks.methods
    trains it at 12 epochs from the shared config (seed 0): only where it writes differs."""
    from benchmarks.methods import TABLES
    from wsol_edge.config import parse_args
    from wsol_edge.train import build_parser

    from_config = vars(parse_args(build_parser(), ["--config", str(REPO / "configs/cub50_icl_lite0.yaml")]))
    row = TABLES["icl_background"]["bg_drop_only"]
    as_benchmarked = vars(parse_args(build_parser(), ["--config", str(REPO / "configs/cub50_cam_lite0.yaml"), *row,
                                                      "--epochs", "12", "--precise-bn", "30"]))
    differ = {k for k in from_config if from_config[k] != as_benchmarked[k]}
    assert differ == {"config", "out"}, differ


def test_288_config_trains_the_best_localizer_at_288():
    """configs/cub50_icl_lite0_288.yaml is the best localizer's config with the training crop at 288 from
    images resized to 329, as benchmarks/input288_seed.sh trains it: nothing else differs."""
    from wsol_edge.config import parse_args
    from wsol_edge.train import build_parser

    def args(*argv):
        return vars(parse_args(build_parser(), list(argv)))

    at224 = args("--config", str(REPO / "configs/cub50_icl_lite0.yaml"))
    at288 = args("--config", str(REPO / "configs/cub50_icl_lite0_288.yaml"))
    assert {k for k in at288 if at288[k] != at224[k]} == {"config", "out", "input_size", "resize"}
    assert (at288["input_size"], at288["resize"]) == (288, 329)
    assert at288 | {"config": None, "out": None} == args("--config", str(REPO / "configs/cub50_icl_lite0.yaml"),
                                                        "--input-size", "288", "--resize", "329") | {"config": None, "out": None}
    script = (REPO / "benchmarks/input288_seed.sh").read_text()
    assert "--input-size 288 --resize 329" in script and "--icl-drop-probs 0 1 0" in script


def test_methods_seed_backbone_and_stride_reach_training_and_the_record(tmp_path, monkeypatch):
    import benchmarks.methods as methods

    calls = []

    def fake_run(cmd):
        calls.append(cmd)
        if "wsol_edge.evaluate" in cmd:
            out = Path(cmd[cmd.index("--output") + 1])
            device = cmd[cmd.index("--device") + 1]
            out.write_text(json.dumps({"metrics": {}, "train_seconds": 1.0, "train_device": device,
                                       "precise_bn": {"batches_requested": 30}}))

    monkeypatch.setattr(methods, "run", fake_run)
    args = methods.build_parser().parse_args(["--seed", "7", "--epochs", "8"])
    run_dir = tmp_path / "cam"
    run_dir.mkdir()
    record = methods.train_and_evaluate("cam", ["--method", "cam"], args, run_dir)
    train_cmd = calls[0]
    assert train_cmd[train_cmd.index("--seed") + 1] == "7"
    assert record["schedule"] == {"config": args.config, "epochs": 8, "seed": 7}
    calls.clear()
    record = methods.train_and_evaluate("cam", ["--method", "cam"], methods.build_parser().parse_args([]), run_dir)
    assert "--seed" not in calls[0] and "seed" not in record["schedule"]  # the config's seed, as before
    assert "--backbone" not in calls[0] and "backbone" not in record["schedule"]  # the config's backbone
    calls.clear()
    args = methods.build_parser().parse_args(["--backbone", "efficientnet_lite2"])
    record = methods.train_and_evaluate("cam", ["--method", "cam"], args, run_dir)
    assert calls[0][calls[0].index("--backbone") + 1] == "efficientnet_lite2"
    assert record["schedule"]["backbone"] == "efficientnet_lite2"
    assert "--output-stride" not in calls[0] and "output_stride" not in record["schedule"]  # the config's
    calls.clear()
    args = methods.build_parser().parse_args(["--output-stride", "8"])
    record = methods.train_and_evaluate("cam", ["--method", "cam"], args, run_dir)
    assert calls[0][calls[0].index("--output-stride") + 1] == "8"
    assert record["schedule"]["output_stride"] == 8
    assert "--dilated" not in calls[0] and "dilated" not in record["schedule"]
    calls.clear()
    args = methods.build_parser().parse_args(["--output-stride", "16", "--dilated"])
    record = methods.train_and_evaluate("cam", ["--method", "cam"], args, run_dir)
    assert "--dilated" in calls[0] and record["schedule"]["dilated"] is True
    calls.clear()
    args = methods.build_parser().parse_args(["--split", "train"])
    record = methods.train_and_evaluate("cam", ["--method", "cam"], args, run_dir)
    evaluate = calls[1]
    assert evaluate[evaluate.index("--split") + 1] == "train"  # scored on training images, kept beside the test files
    assert evaluate[evaluate.index("--output") + 1] == str(run_dir / "eval_train.json")
    assert evaluate[evaluate.index("--per-image") + 1] == str(run_dir / "per_image_train.npz")
    assert "device" not in record["schedule"]
    for cmd in calls:  # the CPU by default, as every committed row trained; one worker process
        assert cmd[cmd.index("--device") + 1] == "cpu" and cmd[cmd.index("--workers") + 1] == "0"
    calls.clear()
    args = methods.build_parser().parse_args(["--device", "cuda", "--workers", "6"])
    record = methods.train_and_evaluate("cam", ["--method", "cam"], args, run_dir)
    for cmd in calls:
        assert cmd[cmd.index("--device") + 1] == "cuda" and cmd[cmd.index("--workers") + 1] == "6"
    assert record["schedule"]["device"] == "cuda"  # a GPU's row says so: its figures are not the CPU's


def test_accuracy_plot_draws_one_bar_per_record_and_metric(tmp_path, capsys):
    recs = [{"kind": "accuracy", "backend": "onnxruntime", "precision": p, "variant": v, "dataset": "cub50",
             "split": "test", "metrics": {"top1_cls": 70.0, "gt_known_loc": g, "max_box_acc_v2": 60.0}}
            for p, v, g in (("fp32", None, 72.3), ("int8", "u8s8", 72.4))]
    src = tmp_path / "acc.json"
    src.write_text(json.dumps({"records": recs}))
    out = tmp_path / "acc.png"
    assert bench_main(["accuracy-plot", "--input", str(src), "--output", str(out)]) == 0
    import cv2

    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] > 300
    empty = tmp_path / "none.json"
    empty.write_text(json.dumps({"records": [{"kind": "speed"}]}))
    assert bench_main(["accuracy-plot", "--input", str(empty), "--output", str(out)]) == 2
    empty.write_text("not json")
    assert bench_main(["accuracy-plot", "--input", str(empty), "--output", str(out)]) == 2
    assert f"error: {empty}: not a JSON result file (Expecting value" in capsys.readouterr().err


def test_overlay_grid_has_one_row_per_model_and_one_cell_per_image(tiny_onnx, tmp_path, capsys):
    import cv2

    from benchmarks.overlay_grid import overlay_grid, read_frames
    from wsol_edge.export.calibration import pick_images

    files = pick_images(REPO / "wsol_edge/samples/images", 3)
    grid = overlay_grid([tiny_onnx, tiny_onnx], read_frames(files), threshold=0.3)
    size = 64  # the tiny model's input size: cells are drawn in the model's input frame
    assert grid.shape == (2 * (18 + size), 3 * size, 3)
    # a corrupt image among them costs its column, said in one line, not the grid
    images = tmp_path / "images"
    images.mkdir()
    for f in files[:2]:
        (images / f.name).write_bytes(f.read_bytes())
    (images / "zz_broken.jpg").write_bytes(files[2].read_bytes()[:200])
    out = tmp_path / "grid.png"
    assert bench_main(["overlays", "--models", str(tiny_onnx), "--images", str(images), "--num-images", "3",
                       "--output", str(out)]) == 0
    out_err = capsys.readouterr()
    assert out_err.err.count("skipped: ") == 1 and "zz_broken.jpg" in out_err.err
    assert f"wrote {out} (1 rows x 2 images)" in out_err.out
    assert cv2.imread(str(out)).shape == (18 + size, 2 * size, 3)
    for f in images.iterdir():
        if f.name != "zz_broken.jpg":
            f.unlink()
    assert bench_main(["overlays", "--models", str(tiny_onnx), "--images", str(images), "--output",
                       str(tmp_path / "none.png")]) == 2
    assert "none of the 1 images could be read" in capsys.readouterr().err


def test_map_contrast_inside_outside_of_the_box_union():
    import numpy as np

    from benchmarks.map_contrast import inside_outside

    m = np.zeros((10, 10))
    m[2:5, 2:5] = 1.0  # exactly the inclusive box (2,2)-(4,4)
    assert inside_outside(m, [[2, 2, 4, 4]]) == (1.0, 0.0)
    inv = 1.0 - m  # an inverted map: the object is the coldest region
    i, o = inside_outside(inv, [[2, 2, 4, 4], [2, 2, 3, 3]])
    assert i == 0.0 and o == 1.0


def test_wtl_branch_cosine_is_one_when_hiding_changes_nothing_and_classifiers_agree():
    import torch

    from benchmarks.map_contrast import branch_cosines
    from wsol_edge.methods.wtl import WhereToLook
    from wsol_edge.models import create_backbone

    torch.manual_seed(0)
    m = WhereToLook(create_backbone("efficientnet_lite0", pretrained=False), 4, agg_channels=16, patch=16).eval()
    labels = torch.tensor([0, 3])
    with torch.no_grad():
        m.cls_xt.weight.copy_(m.cls_x.weight)
        m.cls_xt.bias.copy_(m.cls_x.bias)
        # hiding fills with 0 (the normalised mean): an all-zero image looks the same to both branches
        same = branch_cosines(m, torch.zeros(2, 3, 64, 64), labels, torch.Generator().manual_seed(1))
        m.cls_xt.weight.mul_(-1.0)  # a branch whose class weights flip sign: its map is the negated one
        flipped = branch_cosines(m, torch.zeros(2, 3, 64, 64), labels, torch.Generator().manual_seed(1))
    assert same == pytest.approx([1.0, 1.0], abs=1e-5)
    assert flipped == pytest.approx([-1.0, -1.0], abs=1e-5)


@pytest.mark.parametrize("share_extractor", [False, True])
def test_twopath_maps_hold_the_cam_identities_of_both_paths(share_extractor):
    """GAP of each path's CAM plus its bias gives that path's logits; the deployed map is the
    inference model's CAM, and the mask rows are the attention before and after its sigmoid."""
    import torch

    from benchmarks.method_maps import twopath_maps
    from wsol_edge.methods.twopath import TwoPath
    from wsol_edge.models import create_backbone

    torch.manual_seed(0)
    net = TwoPath(create_backbone("efficientnet_lite0", pretrained=False, output_stride=16), 4, channels=16,
                  share_extractor=share_extractor)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    for m in net.modules():  # BatchNorm statistics of this batch, so the maps are O(1), not ~1e-10
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        net.paths(x)
    net.eval()
    with torch.no_grad():
        logits, maps = twopath_maps(net, x, y)
        fp = net.extract_perception(net.backbone(x))
        _, logits_att, f_att, _, mask = net.paths(x)
        inference = net.inference_model()
        torch.testing.assert_close(logits, inference(x)[0])
        torch.testing.assert_close(maps["attention_cam"], inference.cams(f_att, y))
    att_bias = net.att_classifier.bias[y]
    torch.testing.assert_close(maps["attention_cam"].mean((1, 2)) + att_bias, logits_att[torch.arange(2), y])
    torch.testing.assert_close(maps["perception_cam"].mean((1, 2)) + net.classifier.bias[y], logits[torch.arange(2), y])
    torch.testing.assert_close(torch.sigmoid(maps["attention_mask"]), maps["attention_mask_sigmoid"])
    torch.testing.assert_close(maps["attention_mask_sigmoid"], mask[:, 0])
    assert maps["perception_cam"].abs().mean() > 0.1
    unweighted_logits = net.classifier(fp.mean((2, 3)))
    torch.testing.assert_close(maps["perception_cam_unweighted"].mean((1, 2)) + net.classifier.bias[y],
                               unweighted_logits[torch.arange(2), y])


def test_sat_maps_hold_the_forward_and_the_cam_identity():
    """The deployed SAT map is the forward's M (the mean of the block masks); the class map's GAP
    gives the logits; the coupled map is zero wherever the class map is negative."""
    import torch

    from benchmarks.method_maps import sat_maps
    from wsol_edge.methods.sat import SAT
    from wsol_edge.models import create_backbone

    torch.manual_seed(0)
    net = SAT(create_backbone("efficientnet_lite0", pretrained=False, output_stride=16), 4, dim=16, heads=2,
              depth=3, sat_depth=2, grid=4).eval()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([1, 3])
    with torch.no_grad():
        logits, maps = sat_maps(net, x, y)
        fwd_logits, loc = net(x)
        _, class_maps, masks = net.maps(x)
    assert masks.shape == (2, 2, 1, 4, 4)
    torch.testing.assert_close(logits, fwd_logits)
    torch.testing.assert_close(maps["spatial_token_mask"], loc[:, 0])
    torch.testing.assert_close(maps["spatial_token_mask"], (masks[0, :, 0] + masks[1, :, 0]) / 2)
    torch.testing.assert_close(maps["last_block_mask"], masks[1, :, 0])
    torch.testing.assert_close(maps["class_map"].mean((1, 2)), logits[torch.arange(2), y])
    assert maps["class_map"].abs().mean() > 1e-3
    negative = maps["class_map"] < 0
    assert negative.any() and (maps["mask_times_class_map"][negative] == 0).all()
    positive = ~negative
    torch.testing.assert_close(maps["mask_times_class_map"][positive],
                               (maps["spatial_token_mask"] * maps["class_map"])[positive])


def test_kernel_benchmark_cpu_reference_records(tmp_path):
    from benchmarks.cam_cases import reference_boxes
    from benchmarks.kernels import cpu_cam_box, cpu_cams, inputs
    from benchmarks.kernels import main as kernels_main

    out = tmp_path / "k.json"
    assert kernels_main(["--cpu-only", "--batches", "1", "3", "--sizes", "64", "--cpu-repeats", "2",
                         "--output", str(out)]) == 0
    recs = json.loads(out.read_text())["records"]
    assert sorted((r["workload"], r["batch"]) for r in recs) == [("box_100", 1), ("box_100", 3), ("cam_box", 1),
                                                                 ("cam_box", 3)]
    for r in recs:
        assert r["kind"] == "speed" and r["backend"] == "cpu_reference" and r["input_size"] == 64
        assert r["us_per_image"] == pytest.approx(r["latency_ms"]["median"] * 1e3 / r["batch"])
        assert r["machine"]["opencv_threads"] >= 1 and r["latency_ms"]["repeats"] == 2
    x = inputs(3, 64)
    cams = cpu_cams(x)  # the CAM the timed reference computes is the classifier row of each image's class
    assert cams.shape == (3, 4, 4)
    assert np.allclose(cams[1], np.tensordot(x["weights"][x["class_ids"][1]], x["features"][1], 1), atol=1e-4)
    assert np.array_equal(cpu_cam_box(x, 64), reference_boxes(cams, [x["tau"]], 64))


def test_kernel_benchmark_without_a_usable_gpu_says_so_in_one_line(monkeypatch, tmp_path):
    import wsol_edge.kernels.loader as loader
    from benchmarks.kernels import main as kernels_main

    def no_gpu(*_):
        raise RuntimeError("CUDA error cudaErrorNoDevice")

    monkeypatch.setattr(loader, "BoxKernels", no_gpu)
    with pytest.raises(SystemExit, match=r"^error: no usable CUDA GPU \(CUDA error cudaErrorNoDevice\); use --cpu-only"):
        kernels_main(["--output", str(tmp_path / "k.json")])
    assert not (tmp_path / "k.json").exists()


def test_probe_commands_turn_a_missing_model_into_one_line(tmp_path, capsys):
    from benchmarks.cli import exit_with_one_line_errors
    from benchmarks.rule_difference import main as rule_main
    from benchmarks.soak import main as soak_main

    missing = str(tmp_path / "missing.onnx")
    for main in (lambda: rule_main(["--model", missing, "--data-root", str(tmp_path), "--output", str(tmp_path / "r")]),
                 lambda: soak_main(["--model", missing, "--images", str(REPO / "wsol_edge/samples/images"),
                                    "--output", str(tmp_path / "s")])):
        with pytest.raises(SystemExit) as exc:
            exit_with_one_line_errors(main)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: model file {missing} not found"]


def test_soak_runs_long_enough_to_measure_growth_or_says_so(tmp_path, capsys, tiny_onnx):
    from benchmarks.soak import main as soak_main

    images = str(REPO / "wsol_edge/samples/images")
    with pytest.raises(SystemExit) as exc:  # no sample after the warm-up: was a NaN growth reported as a leak
        soak_main(["--model", str(tiny_onnx), "--images", images, "--frames", "200", "--output", str(tmp_path / "s")])
    assert exc.value.code == 2 and "fewer than two memory samples after the warm-up" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    assert soak_main(["--model", str(tiny_onnx), "--images", images, "--frames", "60", "--sample-every", "20",
                      "--batch", "4", "--max-growth-mb", "200", "--output", str(tmp_path / "s.json")]) == 0
    record = json.loads((tmp_path / "s.json").read_text())
    assert record["flat"] and record["frames"] == 60 and [s["frames"] for s in record["rss_samples"]] == [20, 40, 60]


def test_speed_model_specs_pick_the_gpu_variants():
    from benchmarks.speed import parse_model_spec

    assert parse_model_spec("runs/m.pt") == ("runs/m.pt", {})
    assert parse_model_spec("runs/m.pt@cuda") == ("runs/m.pt", {"device": "cuda"})
    assert parse_model_spec("runs/m.pt@cuda-fp16") == ("runs/m.pt", {"device": "cuda", "half": True})
    assert parse_model_spec("a@b/m.onnx@cuda") == ("a@b/m.onnx", {"providers": ["cuda", "cpu"]})
    assert parse_model_spec("m.onnx") == ("m.onnx", {})
    assert parse_model_spec("runs/v@2/m.pt") == ("runs/v@2/m.pt", {})
    for bad, why in (("m.pt@gpu", "unknown device"), ("m.onnx@cuda-fp16", "export an FP16 model"),
                     ("m.engine@cuda", "applies to .pt and .onnx")):
        with pytest.raises(ValueError, match=why):
            parse_model_spec(bad)


def test_speed_on_a_gpu_this_machine_lacks_is_one_line(tiny_onnx, tmp_path, capsys):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine's ONNX Runtime has CUDA")
    rc = bench_main(["speed", "--models", f"{tiny_onnx}@cuda", "--images", str(REPO / "wsol_edge/samples/images"),
                     "--num-images", "2", "--batch", "1", "--output", str(tmp_path / "s.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ONNX Runtime here lacks CUDAExecutionProvider")
    assert not (tmp_path / "s.json").exists()


def test_ratios_take_the_reference_on_its_own_device():
    from benchmarks.speed import ratios_to_reference

    recs = [{"backend": "pytorch", "precision": "fp32", "device": "cuda", "batch": 1, "images_per_s": 100.0},
            {"backend": "pytorch", "precision": "fp32", "device": "cpu", "batch": 1, "images_per_s": 10.0},
            {"backend": "onnxruntime", "precision": "fp32", "device": "cpu", "batch": 1, "images_per_s": 30.0}]
    ratios = {(r["backend"], r["device"]): r["ratio"] for r in ratios_to_reference(recs)}
    assert ratios == {("pytorch", "cuda"): 10.0, ("onnxruntime", "cpu"): 3.0}
    gpu = ratios_to_reference(recs, ("pytorch", "fp32", "cuda"))
    assert {(r["backend"], r["device"]): r["ratio"] for r in gpu} == {("pytorch", "cpu"): 0.1, ("onnxruntime", "cpu"): 0.3}
    assert gpu[0]["over"] == "pytorch fp32 cuda"


def test_cupyx_baseline_rule_matches_the_cpu_reference_with_numpy_and_scipy():
    from scipy import ndimage

    from benchmarks.cam_cases import adversarial_cams
    from benchmarks.kernels import label_boxes
    from wsol_edge.postprocess import cam_to_scoremap, largest_component_box, quantize_scoremap

    rng = np.random.default_rng(0)
    maps = [cam_to_scoremap(rng.normal(size=(7, 7)), 64) for _ in range(12)]
    maps += [cam_to_scoremap(c, 64) for _, c in adversarial_cams(64)]
    u8 = np.stack([quantize_scoremap(m) for m in maps])
    for tau in (0.0, 0.25, 0.6, 0.99):
        got = label_boxes(u8, tau, np, ndimage.label, np.maximum.at, np.minimum.at)
        want = np.stack([largest_component_box(m, tau) for m in maps])
        assert np.array_equal(got, want), tau


def test_rule_difference_record_on_synthetic_images(tiny_onnx, tmp_path):
    from benchmarks.rule_difference import main as rule_main

    out = tmp_path / "r.json"
    assert rule_main(["--model", str(tiny_onnx), "--dataset", "synthetic", "--data-root", str(tmp_path),
                      "--threshold-step", "0.25", "--output", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["num_images"] == 64 and rec["model_threshold"] == 0.3  # synthetic default: 64 images
    assert rec["ivr_percentile"] is None  # the fixture serves min-max maps
    assert list(rec["boxes_differ_percent_by_threshold"]) == ["0.00", "0.25", "0.50", "0.75"]
    ipp = rec["ipp_vs_opencv_resize_boxes_differ_percent"]
    for rule in ("wsoleval", "most_pixels"):
        by_tau = list(ipp[rule]["by_threshold"].values())
        assert len(by_tau) == 4 and all(0 <= v <= 100 for v in by_tau)
        assert ipp[rule]["all_thresholds"] == pytest.approx(sum(by_tau) / 4)


HEADROOM_IOUS = np.array([
    [0.6, 0.6, 0.2],   # hit at the global threshold; its own best is the first 0.6
    [0.2, 0.7, 0.4],   # hit
    [0.1, 0.3, 0.55],  # missed, a higher threshold would hit: the global box is too large
    [0.6, 0.3, 0.1],   # missed, a lower threshold would hit: too small
    [0.1, 0.2, 0.3],   # no threshold reaches IoU 0.5
    [0.2, 0.9, 0.1],   # hit
])


def test_threshold_headroom_figures_match_a_hand_count():
    from benchmarks.threshold_headroom import headroom

    r = headroom(HEADROOM_IOUS, np.array([0.1, 0.2, 0.3]))
    assert r["global_threshold"] == 0.2  # 3 hits at 0.2, 2 at 0.1, 1 at 0.3
    assert r["gt_known_loc_global_threshold"] == pytest.approx(50.0)
    assert r["gt_known_loc_own_threshold"] == pytest.approx(500 / 6)
    assert r["missed_but_reachable"] == pytest.approx({"box_too_large": 100 / 6, "box_too_small": 100 / 6})
    assert r["unreachable"] == pytest.approx(100 / 6)
    assert r["mean_iou_global_threshold"] == pytest.approx(3.0 / 6)
    assert r["mean_iou_own_threshold"] == pytest.approx(3.65 / 6)
    assert r["own_threshold_quantiles"]["50"] == pytest.approx(0.2)  # own: .1 .2 .3 .1 .3 .2
    with pytest.raises(ValueError, match="does not match"):
        headroom(HEADROOM_IOUS, np.array([0.1, 0.2]))


def test_threshold_headroom_by_object_size_matches_a_hand_count():
    from benchmarks.threshold_headroom import average_ranks, by_object_size, spearman

    assert average_ranks(np.array([0.3, 0.1, 0.3, 0.2])).tolist() == [2.5, 0.0, 2.5, 1.0]  # the tie shares 2 and 3
    assert spearman(np.array([1, 2, 3]), np.array([9, 7, 5])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 1, 1]), np.array([1, 2, 3])) is None
    # the six images of HEADROOM_IOUS, thirds by size: {4, 2} small, {0, 5} middle, {1, 3} large
    area = np.array([0.3, 0.5, 0.2, 0.6, 0.1, 0.4])
    r = by_object_size(HEADROOM_IOUS, np.array([0.1, 0.2, 0.3]), area)
    small, middle, large = r["thirds_by_box_area"]
    assert [t["num_images"] for t in (small, middle, large)] == [2, 2, 2]
    assert small["box_area_range"] == [0.1, 0.2] and large["box_area_range"] == [0.5, 0.6]
    # global threshold 0.2 (of all six). Small: image 4 out of reach, image 2 wants a higher one.
    assert small["gt_known_loc_global_threshold"] == 0 and small["gt_known_loc_own_threshold"] == 50
    assert small["missed_but_reachable"] == {"box_too_large": 50.0, "box_too_small": 0.0}
    assert small["unreachable"] == 50 and small["own_threshold_median"] == pytest.approx(0.3)
    assert middle["gt_known_loc_global_threshold"] == 100 and middle["own_threshold_median"] == pytest.approx(0.15)
    # large: image 1 hits, image 3 wants a lower threshold
    assert large["missed_but_reachable"] == {"box_too_large": 0.0, "box_too_small": 50.0}
    # own thresholds of the five reachable images: .1 .2 .3 .1 .2 against areas .3 .5 .2 .6 .4
    assert r["spearman_own_threshold_vs_box_area"] == pytest.approx(
        spearman(np.array([0.1, 0.2, 0.3, 0.1, 0.2]), np.array([0.3, 0.5, 0.2, 0.6, 0.4])))
    assert r["spearman_own_threshold_vs_box_area"] < 0
    with pytest.raises(ValueError, match="5 object sizes for 6 images"):
        by_object_size(HEADROOM_IOUS, np.array([0.1, 0.2, 0.3]), area[:5])
    with pytest.raises(ValueError, match="at least 3 scored images, not 2"):
        by_object_size(HEADROOM_IOUS[:2], np.array([0.1, 0.2, 0.3]), area[:2])


def test_threshold_headroom_box_areas_are_the_largest_box_share_of_its_image():
    from benchmarks.threshold_headroom import box_areas
    from wsol_edge.data import open_dataset

    samples = open_dataset("synthetic", None, "test")  # box_areas opens it with the same defaults
    ids = [s.image_id for s in samples][::-7]
    areas = box_areas("synthetic", None, "test", ids)
    for image_id, a in zip(ids, areas):
        s = next(x for x in samples if x.image_id == image_id)
        h, w = s.load().shape[:2]
        b = s.boxes
        assert a == pytest.approx(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).max() / (w * h))
    with pytest.raises(ValueError, match="not in"):
        box_areas("synthetic", None, "test", ["nope"])


def test_threshold_headroom_command_checks_the_evaluation_it_reads(tmp_path):
    import subprocess
    import sys

    from benchmarks import threshold_headroom
    from wsol_edge.evaluation import write_per_image

    tables = {"cam_thresholds": np.array([0.1, 0.2, 0.3]), "ious_box": HEADROOM_IOUS}
    ids = [str(i) for i in range(len(HEADROOM_IOUS))]
    good, bad = tmp_path / "cam" / "per_image.npz", tmp_path / "bad.npz"
    write_per_image(good, tables, ids, {"method": "cam", "metrics": {"gt_known_loc": 50.0}})
    write_per_image(bad, tables, ids, {"method": "cam", "metrics": {"gt_known_loc": 60.0}})
    out = tmp_path / "h.json"
    assert threshold_headroom.main([str(good), "--output", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "threshold_headroom" and rec["models"][0]["name"] == "cam"
    # provenance the per-image file does not hold is null, not invented
    assert rec["models"][0]["method"] == "cam" and rec["models"][0]["weights_sha256"] is None
    assert rec["models"][0]["gt_known_loc_own_threshold"] == pytest.approx(500 / 6)
    assert "| cam | 0.20 | 50.00 | 83.33 |" in rec["table_markdown"]
    # An evaluation whose reported GT-known Loc its own tables do not give back: one error line, no file.
    res = subprocess.run([sys.executable, "-m", "benchmarks.threshold_headroom", str(bad), "--output",
                          str(tmp_path / "never.json")], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and res.stderr.startswith("error:") and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never.json").exists()


def _methods_row(method, seed, v2, epochs=12):
    schedule = {"config": "configs/cub50_cam_lite0.yaml", "epochs": epochs}
    if seed is not None:
        schedule["seed"] = seed
    return {"kind": "accuracy", "method": method, "variant": method, "dataset": "cub50", "split": "test",
            "schedule": schedule, "metrics": {"top1_cls": 70.0, "top1_loc": 50.0, "gt_known_loc": v2 + 8, "max_box_acc_v2": v2}}


def test_seed_spread_means_sds_and_margins_by_hand(tmp_path):
    import subprocess
    import sys

    from benchmarks import seed_spread

    files = []
    # seed 0 named only by the config (rows from before --seed existed), then seeds 1 and 2
    for seed, cam, has in ((None, 64.0, 64.5), (1, 65.0, 66.0), (2, 63.0, 63.0)):
        f = tmp_path / f"s{seed}.json"
        f.write_text(json.dumps({"records": [_methods_row("cam", seed, cam), _methods_row("has", seed, has)]}))
        files.append(str(f))
    out = tmp_path / "spread.json"
    assert seed_spread.main([*files, "--output", str(out)]) == 0
    rec = json.loads(out.read_text())
    has = next(r for r in rec["methods"] if r["name"] == "has")
    v2 = has["metrics"]["max_box_acc_v2"]
    assert has["seeds"] == [0, 1, 2]  # the config's seed is 0
    assert v2["mean"] == pytest.approx(193.5 / 3) and v2["std"] == pytest.approx(np.std([64.5, 66.0, 63.0], ddof=1))
    assert v2["minus_cam_per_seed"] == pytest.approx({"0": 0.5, "1": 1.0, "2": 0.0})
    assert v2["minus_cam_mean"] == pytest.approx(0.5)
    assert "| has | 0, 1, 2 |" in rec["table_markdown"] and "+0.50 / +1.00 / +0.00 | +0.50 |" in rec["table_markdown"]
    # Rows of another schedule cannot be mixed in: one error line, no file.
    other = tmp_path / "8ep.json"
    other.write_text(json.dumps([_methods_row("cam", 3, 64.0, epochs=8)]))
    res = subprocess.run([sys.executable, "-m", "benchmarks.seed_spread", *files, str(other), "--output",
                          str(tmp_path / "never.json")], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2 and res.stderr.startswith("error:") and "schedule" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "never.json").exists()
    with pytest.raises(ValueError, match="second cam row"):
        seed_spread.rows_by_seed([files[1], files[1]])
    # --only reads the named rows and the reference: a file that repeats other rows can join
    extra = tmp_path / "s1_more.json"
    extra.write_text(json.dumps([_methods_row("has", 1, 66.0), _methods_row("icl", 1, 67.0)]))
    out2 = tmp_path / "spread_icl.json"
    assert seed_spread.main([*files, str(extra), "--only", "icl", "--output", str(out2)]) == 0
    rec2 = json.loads(out2.read_text())
    assert [r["name"] for r in rec2["methods"]] == ["cam", "icl"]
    assert rec2["methods"][1]["metrics"]["max_box_acc_v2"]["minus_cam_per_seed"] == pytest.approx({"1": 2.0})
    with pytest.raises(ValueError, match="no row named nope"):
        seed_spread.rows_by_seed(files, {"cam", "nope"})


def test_seed_spread_reads_named_evaluate_rows_by_their_train_command_seed(tmp_path):
    """Rows of wsol_edge.evaluate carry no schedule and all share their method's name: named on the
    command line, two configurations of one method are compared seed by seed."""
    from benchmarks import seed_spread

    def evaluate_row(seed, gt_known, v2, split="test"):
        cmd = f"python -m wsol_edge.train --method icl --epochs 12 --seed {seed} --out runs/x"
        return {"kind": "accuracy", "method": "icl", "variant": None, "dataset": "cub50", "split": split,
                "protocol": "wsoleval", "train_command": cmd,
                "metrics": {"top1_cls": 70.0, "top1_loc": 60.0, "gt_known_loc": gt_known, "max_box_acc_v2": v2}}

    files = []
    for name, values in (("at224", ((0, 84.0, 72.0), (1, 85.0, 71.0), (2, 84.5, 70.0))),
                         ("at288", ((0, 86.0, 74.0), (1, 84.0, 73.0), (2, 85.5, 72.5)))):
        for seed, gt_known, v2 in values:
            f = tmp_path / f"{name}_{seed}.json"
            f.write_text(json.dumps(evaluate_row(seed, gt_known, v2)))
            files.append(f"{name}={f}")
    out = tmp_path / "spread.json"
    assert seed_spread.main([*files, "--reference", "at224", "--output", str(out)]) == 0
    rec = json.loads(out.read_text())
    at288 = next(r for r in rec["methods"] if r["name"] == "at288")
    gt = at288["metrics"]["gt_known_loc"]
    assert at288["seeds"] == [0, 1, 2] and gt["mean"] == pytest.approx(255.5 / 3)
    assert gt["minus_at224_per_seed"] == pytest.approx({"0": 2.0, "1": -1.0, "2": 1.0})
    assert gt["minus_at224_mean"] == pytest.approx(2.0 / 3)
    assert at288["metrics"]["max_box_acc_v2"]["minus_at224_mean"] == pytest.approx(6.5 / 3)
    assert "+2.00 / -1.00 / +1.00 | +0.67 |" in rec["table_markdown"]
    # Named rows sit beside a methods table's rows (which carry a schedule) of the same test set.
    table = tmp_path / "table.json"
    table.write_text(json.dumps([{**_methods_row("ref", seed, 70.0 + seed), "protocol": "wsoleval"} for seed in (0, 1, 2)]))
    mixed = seed_spread.spread(seed_spread.rows_by_seed([str(table), *files[3:]], {"ref", "at288"}), "ref")
    v2_margins = next(r for r in mixed if r["name"] == "at288")["metrics"]["max_box_acc_v2"]["minus_ref_per_seed"]
    assert v2_margins == pytest.approx({"0": 4.0, "1": 2.0, "2": 0.5})
    # Unnamed, every row is "icl": the second one of a seed is refused.
    with pytest.raises(ValueError, match="second icl row for seed 0"):
        seed_spread.rows_by_seed([f.partition("=")[2] for f in files])
    # A row scored on another split cannot be averaged in.
    train_row = tmp_path / "train.json"
    train_row.write_text(json.dumps(evaluate_row(0, 88.0, 76.0, split="train")))
    with pytest.raises(ValueError, match="dataset/split/protocol"):
        seed_spread.rows_by_seed([*files, f"at288train={train_row}"])
    # A named file must hold one row; a row whose command names no seed is refused.
    two = tmp_path / "two.json"
    two.write_text(json.dumps([evaluate_row(0, 1.0, 1.0), evaluate_row(1, 1.0, 1.0)]))
    with pytest.raises(ValueError, match="2 accuracy rows"):
        seed_spread.rows_by_seed([f"x={two}"])
    with pytest.raises(ValueError, match="an empty NAME"):
        seed_spread.rows_by_seed([f"={files[0].partition('=')[2]}"])
    no_seed = tmp_path / "no_seed.json"
    no_seed.write_text(json.dumps({**evaluate_row(0, 1.0, 1.0), "train_command": "python -m wsol_edge.train"}))
    with pytest.raises(ValueError, match="names no seed"):
        seed_spread.rows_by_seed([f"x={no_seed}"])


def test_seed_spread_names_a_file_that_is_not_json(tmp_path):
    from benchmarks import seed_spread

    bad = tmp_path / "bad.json"
    bad.write_text("not json")
    with pytest.raises(ValueError, match="bad.json: not a JSON result file"):
        seed_spread.rows_by_seed([str(bad)])


def test_method_maps_per_image_tables_match_evaluate_for_the_deployed_map(tmp_path):
    """--per-image writes one table per candidate map; the deployed map's equals wsol_edge.evaluate's,
    so the bootstrap pairs a candidate map with any evaluated model."""
    from test_data import make_cub

    from benchmarks import method_maps
    from wsol_edge import evaluate, train
    from wsol_edge.evaluation import read_per_image

    data, run = tmp_path / "cub", tmp_path / "run"
    make_cub(data, n=8)
    assert train.main(["--dataset", "cub", "--data-root", str(data), "--method", "twopath", "--twopath-channels", "8",
                       "--epochs", "1", "--batch-size", "4", "--input-size", "64", "--backbone", "efficientnet_lite0",
                       "--no-pretrained", "--threshold-images", "0", "--out", str(run), "--no-progress"]) == 0
    ckpt = run / "checkpoint.pt"
    assert method_maps.main(["--checkpoints", str(ckpt), "--data-root", str(data), "--per-image",
                             "--output", str(tmp_path / "maps.json")]) == 0
    records = json.loads((tmp_path / "maps.json").read_text())["records"]
    assert [r["variant"] for r in records] == [f"map={n}" for n in ("attention_cam", "attention_mask",
                                                                     "attention_mask_sigmoid", "perception_cam",
                                                                     "perception_cam_unweighted")]
    for r in records:
        tables, ids, info = read_per_image(r["per_image_file"])
        assert len(ids) == 4 and info["metrics"] == r["metrics"] and info["variant"] == r["variant"]
    assert evaluate.main(["--checkpoint", str(ckpt), "--dataset", "cub", "--data-root", str(data), "--split", "test",
                          "--no-progress", "--per-image", str(tmp_path / "eval.npz")]) == 0
    with pytest.raises(ValueError, match="different folders"):  # their tables would overwrite each other
        method_maps.main(["--checkpoints", str(ckpt), str(ckpt), "--data-root", str(data), "--per-image",
                          "--output", str(tmp_path / "never.json")])
    assert not (tmp_path / "never.json").exists()
    deployed, deployed_ids, _ = read_per_image(run / "maps" / "attention_cam.npz")
    evaluated, evaluated_ids, _ = read_per_image(tmp_path / "eval.npz")
    assert deployed_ids == evaluated_ids and deployed.keys() == evaluated.keys()
    for key in deployed:
        np.testing.assert_array_equal(deployed[key], evaluated[key])


def test_box_offsets_edges_and_centre():
    from benchmarks.box_offsets import edge_offsets

    boxes = np.array([[12, 20, 110, 90], [0, 0, 50, 50]])
    gt = np.array([[10, 25, 100, 100], [2, 0, 50, 40]])
    # differences (2, -5, 10, -10) and (-2, 0, 0, 10); centres x (6, -1), y (-7.5, 5)
    assert edge_offsets(boxes, gt) == {"x0": 0.0, "y0": -2.5, "x1": 5.0, "y1": 0.0, "centre_x": 2.5, "centre_y": -1.25}


def test_box_offsets_bad_input_is_one_line(tmp_path, capsys):
    from benchmarks.box_offsets import main

    assert main(["--checkpoints", str(tmp_path / "none.pt"), "--data-root", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and not (tmp_path / "o.json").exists()


def test_kernel_checks_reads_pytest_junit_and_the_sanitizer_log(tmp_path):
    from benchmarks.kernel_checks import parity_from_junit, sanitizer_from_log

    junit = tmp_path / "p.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_kernels" name="test_a" time="1.5"/>'
        '<testcase classname="tests.test_kernels" name="test_b" time="0.1"><failure message="3 boxes differ">x</failure></testcase>'
        '<testcase classname="tests.test_kernels" name="test_c" time="0"><skipped message="no CUDA GPU"/></testcase>'
        '</testsuite></testsuites>')
    parity = parity_from_junit(str(junit))
    assert (parity["passed"], parity["failed"], parity["skipped"], parity["error"]) == (1, 1, 1, 0)
    assert parity["tests"][1] == {"id": "tests.test_kernels::test_b", "outcome": "failed", "seconds": 0.1,
                                  "message": "3 boxes differ"}
    log = ("=== compute-sanitizer --tool memcheck\n========= COMPUTE-SANITIZER\n4 passed, 18 deselected in 3.5s\n"
           "========= LEAK SUMMARY: 0 bytes leaked in 0 allocations\n========= ERROR SUMMARY: 0 errors\n"
           "compute-sanitizer memcheck exit 0\n=== compute-sanitizer --tool racecheck\n"
           "========= RACECHECK SUMMARY: 2 hazards displayed (2 errors, 0 warnings)\ncompute-sanitizer racecheck exit 9\n")
    tools = sanitizer_from_log(log)
    assert tools["memcheck"] == {"exit": 0, "passed_line": "4 passed, 18 deselected in 3.5s",
                                 "summary": ["LEAK SUMMARY: 0 bytes leaked in 0 allocations", "ERROR SUMMARY: 0 errors"]}
    assert tools["racecheck"]["exit"] == 9 and tools["racecheck"]["passed_line"] is None
    (tmp_path / "bad.xml").write_text("<testsuites")
    with pytest.raises(ValueError, match="not pytest's JUnit XML"):
        parity_from_junit(str(tmp_path / "bad.xml"))


def test_kernel_rescore_recomputes_speedups_against_another_cpu_run(tmp_path):
    import json

    from benchmarks.kernels import main

    cpu = {"records": [{"workload": w, "input_size": 224, "batch": 64, "us_per_image": us, "machine": {"cores": 2},
                        "run_id": "cpu2", "commit": "abc"} for w, us in (("cam_box", 350.0), ("box_100", 20000.0))]}
    gpu = {"records": [
        {"workload": "cam_box_graph", "input_size": 224, "batch": 64, "backend": "cuda_kernels", "us_per_image": 3.5,
         "speedup_over_cpu_reference": 200.0, "commit": "gpu1"},
        {"workload": "box_100", "input_size": 224, "batch": 64, "backend": "cuda_kernels", "us_per_image": 100.0},
        {"workload": "cupyx_label_box", "input_size": 224, "batch": 64, "backend": "cupyx.scipy.ndimage.label",
         "us_per_image": 70.0}]}
    (tmp_path / "cpu.json").write_text(json.dumps(cpu))
    (tmp_path / "gpu.json").write_text(json.dumps(gpu))
    assert main(["--rescore", str(tmp_path / "gpu.json"), "--cpu-reference", str(tmp_path / "cpu.json"),
                 "--output", str(tmp_path / "out.json")]) == 0
    out = json.loads((tmp_path / "out.json").read_text())["records"]
    assert out[0]["speedup_over_cpu_reference"] == 100.0 and out[0]["cpu_reference"]["run_id"] == "cpu2"
    assert out[0]["commit"] == "gpu1"  # the GPU measurement keeps its own provenance
    assert out[1]["speedup_over_cpu_reference"] == 200.0
    assert "speedup_over_cpu_reference" not in out[2]
    (tmp_path / "other.json").write_text(json.dumps({"records": [{"kind": "speed", "batch": 1}]}))
    for gpu_file, cpu_file in (("other.json", "cpu.json"), ("gpu.json", "other.json")):
        with pytest.raises(ValueError, match="not a kernel benchmark result"):
            main(["--rescore", str(tmp_path / gpu_file), "--cpu-reference", str(tmp_path / cpu_file),
                  "--output", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


def test_gpu_rows_split_inference_into_copies_and_model_and_reports_keep_one_set_of_columns():
    from benchmarks.speed import new_samples, sample, summarize

    class Backend:
        name, precision, meta = "pytorch", "fp32", {"input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3,
                                                   "cam_threshold": 0.5}

        def __init__(self, device):
            self.device, self.staged_calls = device, 0

        def infer(self, x):
            return {"cams": np.random.default_rng(0).random((len(x), 4, 4)).astype(np.float32)}

        def infer_staged(self, x):
            self.staged_calls += 1
            return self.infer(x), {"h2d": 0.001, "inference": 0.002, "d2h": 0.0005}

    blob = (REPO / "wsol_edge/samples/images").glob("*.jpg").__next__().read_bytes()
    records = []
    for device in ("cuda", "cpu"):
        backend, samples = Backend(device), new_samples(2)
        sample(backend, [blob], samples, warmup=1, repeats=3)
        assert backend.staged_calls == (4 if device == "cuda" else 0)  # only GPU rows pay for the synchronisation
        res = summarize(backend, samples)
        records.append({"kind": "speed", "backend": res.backend, "precision": res.precision, "device": device,
                        "batch": 2, "images_per_s": res.images_per_s, "latency_ms": res.latency_ms,
                        "stages_ms": res.stages_ms})
    assert list(records[0]["stages_ms"]) == ["decode", "preprocess", "h2d", "inference", "d2h", "postprocess"]
    assert records[0]["stages_ms"]["h2d"] == pytest.approx(0.5) and records[0]["stages_ms"]["d2h"] == pytest.approx(0.25)
    assert list(records[1]["stages_ms"]) == ["decode", "preprocess", "inference", "postprocess"]
    rows = speed_rows(records)
    assert list(rows[0]) == list(rows[1]) and rows[1]["h2d_ms"] == "" and rows[0]["h2d_ms"] == 0.5


def test_wtl_inference_gap_reports_the_classifiers_accuracy_with_and_without_the_attention_terms(tmp_path):
    """With delta = alpha = 0 (a run at learning rate 0) the features classifier X trained on and the
    ones the served graph computes are the same, so both hidden-view accuracies agree; the whole-image
    figure is the served model's top-1 on the same images."""
    import torch
    from test_data import make_cub

    from benchmarks import wtl_inference_gap
    from wsol_edge import train
    from wsol_edge.checkpoint import load_checkpoint, save_checkpoint
    from wsol_edge.data import open_dataset
    from wsol_edge.data.torch_dataset import TrainDataset
    from wsol_edge.modelio import load_wrapper

    data, run = tmp_path / "cub", tmp_path / "run"
    make_cub(data, n=8)
    assert train.main(["--dataset", "cub", "--data-root", str(data), "--method", "wtl", "--wtl-aggregation",
                       "linear_identity", "--epochs", "1", "--batch-size", "4", "--input-size", "64", "--resize", "72",
                       "--lr", "0", "--no-pretrained", "--threshold-images", "0", "--out", str(run),
                       "--no-progress"]) == 0
    out, gated = tmp_path / "gap.json", tmp_path / "gated.pt"
    assert wtl_inference_gap.main(["--checkpoints", str(run / "checkpoint.pt"), "--data-root", str(data),
                                   "--num-images", "4", "--output", str(out)]) == 0
    row = json.loads(out.read_text())["checkpoints"][0]
    assert row["delta_x"] == 0 and row["alpha_x"] == 0 and row["alpha_xt"] == 0 and row["caam_delta_y_rms"] == 0
    # each branch's SSAM gate is read from its own branch
    state = load_checkpoint(run / "checkpoint.pt")
    state["model"]["ssam_x.alpha"], state["model"]["ssam_xt.alpha"] = torch.tensor(0.25), torch.tensor(-0.5)
    save_checkpoint(gated, {k: v for k, v in state.items() if k != "format"})
    assert wtl_inference_gap.main(["--checkpoints", str(gated), "--data-root", str(data), "--num-images", "4",
                                   "--output", str(tmp_path / "gated.json")]) == 0
    gated_row = json.loads((tmp_path / "gated.json").read_text())["checkpoints"][0]
    assert (gated_row["alpha_x"], gated_row["alpha_xt"]) == (0.25, -0.5)
    assert row["hidden_view_top1_trained_features"] == row["hidden_view_top1_served_features"]
    model, _, _ = load_wrapper(run / "checkpoint.pt")
    model.eval()
    train_data = TrainDataset(open_dataset("cub", str(data), "train"), model.mean, model.std, 256, 224, 0, False)
    images, labels = zip(*(train_data[i] for i in range(4)))
    with torch.no_grad():
        predicted = model.inference_model()(torch.stack(images))[0].argmax(1)
    assert row["whole_image_top1_served"] == 100.0 * float((predicted == torch.tensor(labels)).float().mean())


def test_centre_prior_mean_map_share_by_hand():
    from benchmarks.centre_prior import MapStatistics

    rng = np.random.default_rng(0)
    maps = rng.random((5, 6, 7))
    stats = MapStatistics()
    for m in maps:
        stats.add(m)
    np.testing.assert_allclose(stats.mean_map(), maps.mean(0))
    within = ((maps - maps.mean(0)) ** 2).sum()
    total = ((maps - maps.mean()) ** 2).sum()
    assert stats.explained_share() == pytest.approx(1 - within / total)
    same, complementary = MapStatistics(), MapStatistics()
    for m in (maps[0], maps[0]):
        same.add(m)
    for m in (maps[0], 1 - maps[0]):  # their mean is 0.5 everywhere: it explains nothing
        complementary.add(m)
    assert same.explained_share() == pytest.approx(1.0)
    assert complementary.explained_share() == pytest.approx(0.0, abs=1e-12)


def test_centre_prior_fixed_map_and_box_prior_by_hand():
    from benchmarks.centre_prior import box_prior, fixed_map_box_acc_v2
    from wsol_edge.data.samples import Sample
    from wsol_edge.metrics.box_accuracy import max_box_acc_v2

    fixed = np.zeros((20, 20), np.float32)
    fixed[4:10, 4:10] = 1.0  # exactly the inclusive box (4,4)-(9,9)
    hit, miss = np.array([[4, 4, 9, 9]]), np.array([[14, 14, 19, 19]])
    res = fixed_map_box_acc_v2(fixed, [hit, miss, hit, hit])
    # the box is found in the three images whose GT it is, at every IoU threshold: 75% each
    assert res["max_box_acc_multi_contour"] == {"30": 75.0, "50": 75.0, "70": 75.0}
    assert res["max_box_acc_v2"] == 75.0
    # searching the map once scores as searching it once per image
    assert res["max_box_acc_v2"] == max_box_acc_v2(np.broadcast_to(fixed, (4, 20, 20)), [hit, miss, hit, hit])
    # two 10x10 images, one box each, in a 20x20 frame: int(x * 20 / 10) maps x to 2x, so the
    # boxes become (0,0)-(8,8) and (4,4)-(18,18), inclusive
    samples = [Sample("a", 0, np.array([[0.0, 0.0, 4.0, 4.0]]), size=(10, 10)),
               Sample("b", 0, np.array([[2.0, 2.0, 9.0, 9.0]]), size=(10, 10))]
    prior = box_prior(samples, 20)
    assert prior[0, 0] == 0.5 and prior[18, 18] == 0.5 and prior[6, 6] == 1.0
    assert prior[19, 19] == 0.0 and prior[3, 18] == 0.0 and prior.sum() == (81 + 225) / 2


def test_centre_prior_scores_a_checkpoint_as_evaluate_does(tmp_path):
    """The model's own MaxBoxAccV2 in the study equals wsol_edge.evaluate's on the same split."""
    from test_data import make_cub

    from benchmarks import centre_prior
    from wsol_edge import evaluate, train

    data, run = tmp_path / "cub", tmp_path / "run"
    make_cub(data, n=8)
    assert train.main(["--dataset", "cub", "--data-root", str(data), "--epochs", "1", "--batch-size", "4",
                       "--input-size", "64", "--backbone", "efficientnet_lite0", "--no-pretrained",
                       "--threshold-images", "0", "--out", str(run), "--no-progress"]) == 0
    ckpt = run / "checkpoint.pt"
    assert centre_prior.main(["--checkpoints", str(ckpt), "--data-root", str(data), "--size", "64",
                              "--output", str(tmp_path / "prior.json")]) == 0
    assert evaluate.main(["--checkpoint", str(ckpt), "--dataset", "cub", "--data-root", str(data), "--split", "test",
                          "--no-progress", "--output", str(tmp_path / "eval.json")]) == 0
    record = json.loads((tmp_path / "prior.json").read_text())
    row = record["checkpoints"][0]
    assert row["max_box_acc_v2"] == json.loads((tmp_path / "eval.json").read_text())["metrics"]["max_box_acc_v2"]
    assert row["num_images"] == 4 and record["data_prior"]["num_images"] == 4
    assert 0.0 <= row["mean_map"]["max_box_acc_v2"] <= 100.0
    with pytest.raises(ValueError, match="trained at 64"):
        centre_prior.main(["--checkpoints", str(ckpt), "--data-root", str(data), "--output", str(tmp_path / "x.json")])
    with pytest.raises(FileNotFoundError, match="none.pt not found"):  # said before any scoring
        centre_prior.main(["--checkpoints", str(ckpt), str(tmp_path / "none.pt"), "--data-root", str(data),
                           "--size", "64", "--output", str(tmp_path / "x.json")])
    assert not (tmp_path / "x.json").exists()


OUTPUT_MARKS = ('add_argument("--output", type=output_file', "mirror_pass import build_parser")  # or its parser's
BENCHMARKS_WITH_OUTPUT = sorted(f.stem for f in (REPO / "benchmarks").glob("*.py")
                                if "def main(" in f.read_text() and any(m in f.read_text() for m in OUTPUT_MARKS))


@pytest.mark.parametrize("module", BENCHMARKS_WITH_OUTPUT)
def test_every_benchmark_refuses_an_unwritable_output_before_any_work(module, tmp_path, capsys):
    """A result that cannot be written is refused at parse time, not after minutes or hours of work."""
    import importlib

    main = importlib.import_module(f"benchmarks.{module}").main
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    sub = ["speed"] if module == "__main__" else []
    for output, why in ((blocker / "r.json", f"output folder {blocker} is not writable ({blocker} is a file)"),
                        (tmp_path, f"{tmp_path} is a folder; give the file to write")):
        with pytest.raises(SystemExit) as exc:
            main([*sub, "--output", str(output)])
        assert exc.value.code == 2
        assert f"argument --output: {why}" in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_every_benchmark_output_is_checked():
    """No result-writing benchmark is left with an unchecked --output (the list above is found by text)."""
    unchecked = [f.name for f in (REPO / "benchmarks").glob("*.py")
                 if 'add_argument("--output",' in f.read_text() and "type=output_file" not in f.read_text()]
    assert not unchecked and len(BENCHMARKS_WITH_OUTPUT) >= 15
