"""Data-parallel training under torchrun (wsol_edge/distributed.py), on the CPU with gloo: two processes."""
import json
import os
import subprocess
import sys

import pytest
import torch

from wsol_edge import distributed
from wsol_edge.checkpoint import load_checkpoint

pytest.importorskip("torchvision")
if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)

SYNTHETIC = ["--dataset", "synthetic", "--synthetic-images", "24", "--synthetic-size", "64", "--batch-size", "4",
             "--input-size", "64", "--resize", "72", "--device", "cpu", "--threads", "1", "--no-progress",
             "--threshold-images", "8"]


def torchrun(args, processes=2):
    # faulthandler: a process that aborts in C++ still prints where its Python threads stood
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                           str(processes), "-m", "wsol_edge.train", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def why(done) -> str:
    """A failed torchrun's own words: the processes' messages come first in its stderr, then the launcher's
    traceback (which alone says no more than 'exitcode -6')."""
    text = done.stderr
    return text if len(text) <= 6000 else f"{text[:4000]}\n[...]\n{text[-2000:]}"


def weights(path):
    return load_checkpoint(path)["model"]


def test_two_processes_train_one_model_and_resume_it_exactly(tmp_path):
    whole = torchrun([*SYNTHETIC, "--epochs", "2", "--method", "icl", "--out", str(tmp_path / "whole")])
    assert whole.returncode == 0, why(whole)
    assert whole.stdout.count("trained 2 epoch(s)") == 1  # process 0 reports, once
    log = json.loads((tmp_path / "whole" / "train_log.json").read_text())
    assert log["processes"] == 2
    assert [h["images"] for h in log["history"]] == [24, 24]  # both processes' shares counted, each image once
    state = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    assert state["train_args"]["processes"] == 2 and state["cam_threshold"] is not None
    assert state["command"].startswith("torchrun --nproc_per_node 2 -m wsol_edge.train --dataset synthetic")
    assert not any(k.startswith(("module.", "inner.")) for k in state["model"])  # a plain checkpoint

    # stopped after the first epoch (3 steps per process), then resumed: the same weights, bit for bit
    first = torchrun([*SYNTHETIC, "--epochs", "2", "--method", "icl", "--max-steps", "3", "--out",
                      str(tmp_path / "resumed")])
    assert first.returncode == 0, why(first)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["epoch"] == 1
    rest = torchrun([*SYNTHETIC, "--epochs", "2", "--method", "icl", "--resume", "--out", str(tmp_path / "resumed")])
    assert rest.returncode == 0, why(rest)
    a, b = weights(tmp_path / "whole" / "checkpoint.pt"), weights(tmp_path / "resumed" / "checkpoint.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_gpu_index_is_refused_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ValueError, match="each process takes the GPU its LOCAL_RANK names"):
        distributed.start("cuda:1")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: a plain run
    assert distributed.start("cpu") == (None, "cpu")


def _check_in_process(rank, world, init_file, results):
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    group = distributed.ProcessGroup(rank, world, rank, "gloo")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    same = distributed.replicas_agree(group, model)
    with torch.no_grad():
        if rank == 1:
            model.bias[0] += 1e-7
    differs = distributed.replicas_agree(group, model)
    merged = distributed.merge_sums(group, {"images": 4, "terms": {f"rank{rank}": 1.0, "shared": 0.5}})
    results.put((rank, same, differs, merged))
    torch.distributed.destroy_process_group()


def test_replica_check_and_sums_across_processes(tmp_path):
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    results = context.Queue()
    procs = [context.Process(target=_check_in_process, args=(r, 2, tmp_path / "init", results)) for r in range(2)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    for rank, same, differs, merged in got:
        assert same is True and differs is False  # a 1e-7 difference in one process's bias is caught by all
        assert merged == {"images": 8, "terms": {"rank0": 1.0, "rank1": 1.0, "shared": 1.0}}
    assert distributed.merge_sums(None, {"images": 4}) == {"images": 4}


@pytest.mark.parametrize("method", ["cam", "has", "wtl", "twopath", "sat"])
def test_every_method_steps_under_two_processes(method, tmp_path):
    # each leaves some parameters out of some steps (find_unused_parameters), and the weights must agree after
    done = torchrun([*SYNTHETIC, "--epochs", "1", "--max-steps", "2", "--threshold-images", "0", "--method", method,
                     "--out", str(tmp_path / method)])
    assert done.returncode == 0, why(done)
    assert load_checkpoint(tmp_path / method / "checkpoint.pt")["train_args"]["method"] == method


def test_float16_mixed_precision_under_two_processes(tmp_path):
    # the loss scale's overflow check sees DDP's averaged gradients, so both processes skip or step together
    done = torchrun([*SYNTHETIC, "--epochs", "1", "--max-steps", "2", "--threshold-images", "0", "--amp", "fp16",
                     "--out", str(tmp_path)])
    assert done.returncode == 0, why(done)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["history"][0]["amp"] == "fp16" and "amp_skipped_steps" in state["history"][0]
    assert state["grad_scaler"] is not None  # (and the weights agreed at the end: train's replica check)
