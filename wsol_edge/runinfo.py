"""What every result file records about how and where it was made."""
from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


# Changes here cannot change how a result is made. A multi-row command (benchmarks.methods) writes
# its result file into the repo after its first row, which would otherwise mark every later row's
# commit "-dirty" although the code it ran is the commit's.
RESULTS_DIR = "benchmarks/results/"


def has_code_changes(porcelain: str) -> bool:
    """Whether ``git status --porcelain`` output lists a change outside benchmarks/results/."""
    for line in porcelain.splitlines():
        if not line.strip():
            continue
        paths = [p.strip('"') for p in line[3:].split(" -> ")]  # a rename names both sides
        if not all(path.startswith(RESULTS_DIR) for path in paths):
            return True
    return False


def git_commit() -> str | None:
    """HEAD, with "-dirty" when tracked files other than result files have uncommitted changes.

    ``WSOL_EDGE_COMMIT`` overrides it, for a copy of the tree whose .git is absent or stale (the
    lent GPU machine gets the working tree with the .git of an earlier commit): the caller names
    the commit it sent."""
    if os.environ.get("WSOL_EDGE_COMMIT"):
        return os.environ["WSOL_EDGE_COMMIT"]
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if sha.returncode != 0:
        return None
    return sha.stdout.strip() + ("-dirty" if has_code_changes(status.stdout) else "")


def read_cpuinfo() -> str | None:
    """/proc/cpuinfo's text; None where there is none (not Linux)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def cpu_name(cpuinfo: str | None = None) -> str:
    for line in (cpuinfo if cpuinfo is not None else read_cpuinfo() or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_any(flags: tuple[str, ...], cpuinfo: str | None = None) -> bool | None:
    """Whether /proc/cpuinfo's flags line names any of ``flags``; None where there is no such line."""
    cpuinfo = cpuinfo if cpuinfo is not None else read_cpuinfo()
    for line in (cpuinfo or "").splitlines():
        if line.startswith("flags"):
            return any(f in flags for f in line.split(":", 1)[1].split())
    return None


def cpu_has_vnni(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU has an int8 dot product into int32 (AVX512-VNNI or AVX-VNNI); None where
    /proc/cpuinfo is absent. Without it ONNX Runtime's x86 int8 kernels add u8 x s8 pairs in
    saturating int16, which decides which INT8 flavour a CPU runs accurately (README, INT8)."""
    return cpu_has_any(VNNI_FLAGS, cpuinfo)


def cpu_has_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether the CPU computes in bfloat16 (AVX512-BF16 or AMX-BF16): what a CPU timing of ``train --amp bf16``
    depends on (benchmarks/results/cub50_amp_bf16_cpu.json was measured on one that does)."""
    return cpu_has_any(BF16_FLAGS, cpuinfo)


def machine_info() -> dict:
    versions = {"python": platform.python_version()}
    for mod in ("numpy", "cv2", "onnxruntime", "onnx", "torch"):
        m = sys.modules.get(mod)
        if m is not None:
            versions[mod] = getattr(m, "__version__", "?")
    gpu = None
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    cpuinfo = read_cpuinfo()
    info = {"cpu": cpu_name(cpuinfo), "cores": os.cpu_count(), "gpu": gpu, "versions": versions}
    for key, has in (("cpu_vnni", cpu_has_vnni(cpuinfo)), ("cpu_bf16", cpu_has_bf16(cpuinfo))):
        if has is not None:
            info[key] = has
    if torch is not None:
        # the instruction set PyTorch's CPU kernels dispatch on: the same seed trains to other weights on an
        # AVX2 and an AVX-512 machine (benchmarks/METHODS.md, "Reproducibility across machines")
        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    nvidia = nvidia_smi_gpu()
    if nvidia:
        info["gpu"] = info["gpu"] or nvidia[0]
        info["gpu_driver"] = nvidia[1]
    return info


def nvidia_smi_gpu() -> tuple[str, str] | None:
    """(name, driver version) of the first GPU as nvidia-smi reports it; None without one."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = out.stdout.splitlines()[0].rsplit(",", 1) if out.returncode == 0 and out.stdout.strip() else []
    return (fields[0].strip(), fields[1].strip()) if len(fields) == 2 else None


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that reproduces this run; under torchrun, with its process count (per node)."""
    args = sys.argv[1:] if argv is None else list(argv)
    world = os.environ.get("WORLD_SIZE")
    if world and int(world) > 1:
        nodes = int(world) // int(os.environ.get("LOCAL_WORLD_SIZE", world))
        launcher = ["torchrun", *(["--nnodes", str(nodes)] if nodes > 1 else []),
                    "--nproc_per_node", os.environ.get("LOCAL_WORLD_SIZE", world)]
    else:
        launcher = ["python"]
    return " ".join([*launcher, "-m", module, *map(shlex.quote, args)])
