import os
import stat

import pytest

from wsol_edge.atomic import (UnwritableError, WriteError, atomic_write, atomic_write_bytes, atomic_write_json,
                              new_file_mode, writable_folder)

posix_modes = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def umask():
    """Set the process umask for one test and put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    atomic_write_json(target, {"a": 1})

    def fail_halfway(f):
        f.write(b"half a fi")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail_halfway)
    assert target.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, b"epoch 3")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(WriteError) as exc:  # a ValueError, so each CLI reports it in one line
        atomic_write_bytes(target, b"epoch 4")
    assert str(exc.value) == f"cannot write {target} (No space left on device); the file there before is kept"
    assert isinstance(exc.value, ValueError) and target.read_bytes() == b"epoch 3"
    with pytest.raises(WriteError, match=r"\(No space left on device\); nothing was written$"):
        atomic_write_bytes(tmp_path / "new.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


@posix_modes
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path, umask, mask):
    umask(mask)
    assert new_file_mode() == 0o666 & ~mask
    atomic_write_bytes(tmp_path / "model.onnx", b"x")
    with open(tmp_path / "plain", "wb"):
        pass
    assert mode(tmp_path / "model.onnx") == mode(tmp_path / "plain") == 0o666 & ~mask


@posix_modes
def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "model.engine"
    target.write_bytes(b"old")
    for kept in (0o640, 0o600, 0o664):
        target.chmod(kept)
        atomic_write_bytes(target, b"new")
        assert (mode(target), target.read_bytes()) == (kept, b"new")


def test_a_folder_that_cannot_be_made_is_one_clear_error(tmp_path):
    (tmp_path / "taken").write_text("a file where a folder should go")
    for call in (lambda: atomic_write_json(tmp_path / "taken" / "sub" / "r.json", {}),
                 lambda: writable_folder(tmp_path / "taken" / "sub")):
        with pytest.raises(UnwritableError, match=rf"is not writable \({tmp_path / 'taken'} is a file\)$"):
            call()
    assert isinstance(UnwritableError("x"), ValueError)  # every CLI reports ValueErrors in one line
    assert writable_folder(tmp_path / "new" / "deep").is_dir() and list((tmp_path / "new" / "deep").iterdir()) == []


def test_the_check_before_the_work_makes_nothing(tmp_path):
    assert writable_folder(tmp_path / "later" / "deep", create=False) == tmp_path / "later" / "deep"
    assert not (tmp_path / "later").exists()  # a command refused for another reason leaves no folder behind
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UnwritableError, match="is a file"):
        writable_folder(tmp_path / "taken" / "deep", create=False)
