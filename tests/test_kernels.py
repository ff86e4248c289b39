"""CUDA kernels: NVRTC compilation for every target (no GPU needed), the CPU reference of the GPU
rule, and, on a GPU only, box parity with that reference."""
import os

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
    g = np.zeros((4, 40), np.float32); g[0, 26] = g[1, 13] = 1.0  # a tie OpenCV's 2x2-block labels order the other way
    assert largest_component_box(g, 0.5).tolist() == [26, 0, 27, 1]
    f = np.zeros((10, 10), np.float32); f[6:10, 6:10] = 1.0  # clip at the border
    assert largest_component_box(f, 0.5).tolist() == [6, 6, 9, 9]


def scipy_largest_component_box(scoremap: np.ndarray, tau: float) -> np.ndarray:
    """Independent of OpenCV: scipy.ndimage labels 8-connected components in raster order of their
    first pixels, so the first maximum of the areas is the kernels' tie rule."""
    from scipy import ndimage

    u8 = (scoremap.astype(np.float32) * np.float32(255)).astype(np.uint8)
    labels, n = ndimage.label(u8 > int(tau * u8.max()), structure=np.ones((3, 3), int))
    if n == 0:
        return np.zeros(4, np.int64)
    best = int(np.argmax(np.bincount(labels.ravel())[1:]))
    ys, xs = ndimage.find_objects(labels)[best]
    h, w = scoremap.shape
    return np.array([xs.start, ys.start, min(xs.stop, w - 1), min(ys.stop, h - 1)], np.int64)


def test_cpu_reference_of_the_gpu_rule_matches_scipy_on_adversarial_and_random_cams():
    from benchmarks.cam_cases import adversarial_cams, random_cams

    cams = [c for size in (64, 96) for _, c in adversarial_cams(size)]
    cams += list(random_cams(24, 7)) + list(random_cams(24, 14, seed=1))
    taus = [0.0, 0.01, 0.05, 0.2, 0.35, 0.5, 0.73, 0.9, 0.99]
    checked = 0
    for cam in cams:
        sm = cam_to_scoremap(cam, cam.shape[0] if cam.shape[0] >= 64 else 96)
        for tau in taus:
            assert largest_component_box(sm, tau).tolist() == scipy_largest_component_box(sm, tau).tolist(), tau
            checked += 1
    assert checked == len(cams) * len(taus)


def test_adversarial_cases_are_what_they_claim():
    import cv2

    from benchmarks.cam_cases import adversarial_cams

    cases = dict(adversarial_cams(64))
    ncomp = lambda m: cv2.connectedComponents((m > 0).astype(np.uint8), connectivity=8)[0] - 1  # noqa: E731
    assert ncomp(cases["checkerboard_1px"]) == 1 and ncomp(cases["spiral"]) == 1 and ncomp(cases["comb"]) == 1
    assert ncomp(cases["horizontal_stripes"]) == 32
    s = np.pad(cases["spiral"], 1)  # a chain: almost every pixel has exactly two 4-neighbours
    four = (s[:-2, 1:-1] + s[2:, 1:-1] + s[1:-1, :-2] + s[1:-1, 2:])[s[1:-1, 1:-1] > 0]
    assert s.sum() > 64 * 64 / 3 and (four == 2).mean() > 0.99
    assert (cam_to_scoremap(cases["one_nan"], 64) == 0).all() and (cam_to_scoremap(cases["all_equal"], 64) == 0).all()
    tie = largest_component_box(cam_to_scoremap(cases["equal_area_tie"], 64), 0.5)
    assert tie.tolist() == [44, 5, 49, 10]  # the first in raster order, not the lower one
    ring = cam_to_scoremap(cases["ring_vs_blob"], 64)
    assert largest_component_box(ring, 0.5).tolist() != box_from_scoremap(ring, 0.5).tolist()  # the rules part


