import pytest
import torch
from torch import nn

from wsol_edge import train
from wsol_edge.checkpoint import load_checkpoint
from wsol_edge.precise_bn import recalibrate_batchnorm


class ModeProbe(nn.Module):
    """Records whether it ran in training mode (stands in for dropout / attention drop)."""

    def __init__(self):
        super().__init__()
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def test_statistics_are_the_plain_average_over_the_batches_and_kept_layers_are_untouched():
    torch.manual_seed(0)
    kept_bn, bn, probe = nn.BatchNorm2d(3), nn.BatchNorm2d(3), ModeProbe()
    model = nn.Sequential(kept_bn, probe, bn).train()
    kept_bn.running_mean.fill_(7.0)
    bn.running_mean.fill_(-3.0)
    batches = [torch.randn(4, 3, 5, 5) * (i + 1) + i for i in range(3)]
    used = recalibrate_batchnorm(model, iter(batches + [torch.randn(4, 3, 5, 5)]), 3, keep=[kept_bn])
    assert used == 3
    # the kept layer runs in eval mode: bn sees the kept layer's fixed normalisation of each batch
    seen = [(b - kept_bn.running_mean[:, None, None]) / torch.sqrt(kept_bn.running_var[:, None, None] + kept_bn.eps)
            for b in batches]
    torch.testing.assert_close(bn.running_mean, torch.stack([s.mean((0, 2, 3)) for s in seen]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([s.var((0, 2, 3), unbiased=True) for s in seen]).mean(0))
    assert kept_bn.running_mean.eq(7.0).all() and kept_bn.num_batches_tracked == 0
    assert probe.modes == [False, False, False]  # everything but BatchNorm stays in eval mode
    assert bn.momentum == 0.1 and model.training  # restored


def test_no_batch_is_an_error_and_leaves_the_statistics_as_they_were():
    bn = nn.BatchNorm2d(2)
    bn.running_mean.fill_(5.0)
    with pytest.raises(ValueError, match="no batch"):
        recalibrate_batchnorm(nn.Sequential(bn), iter([]), 4)
    assert bn.running_mean.eq(5.0).all() and bn.momentum == 0.1


SYN = ["--dataset", "synthetic", "--synthetic-images", "16", "--synthetic-size", "64", "--no-progress",
       "--batch-size", "8", "--freeze-layers", "3", "--method", "has", "--epochs", "1"]


def test_train_re_estimates_after_the_last_epoch_and_resume_runs_only_that_step(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert train.main([*SYN, "--out", str(a)]) == 0
    assert train.main([*SYN, "--out", str(b), "--precise-bn", "2"]) == 0
    sa, sb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert sa["precise_bn"] is None
    assert sb["precise_bn"]["batches"] == 2 and sb["precise_bn"]["batches_requested"] == 2
    stats = [k for k in sa["model"] if k.endswith("running_mean")]
    changed = [k for k in stats if not torch.equal(sa["model"][k], sb["model"][k])]
    weights = [k for k in sa["model"] if k.endswith(".weight")]
    assert changed and all(torch.equal(sa["model"][k], sb["model"][k]) for k in weights)  # same training, new stats
    frozen = [k for k in stats if k.startswith("model.backbone.net.stem")]
    assert frozen and not any(k in changed for k in frozen)  # frozen layers keep their statistics
    # a finished run: --resume with --precise-bn only re-estimates (no epoch is trained again)
    assert train.main([*SYN, "--out", str(a), "--resume", "--precise-bn", "2"]) == 0
    sr = load_checkpoint(a / "checkpoint.pt")
    assert sr["epoch"] == 1 and len(sr["history"]) == 1 and sr["precise_bn"]["batches"] == 2
    assert sr["command"] == sa["command"]  # the training command is kept; the step records its own
    assert "--precise-bn" in sr["precise_bn"]["command"]
    for k in stats:  # same batches, same trained weights -> the same statistics as the single run
        torch.testing.assert_close(sr["model"][k], sb["model"][k])


def test_a_negative_batch_count_is_refused_on_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.main([*SYN, "--out", str(tmp_path / "n"), "--precise-bn", "-1"])
    assert "--precise-bn: must be 0 or more, got -1" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()
