"""CUDA kernels: NVRTC compilation for every target (no GPU needed), the CPU reference of the GPU
rule, and, on a GPU only, box parity with that reference."""
import numpy as np
import pytest

from wsol_edge.postprocess import box_from_scoremap, cam_to_scoremap, largest_component_box

loader = pytest.importorskip("wsol_edge.kernels.loader")


def nvrtc_available():
    try:
        from cuda.bindings import nvrtc  # noqa: F401
        return nvrtc.nvrtcVersion()[0] == nvrtc.nvrtcResult.NVRTC_SUCCESS
    except Exception:
        return False


@pytest.mark.skipif(not nvrtc_available(), reason="cuda-python/NVRTC not installed (pip install 'wsol_edge[gpu]')")
@pytest.mark.parametrize("arch", ["87", "90"])
def test_kernels_compile_without_warnings(arch):
    cubin, log = loader.compile_cubin(arch)
    assert log == "" and len(cubin) > 10_000
    assert cubin[:4] == b"\x7fELF"


@pytest.mark.skipif(not nvrtc_available(), reason="cuda-python/NVRTC not installed")
def test_a_warning_fails_the_build():
    src = loader.SOURCE.read_text() + '\nextern "C" __global__ void w(int* x) { int unused; x[0] = 1; }\n'
    with pytest.raises(loader.KernelCompileError, match="unused"):
        loader.compile_cubin("90", src)


def test_gpu_rule_reference_pixel_count_vs_contour_area():
    m = np.zeros((40, 40), np.float32)
    m[0, 0:20] = m[19, 0:20] = m[0:20, 0] = m[0:20, 19] = 1.0   # ring: 76 px, contour area 361
    m[25:37, 25:37] = 1.0                                        # blob: 144 px, contour area 121
    assert box_from_scoremap(m, 0.5).tolist() == [0, 0, 20, 20]          # wsoleval: contour area
    assert largest_component_box(m, 0.5).tolist() == [25, 25, 37, 37]    # GPU rule: pixel count
    assert largest_component_box(np.zeros((8, 8), np.float32), 0.0).tolist() == [0, 0, 0, 0]
    d = np.zeros((8, 8), np.float32); d[1, 1] = d[2, 2] = 1.0  # diagonal neighbours: one 8-connected component
    assert largest_component_box(d, 0.5).tolist() == [1, 1, 3, 3]
    e = np.zeros((10, 10), np.float32); e[0:2, 0:2] = e[5:7, 5:7] = 1.0  # equal areas: first in raster order
    assert largest_component_box(e, 0.5).tolist() == [0, 0, 2, 2]
    f = np.zeros((10, 10), np.float32); f[6:10, 6:10] = 1.0  # clip at the border
    assert largest_component_box(f, 0.5).tolist() == [6, 6, 9, 9]


def gpu_available():
    try:
        from cuda.bindings import runtime
        err, n = runtime.cudaGetDeviceCount()
        return int(err) == 0 and n > 0
    except Exception:
        return False


@pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU on this machine")
def test_gpu_boxes_match_cpu_reference_on_random_and_adversarial_cams():
    rng = np.random.default_rng(0)
    cams = [rng.normal(size=(7, 7)) for _ in range(40)]
    cams += [np.indices((7, 7)).sum(0) % 2 * 1.0, np.zeros((7, 7)), np.full((7, 7), 3.0)]
    nan = rng.normal(size=(7, 7)); nan[3, 3] = np.nan
    cams.append(nan)
    cams = np.stack(cams).astype(np.float32)
    taus = np.arange(0, 1, 0.01)
    gpu = loader.BoxKernels().boxes(cams, cams.shape, taus, 224)
    mismatches = 0
    for b, cam in enumerate(cams):
        sm = cam_to_scoremap(cam, 224)
        for t, tau in enumerate(taus):
            mismatches += not np.array_equal(gpu[b, t], largest_component_box(sm, tau))
    assert mismatches == 0, f"{mismatches} of {len(cams) * len(taus)} boxes differ"


@pytest.mark.skipif(not nvrtc_available(), reason="cuda-python/NVRTC not installed")
def test_compiling_leaves_interpreter_constants_intact():
    loader.compile_cubin("90")
    assert b" " * 1 == b"\x20" and bytes(1) == b"\x00"  # NVRTC must not write into shared bytes objects