def kernel_bicubic_steps(cam: np.ndarray, size: int) -> np.ndarray:
    """upsample_bicubic of kernels/wsol_kernels.cu, step for step in float32 (each NumPy float32
    operation rounds once, as the kernel's __fmul_rn/__fadd_rn and its --fmad=false build do)."""
    f32 = np.float32
    h, w = cam.shape
    a = f32(-0.75)

    def taps(n_src):
        d = np.arange(size)
        f = ((d + 0.5) * (1.0 / (size / n_src)) - 0.5).astype(f32)  # double, then float, as in the kernel
        s = np.floor(f).astype(int)
        x = (f - s.astype(f32)).astype(f32)
        one = f32(1)
        c0 = ((a * (x + one) - f32(5) * a) * (x + one) + f32(8) * a) * (x + one) - f32(4) * a
        c1 = ((a + f32(2)) * x - (a + f32(3))) * x * x + one
        c2 = ((a + f32(2)) * (one - x) - (a + f32(3))) * (one - x) * (one - x) + one
        c3 = one - c0 - c1 - c2
        return s, [c0, c1, c2, c3]

    sx, cx = taps(w)
    sy, cy = taps(h)
    rows = []
    for j in range(4):
        src = cam[np.clip(sy - 1 + j, 0, h - 1)]                      # [S, w]
        acc = np.zeros((size, size), f32)
        for i in range(4):
            acc = acc + cx[i][None, :] * src[:, np.clip(sx - 1 + i, 0, w - 1)]
        rows.append(acc)
    out = rows[3] * cy[3][:, None]
    for j in (2, 1, 0):
        out = rows[j] * cy[j][:, None] + out
    return out


@pytest.mark.parametrize("hw,size", [((7, 7), 224), ((14, 14), 224), ((28, 28), 448), ((7, 14), 224)])
def test_kernel_bicubic_steps_equal_opencv_without_ipp_bit_for_bit(hw, size):
    import cv2

    from benchmarks.cam_cases import opencv_without_ipp

    rng = np.random.default_rng(size + hw[1])
    before = cv2.ipp.useIPP()
    for _ in range(3):
        cam = (rng.normal(size=hw) * rng.uniform(0.01, 100)).astype(np.float32)
        with opencv_without_ipp():
            want = cv2.resize(cam, (size, size), interpolation=cv2.INTER_CUBIC)
        assert np.array_equal(kernel_bicubic_steps(cam, size), want)
    assert cv2.ipp.useIPP() == before


def kernel_ccl_steps(u8: np.ndarray, cut: int, warp: int = 32) -> list[int]:
    """A sequential transcription of the kernels' labelling (ccl_init's warp-local runs,
    ccl_merge's one-union-per-touching-run rules, then the most-pixels box): the rules a GPU
    cannot be asked about in CI. Unions run in a shuffled order, as threads may."""
    S = u8.shape[0]
    U = u8.reshape(-1).astype(int)
    fg = U > cut
    L = np.full(S * S, -1)
    for p in np.nonzero(fg)[0]:
        w0, lane = p - p % warp, p % warp
        start = 0
        for j in range(lane, -1, -1):  # back to the last background lane, not before a row start
            if not fg[w0 + j]:
                start = j + 1
                break
            if (w0 + j) % S == 0:
                start = j
                break
        p0 = w0 + start
        L[p] = p0 - 1 if start == 0 and p0 % S != 0 and fg[p0 - 1] else p0

    def find(p):
        while L[p] != p:
            p = L[p]
        return p

    def union(a, b):
        a, b = sorted((find(a), find(b)))
        L[b] = a

    for p in np.random.default_rng(0).permutation(S * S):
        if p < S or L[p] < 0:
            continue
        x, up = p % S, L[p - S] >= 0
        if x == 0 or L[p - 1] < 0:
            if x > 0 and L[p - S - 1] >= 0:
                union(p, p - S - 1)
            elif up:
                union(p, p - S)
        if x + 1 < S and not up and L[p - S + 1] >= 0:
            union(p, p - S + 1)
    roots = np.array([find(p) if L[p] >= 0 else -1 for p in range(S * S)])
    if (roots < 0).all():
        return [0, 0, 0, 0]
    ids, counts = np.unique(roots[roots >= 0], return_counts=True)
    r = ids[np.argmax(counts)]  # the most pixels; ties: the lowest root (np.unique sorts)
    ys, xs = np.divmod(np.nonzero(roots == r)[0], S)
    return [int(xs.min()), int(ys.min()), int(min(xs.max() + 1, S - 1)), int(min(ys.max() + 1, S - 1))]


