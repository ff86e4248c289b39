"""Checkpoints: unreadable files give one line that never advises weights_only=False; provenance hashes."""
import fractions

import pytest
import torch

from wsol_edge.checkpoint import FORMAT, load_checkpoint, save_checkpoint


def _truncated(path):
    save_checkpoint(path, {"model": {"w": torch.zeros(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _pickled_object(path):
    torch.save({"format": FORMAT, "extra": fractions.Fraction(1, 3)}, path)


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b"garbage"), "weights-only loader refused it: Unsupported operand"),
    (lambda p: p.write_bytes(b""), "EOFError: empty or truncated file"),
    (_truncated, "failed finding central directory"),
    (_pickled_object, "weights-only loader refused it: Unsupported global: GLOBAL fractions.Fraction"),
])
def test_unreadable_checkpoint_is_one_line_with_the_reason(tmp_path, make, reason):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a readable checkpoint (") and reason in message
    assert "\n" not in message and "False" not in message and "add_safe_globals" not in message


def test_missing_checkpoint_and_foreign_dict(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a wsol_edge checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.arange(4.0)}, "epoch": 3}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["format"] == FORMAT and back["epoch"] == 3 and torch.equal(back["model"]["w"], state["model"]["w"])


@pytest.mark.parametrize("backbone, method", [("efficientnet_lite0", "cam"), ("resnet50", "cam"), ("deit_tiny", "sat")])
def test_unreadable_imagenet_weights_give_one_error_line(tmp_path, capsys, backbone, method):
    from wsol_edge import train
    weights = tmp_path / "imagenet.pth"
    weights.write_bytes(b"garbage")
    argv = ["--dataset", "synthetic", "--synthetic-images", "8", "--synthetic-size", "64", "--no-progress",
            "--epochs", "1", "--backbone", backbone, "--method", method, "--weights", str(weights),
            "--out", str(tmp_path / "run")]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {weights}: not a readable weights file (the weights-only loader refused it: Unsupported operand 103)"
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_weights_file_must_hold_a_state_dict(tmp_path):
    from wsol_edge.checkpoint import load_weights_file
    torch.save(torch.zeros(3), tmp_path / "t.pth")
    with pytest.raises(ValueError, match="holds a Tensor, not a state dict"):
        load_weights_file(tmp_path / "t.pth")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_weights_file(tmp_path / "none.pth")


def test_weights_hash_ignores_what_else_the_checkpoint_holds(tmp_path):
    from wsol_edge.checkpoint import checkpoint_provenance
    torch.manual_seed(0)
    weights = {"conv.weight": torch.randn(4, 3, 3, 3), "bn.num_batches_tracked": torch.tensor(7),
               "head.weight": torch.randn(5, 4).half()}
    save_checkpoint(tmp_path / "a.pt", {"model": weights, "train_seconds": 10.0})
    save_checkpoint(tmp_path / "b.pt", {"model": dict(reversed(weights.items())), "train_seconds": 11.0})
    a, b = (checkpoint_provenance(tmp_path / n, load_checkpoint(tmp_path / n)) for n in ("a.pt", "b.pt"))
    assert a["checkpoint_sha256"] != b["checkpoint_sha256"]  # the files differ (the training time)...
    assert a["weights_sha256"] == b["weights_sha256"]  # ...the weights do not
    for changed in ({**weights, "conv.weight": weights["conv.weight"].clone().index_fill_(0, torch.tensor([2]), 0.5)},
                    {**weights, "head.weight": weights["head.weight"].float()},  # same values, another dtype
                    {**weights, "conv.weight": weights["conv.weight"].reshape(4, 27)}):  # same bytes, another shape
        save_checkpoint(tmp_path / "c.pt", {"model": changed})
        c = checkpoint_provenance(tmp_path / "c.pt", load_checkpoint(tmp_path / "c.pt"))
        assert c["weights_sha256"] != a["weights_sha256"]
