import json

from wsol_edge.runinfo import has_code_changes


def test_only_result_file_changes_do_not_mark_the_commit_dirty():
    # `git status --porcelain` lines: "XY path", renames "XY old -> new"; paths from the repo root.
    assert not has_code_changes("")
    assert not has_code_changes(" M benchmarks/results/cub50_methods.json\n M benchmarks/results/cub50_methods.md\n")
    assert has_code_changes(" M benchmarks/results/cub50_methods.json\n M wsol_edge/train.py\n")
    assert has_code_changes("M  README.md\n")
    assert has_code_changes("R  wsol_edge/old.py -> benchmarks/results/x.json\n")  # the code file is gone
    assert not has_code_changes('R  benchmarks/results/a.json -> "benchmarks/results/b c.json"\n')
    assert has_code_changes(" M benchmarks/results.py\n")  # the folder, not a prefix of a file name


def test_a_named_commit_overrides_the_checkouts_own(monkeypatch):
    from wsol_edge.runinfo import git_commit

    monkeypatch.delenv("WSOL_EDGE_COMMIT", raising=False)
    own = git_commit()
    monkeypatch.setenv("WSOL_EDGE_COMMIT", "0123abc")
    assert git_commit() == "0123abc" != own


def test_machine_info_names_the_gpu_and_its_driver_from_nvidia_smi(monkeypatch, tmp_path):
    import os

    from wsol_edge.runinfo import machine_info

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 580.159.04'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    info = machine_info()
    assert info["gpu_driver"] == "580.159.04" and info["gpu"]  # torch's name, where it sees a GPU, else nvidia-smi's
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "gpu_driver" not in machine_info()


def test_machine_info_names_the_instruction_set_torch_dispatches_on_once_torch_is_loaded():
    import subprocess
    import sys

    code = ("import json, sys; from wsol_edge.runinfo import machine_info; a = machine_info(); import torch; "
            "b = machine_info(); print(json.dumps([a.get('cpu_capability'), b.get('cpu_capability'), "
            "torch.backends.cpu.get_cpu_capability()]))")
    before, after, torch_says = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                          check=True).stdout)
    assert before is None  # the torch-free runtime's records name no torch dispatch level
    assert after == torch_says and after  # e.g. AVX2, AVX512


def test_vnni_is_read_from_the_cpu_flags_line():
    from wsol_edge.runinfo import cpu_has_vnni

    head = "processor\t: 0\nmodel name\t: AMD EPYC\n"
    assert cpu_has_vnni(head + "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n") is True
    assert cpu_has_vnni(head + "flags\t\t: fpu sse2 avx2 avx_vnni\n") is True
    assert cpu_has_vnni(head + "flags\t\t: fpu sse2 avx2 avx512f avx512vl\n") is False  # no dot product into int32
    assert cpu_has_vnni(head) is None  # no flags line: unknown, not "no"


def test_bfloat16_is_read_from_the_cpu_flags_line_and_recorded():
    from wsol_edge.runinfo import cpu_has_bf16, machine_info, read_cpuinfo

    head = "processor\t: 0\nmodel name\t: AMD EPYC\n"
    assert cpu_has_bf16(head + "flags\t\t: fpu avx512f avx512_vnni avx512_bf16\n") is True
    assert cpu_has_bf16(head + "flags\t\t: fpu avx512f amx_tile amx_bf16\n") is True
    assert cpu_has_bf16(head + "flags\t\t: fpu avx2 avx512f avx512_vnni\n") is False
    assert cpu_has_bf16(head) is None
    assert machine_info().get("cpu_bf16") == cpu_has_bf16(read_cpuinfo())  # absent where there is no cpuinfo