@pytest.mark.parametrize("size", [33, 64])  # rows that cross warps and rows that fill them
def test_kernel_labelling_rules_give_the_reference_boxes(size):
    from benchmarks.cam_cases import adversarial_cams, random_cams

    cams = [c for _, c in adversarial_cams(size)] + list(random_cams(10, size, seed=size))
    for cam in cams:
        sm = cam_to_scoremap(cam, size)
        u8 = (sm * np.float32(255)).astype(np.uint8)
        for tau in (0.0, 0.25, 0.6):
            assert kernel_ccl_steps(u8, int(tau * int(u8.max()))) == largest_component_box(sm, tau).tolist()


def test_upsampling_tiles_never_need_more_source_rows_than_the_bound():
    """The kernel traps if a tile of UP_ROWS output rows needs more source rows than the host's
    bound sized its shared memory for; the bound, checked with the kernel's float steps."""
    for size in (32, 57, 100, 224, 288, 448, 513):
        for h in sorted({1, 2, 7, 13, 14, 28, 33, size // 2, size - 1, size}):
            fy = ((np.arange(size) + 0.5) * (1.0 / (size / h)) - 0.5).astype(np.float32)
            first = np.floor(fy).astype(int) - 1
            for y0 in range(0, size, loader.UP_ROWS):
                last = first[min(y0 + loader.UP_ROWS, size) - 1]
                assert last + 4 - first[y0] <= loader.upsample_rows_bound(h, size), (size, h, y0)


def gpu_available():
    try:
        from cuda.bindings import runtime
        err, n = runtime.cudaGetDeviceCount()
        return int(err) == 0 and n > 0
    except Exception:
        return False


needs_gpu = pytest.mark.skipif(not gpu_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def kernels():
    k = loader.BoxKernels()
    yield k
    k.close()


@needs_gpu
@pytest.mark.parametrize("hw,n", [(7, 1000), (14, 1000), (28, 200)])
def test_gpu_boxes_match_cpu_reference_on_random_cams(kernels, hw, n):
    from benchmarks.cam_cases import random_cams, reference_boxes

    cams = random_cams(n, hw, seed=hw)
    taus = np.arange(0, 1, 0.01)
    gpu = kernels.boxes(cams, cams.shape, taus, 224)
    diff = (gpu != reference_boxes(cams, taus, 224)).any(-1)
    assert not diff.any(), f"{int(diff.sum())} of {diff.size} boxes differ (first at image, tau {np.argwhere(diff)[0]})"


@needs_gpu
@pytest.mark.parametrize("size", [224, 448])
def test_gpu_boxes_match_cpu_reference_on_adversarial_cams(kernels, size):
    from benchmarks.cam_cases import adversarial_cams, reference_boxes

    names, cams = zip(*adversarial_cams(size))
    cams = np.stack(cams)
    taus = np.arange(0, 1, 0.01)
    gpu = kernels.boxes(cams, cams.shape, taus, size)
    diff = (gpu != reference_boxes(cams, taus, size)).any(-1)
    assert not diff.any(), f"boxes differ on {sorted({names[i] for i in np.argwhere(diff)[:, 0]})}"


@needs_gpu
@pytest.mark.skipif(not os.environ.get("WSOL_EDGE_REAL_CAMS"),
                    reason="no real CAMs: WSOL_EDGE_REAL_CAMS=FILE from python -m benchmarks.cam_cases")
def test_gpu_boxes_match_cpu_reference_on_real_cams(kernels):
    from benchmarks.cam_cases import reference_boxes

    cams = np.load(os.environ["WSOL_EDGE_REAL_CAMS"])["cams"]
    taus = np.arange(0, 1, 0.01)
    for start in range(0, len(cams), 256):
        part = cams[start:start + 256]
        diff = (kernels.boxes(part, part.shape, taus, 224) != reference_boxes(part, taus, 224)).any(-1)
        assert not diff.any(), f"{int(diff.sum())} boxes differ in CAMs {start}..{start + len(part) - 1}"


@needs_gpu
def test_gpu_fused_cam_matches_numpy_fp32_and_fp16(kernels):
    rng = np.random.default_rng(0)
    B, C, h, w, K = 6, 1280, 14, 14, 50
    feats = np.maximum(rng.normal(size=(B, C, h, w)), 0).astype(np.float32)
    weights = rng.normal(scale=0.05, size=(K, C)).astype(np.float32)
    ids = rng.integers(0, K, B)
    for fp16 in (False, True):
        f = feats.astype(np.float16) if fp16 else feats
        want = np.einsum("bc,bchw->bhw", weights[ids].astype(np.float64), f.astype(np.float64))
        scale = np.einsum("bc,bchw->bhw", np.abs(weights[ids]).astype(np.float64), np.abs(f).astype(np.float64))
        got = kernels.cams(f, ids, f.shape, weights=weights, fp16=fp16)
        # sequential FP32 accumulation of C products: |error| <= C * 2^-24 * sum |terms| (Higham's bound)
        assert np.all(np.abs(got - want) <= C * 2.0 ** -24 * scale), f"fp16={fp16}"
    with pytest.raises(ValueError, match="class ids"):
        kernels.cams(feats, np.array([0, 1, 2, 3, 4, K]), feats.shape)  # the classifier stays uploaded
    with pytest.raises(ValueError, match="channels"):
        kernels.cams(feats[:, :640], ids, feats[:, :640].shape)


@needs_gpu
def test_gpu_cam_then_boxes_without_host_round_trip(kernels):
    from benchmarks.cam_cases import reference_boxes

    rng = np.random.default_rng(1)
    B, C, h, w, K = 8, 64, 7, 7, 10
    feats = np.maximum(rng.normal(size=(B, C, h, w)), 0).astype(np.float32)
    weights = rng.normal(size=(K, C)).astype(np.float32)
    ids = rng.integers(0, K, B)
    kernels.set_classifier(weights)
    cams = kernels.cams(feats, ids, feats.shape)                    # host copy, for the reference
    on_gpu = kernels._buffer("test_cams", B * h * w * 4)
    assert kernels.cams(feats, ids, feats.shape, out=on_gpu) is None
    taus = np.arange(0, 1, 0.05)
    assert np.array_equal(kernels.boxes(on_gpu, (B, h, w), taus, 224), reference_boxes(cams, taus, 224))


@needs_gpu
def test_gpu_graph_of_cam_and_boxes_replays_to_the_cpu_reference(kernels):
    """The camera-loop path: class ids already on the GPU, CAM + boxes captured once as a CUDA
    graph, replayed on new features (a graph reads its buffers at replay time)."""
    from benchmarks.cam_cases import reference_boxes

    rng = np.random.default_rng(2)
    B, C, h, w, K = 16, 128, 14, 14, 20
    weights = rng.normal(size=(K, C)).astype(np.float32)
    kernels.set_classifier(weights)
    stream = kernels.stream()
    ids = rng.integers(0, K, B)
    ids_d = kernels._upload("test_ids", ids.astype(np.int64), stream)
    taus_d = kernels._upload("test_taus", np.array([0.3]), stream)
    feats_d = kernels._buffer("test_features", B * C * h * w * 4)
    cams_d = kernels._buffer("test_graph_cams", B * h * w * 4)

    def enqueue(s):
        kernels.cams(feats_d, ids_d, (B, C, h, w), out=cams_d, stream=s)
        return kernels.enqueue_boxes(cams_d, (B, h, w), taus_d, 1, 224, s)

    boxes_d = enqueue(stream)  # sizes the buffers before the capture
    graph = kernels.capture(enqueue, stream)
    try:
        for _ in range(3):
            feats = np.maximum(rng.normal(size=(B, C, h, w)), 0).astype(np.float32)
            kernels._upload("test_features", feats, stream)
            graph.launch(stream)
            got = kernels._download(boxes_d, np.zeros((B, 1, 4), np.int32), stream)
            cams = kernels._download(cams_d, np.zeros((B, h, w), np.float32), stream)
            want_cams = np.einsum("bc,bchw->bhw", weights[ids].astype(np.float64), feats.astype(np.float64))
            assert np.abs(cams - want_cams).max() <= 1e-3 * np.abs(want_cams).max()
            assert np.array_equal(got, reference_boxes(cams, [0.3], 224))
    finally:
        graph.close()
        kernels.rt.cudaStreamDestroy(stream)


@pytest.mark.skipif(not nvrtc_available(), reason="cuda-python/NVRTC not installed")
def test_compiling_leaves_interpreter_constants_intact():
    loader.compile_cubin("90")
    assert b" " * 1 == b"\x20" and bytes(1) == b"\x00"  # NVRTC must not write into shared bytes objects


class FakeCuda:
    """Stands in for cuda-python's runtime and driver modules: records allocations, copies and
    launches, so the loader's host logic (checks, launch order, buffer reuse) runs without a GPU."""

    class cudaMemcpyKind:  # cuda-python's name
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 1, 2

    def __init__(self):
        self.next_ptr, self.allocs, self.frees, self.launches, self.copies = 4096, [], [], [], []

    def cudaMalloc(self, n):
        self.next_ptr += (n + 4095) // 4096 * 4096
        self.allocs.append(n)
        return 0, self.next_ptr

    def cudaFree(self, ptr):
        self.frees.append(ptr)
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        self.copies.append((kind, n))
        return (0,)

    def cudaStreamSynchronize(self, stream):
        return (0,)

    def cudaMemsetAsync(self, ptr, value, n, stream):
        self.launches.append(("memset", n))
        return (0,)

    class cudaStreamCaptureMode:
        cudaStreamCaptureModeRelaxed = 2

    def cudaStreamBeginCapture(self, stream, mode):
        self.launches.append(("begin_capture", stream))
        return (0,)

    def cudaStreamEndCapture(self, stream):
        self.launches.append(("end_capture", stream))
        return 0, "graph"

    def cudaGraphInstantiate(self, graph, flags):
        return 0, "exe"

    def cudaGraphLaunch(self, exe, stream):
        self.launches.append(("graph_launch", exe))
        return (0,)

    def cuLaunchKernel(self, fn, gx, gy, gz, bx, by, bz, shared, stream, args, extra):
        self.launches.append((fn, (gx, gy, gz), bx, shared, args[0]))
        return (0,)


def fake_kernels():
    fake = FakeCuda()
    k = object.__new__(loader.BoxKernels)
    k.cu, k.rt, k.fn, k._buffers, k.classifier_shape = fake, fake, {n: n for n in loader.KERNELS}, {}, None
    k._generation, k._capturing = 0, False
    return k, fake


def test_a_graph_refuses_buffers_that_grow_during_or_after_its_capture():
    """A captured graph keeps raw device pointers: a buffer reallocated under it would be written
    after cudaFree. Growth during a capture and a launch after growth are each one clear error."""
    k, fake = fake_kernels()
    cams = k._buffer("test_cams", 2 * 7 * 7 * 4)
    taus = k._buffer("test_taus", 8)

    def enqueue(batch):
        return lambda s: k.enqueue_boxes(cams, (batch, 7, 7), taus, 1, 64, s)

    with pytest.raises(RuntimeError, match="run the same work once before capturing"):
        k.capture(enqueue(2), 7)  # nothing sized yet
    assert fake.launches[-1] == ("end_capture", 7) and not k._capturing  # the capture was ended, the flag cleared
    enqueue(2)(7)
    graph = k.capture(enqueue(2), 7)
    graph.launch(7)
    assert fake.launches[-1] == ("graph_launch", "exe")
    enqueue(1)(7)  # smaller: buffers reused, the graph stays valid
    graph.launch(7)
    k._upload("cam_class_ids", np.zeros(2, np.int64), 7)  # a buffer's first allocation frees none the graph holds
    graph.launch(7)
    assert fake.launches[-1] == ("graph_launch", "exe")
    enqueue(3)(7)  # larger: buffers reallocated
    with pytest.raises(RuntimeError, match="capture it again"):
        graph.launch(7)
    assert fake.launches[-1][0] != "graph_launch"
    k.capture(enqueue(3), 7).launch(7)


def test_box_launch_sequence_and_buffer_reuse_without_a_gpu():
    k, fake = fake_kernels()
    cams = np.zeros((3, 7, 7), np.float32)
    out = k.boxes(cams, cams.shape, np.arange(0, 1, 0.1), 64, threshold_chunk=4)  # 10 thresholds: chunks 4, 4, 2
    names = [launch[0] for launch in fake.launches]
    per_chunk = ["ccl_init", "ccl_merge", "ccl_compress_stats", "memset", "ccl_best", "ccl_box"]
    assert names == ["memset", "upsample_bicubic", "normalize_quantize"] + per_chunk * 3
    assert [launch[1] for launch in fake.launches if launch[0] == "memset"] == [3 * 4 * 4] + [3 * 4 * 8] * 2 + [3 * 2 * 8]
    assert out.shape == (3, 10, 4) and out.dtype == np.int32
    grids = [launch[1] for launch in fake.launches if launch[0] == "ccl_init"]
    assert grids == [((64 * 64 + 255) // 256, 3 * 4, 1)] * 2 + [((64 * 64 + 255) // 256, 3 * 2, 1)]
    allocated = len(fake.allocs)
    k.boxes(cams, cams.shape, np.arange(0, 1, 0.1), 64, threshold_chunk=4)
    assert len(fake.allocs) == allocated  # same sizes: every buffer reused
    k.boxes(np.zeros((5, 7, 7), np.float32), (5, 7, 7), [0.5], 64)
    assert len(fake.allocs) > allocated   # a larger batch grows the buffers it needs
    k.close()
    assert len(fake.frees) == len(fake.allocs) and k._buffers == {}
    with pytest.raises(ValueError, match="expected"):
        k.boxes(cams, (2, 7, 7), [0.5], 64)
    k.boxes(np.zeros((1, 680, 680), np.float32), (1, 680, 680), [0.5], 680)  # the largest full-size map whose tile fits
    launches, allocs, copies = len(fake.launches), len(fake.allocs), len(fake.copies)
    with pytest.raises(ValueError, match="shared memory"):
        k.boxes(np.zeros((1, 681, 681), np.float32), (1, 681, 681), [0.5], 681)
    assert len(fake.launches) == launches and len(fake.allocs) == allocs and len(fake.copies) == copies  # not even an upload


def test_cam_launch_checks_without_a_gpu():
    k, fake = fake_kernels()
    feats = np.zeros((2, 16, 7, 7), np.float32)
    with pytest.raises(ValueError, match="no classifier"):
        k.cams(feats, [0, 1], feats.shape)
    k.set_classifier(np.zeros((5, 16), np.float32))
    got = k.cams(feats, [0, 4], feats.shape)
    assert got.shape == (2, 7, 7)
    fn, grid, block, shared, args = fake.launches[-1]
    assert fn == "cam_fused_f32" and grid == (2, 2, 1) and block == 256  # 49 pixels: two tiles of 32
    assert shared == 16 * 4 and args[4:] == (16, 49, 5)  # the classifier row in shared memory; C, h*w, K
    k.cams(feats.astype(np.float16), [0, 4], feats.shape, fp16=True)
    assert fake.launches[-1][0] == "cam_fused_f16"
    for bad_ids, why in (([0, 5], "class ids"), ([0], "one class per image")):
        with pytest.raises(ValueError, match=why):
            k.cams(feats, bad_ids, feats.shape)
    with pytest.raises(ValueError, match="channels"):
        k.cams(np.zeros((2, 8, 7, 7), np.float32), [0, 1], (2, 8, 7, 7))
    with pytest.raises(ValueError, match="48 KiB"):
        k.set_classifier(np.zeros((2, 20000), np.float32))
