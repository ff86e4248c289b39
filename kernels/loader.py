"""Compile (NVRTC), cache per GPU architecture, load and launch the WSOL kernels.

Compilation needs no GPU: ``compile_cubin("90")`` works on any machine with the NVRTC wheel, which
is how CI checks every kernel for sm_87 (Jetson Orin) and sm_90 (H100). Ahead of time with nvcc:
``nvcc -cubin -arch=sm_87 -fmad=false -Werror all-warnings kernels/wsol_kernels.cu`` (likewise sm_86/89/90).

Launching (``BoxKernels``) uses the CUDA driver API from cuda-python on a caller-given stream, and
takes device pointers (ints, e.g. TensorRT output buffers, so nothing leaves the GPU) or host
numpy arrays (copied in and out); ``enqueue_boxes`` + ``capture`` give a CUDA graph of CAM + boxes
for a camera loop. Checked on an H100 (parity suite, compute-sanitizer memcheck/racecheck/
synccheck, benchmark: README, "On an H100"); the GPU tests of tests/test_kernels.py skip without a
GPU, and ``bash benchmarks/gpu_session.sh`` runs them, compute-sanitizer and the benchmark in one go.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("wsol_kernels.cu")
KERNELS = ("cam_fused_f32", "cam_fused_f16", "upsample_bicubic", "normalize_quantize",
           "ccl_init", "ccl_merge", "ccl_compress_stats", "ccl_best", "ccl_box")
BLOCK = 256
CAM_PIXELS = 32  # pixels per CAM block (its 8 warps split the channels)
UP_ROWS = 8  # output rows per upsampling block (as in the .cu)
# --fmad=false: float steps as the CPU reference rounds them. No -Werror=all-warnings: NVRTC 13.2
# takes it, 13.0 (the H100 machines' wheel) refuses it; any compiler output fails the build instead.
COMPILE_OPTIONS = ("-std=c++17", "--fmad=false")


def upsample_rows_bound(h: int, size: int) -> int:
    """Source rows one tile of UP_ROWS output rows can need: the span of floor((y + 0.5) * h / S - 0.5)
    over UP_ROWS consecutive y, plus the 4 taps, plus one for float rounding."""
    return (UP_ROWS - 1) * h // size + 6


def upsample_shared_bytes(h: int, w: int, size: int) -> int:
    """Shared memory of one upsampling block (source rows + weights); refused above 48 KiB."""
    shared = (5 * size + 5 * UP_ROWS + upsample_rows_bound(h, size) * size) * 4
    if shared > 48 * 1024:
        raise ValueError(f"a {h}x{w} CAM at {size}x{size} needs {shared} bytes of shared memory per block (48 KiB max)")
    return shared


class KernelCompileError(RuntimeError):
    pass


def _nvrtc():
    try:
        from cuda.bindings import nvrtc  # pyright: ignore[reportAttributeAccessIssue]
    except ImportError:
        raise KernelCompileError("cuda-python is not installed: pip install 'wsol_edge[gpu]'") from None
    return nvrtc


def _ok(result, what: str):
    nvrtc = _nvrtc()
    err, *rest = result if isinstance(result, tuple) else (result,)
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise KernelCompileError(f"{what}: {err}")
    return rest[0] if len(rest) == 1 else rest


def compile_cubin(arch: str, source: str | None = None) -> tuple[bytes, str]:
    """(cubin, compiler log) for ``sm_<arch>``; any warning fails the build."""
    nvrtc = _nvrtc()
    src = (source if source is not None else SOURCE.read_text()).encode()
    prog = _ok(nvrtc.nvrtcCreateProgram(src, b"wsol_kernels.cu", 0, [], []), "create program")
    opts = [f"--gpu-architecture=sm_{arch}".encode(), *(o.encode() for o in COMPILE_OPTIONS)]
    try:
        result = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        size = _ok(nvrtc.nvrtcGetProgramLogSize(prog), "log size")
        # Mutable buffers: NVRTC writes into them, and b" " * 1 would be CPython's shared
        # one-byte object (overwriting it corrupts unrelated code, e.g. torch.load).
        log = bytearray(size)
        nvrtc.nvrtcGetProgramLog(prog, log)
        log_text = bytes(log).decode(errors="replace").strip("\x00 \n")
        err = result[0] if isinstance(result, tuple) else result
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise KernelCompileError(f"sm_{arch}: compilation failed:\n{log_text}")
        if log_text:
            raise KernelCompileError(f"sm_{arch}: compiler output (warnings are errors here):\n{log_text}")
        n = _ok(nvrtc.nvrtcGetCUBINSize(prog), "cubin size")
        cubin = bytearray(n)
        _ok(nvrtc.nvrtcGetCUBIN(prog, cubin), "get cubin")
        return bytes(cubin), log_text
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def cache_dir() -> Path:
    return Path(os.environ.get("WSOL_EDGE_CACHE", Path.home() / ".cache" / "wsol_edge")) / "kernels"


def cached_cubin(arch: str) -> bytes:
    """The cubin for ``sm_<arch>``, compiled once per source version and architecture."""
    text = SOURCE.read_text()
    key = hashlib.sha256((text + repr(COMPILE_OPTIONS)).encode()).hexdigest()[:16]
    path = cache_dir() / f"wsol_kernels_{key}_sm{arch}.cubin"
    if path.is_file():
        return path.read_bytes()
    cubin, _ = compile_cubin(arch, text)
    from wsol_edge.atomic import atomic_write_bytes

    atomic_write_bytes(path, cubin)
    return cubin


class BoxKernels:
    """GPU CAM -> box extraction for a batch, all stages on one stream.

    Work buffers are kept between calls (grown when a larger batch comes) so that a camera loop
    pays for launches, not for cudaMalloc; ``close()`` frees them.
    """

    def __init__(self, device: int = 0):
        from wsol_edge.cuda_runtime import cudart

        from cuda.bindings import driver  # pyright: ignore[reportAttributeAccessIssue]

        self.cu, self.rt = driver, cudart()
        self._check(driver.cuInit(0))
        dev = self._check(driver.cuDeviceGet(device))
        major = self._check(driver.cuDeviceGetAttribute(
            driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev))
        minor = self._check(driver.cuDeviceGetAttribute(
            driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))
        self._check(self.rt.cudaSetDevice(device))  # makes the primary context current
        self.arch = f"{major}{minor}"
        self.module = self._check(driver.cuModuleLoadData(cached_cubin(self.arch)))
        self.fn = {k: self._check(driver.cuModuleGetFunction(self.module, k.encode())) for k in KERNELS}
        self._buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self._generation, self._capturing = 0, False  # generation: bumped whenever a buffer is freed (see capture)
        self.classifier_shape: tuple[int, int] | None = None  # (K, C) of the uploaded classifier

    def _check(self, result):
        err, *rest = result
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)

    def _launch(self, name: str, grid: tuple, block: int, args: list, shared: int = 0, stream: int = 0):
        """``args``: (value, ctypes type) pairs, as cuda-python's cuLaunchKernel takes them."""
        vals = tuple(a for a, _ in args)
        types = tuple(t for _, t in args)
        self._check(self.cu.cuLaunchKernel(self.fn[name], *grid, block, 1, 1, shared, stream, (vals, types), 0))

    def _buffer(self, name: str, nbytes: int) -> int:
        """A device buffer of at least ``nbytes`` kept under ``name``; reallocated only to grow.
        The caller's stream must be done with the old one: every public call here ends synchronised."""
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if self._capturing:  # the graph would keep the freed buffer; cudaFree cannot be captured either
                raise RuntimeError(f"buffer {name!r} must grow to {nbytes} bytes during a CUDA graph capture: "
                                   "run the same work once before capturing it")
            if ptr:  # a graph captured before still points here; a first allocation frees nothing
                self._generation += 1
                self._check(self.rt.cudaFree(ptr))
            ptr, size = int(self._check(self.rt.cudaMalloc(max(nbytes, 1)))), max(nbytes, 1)
            self._buffers[name] = (ptr, size)
        return ptr

    def _upload(self, name: str, arr: np.ndarray, stream: int) -> int:
        arr = np.ascontiguousarray(arr)
        ptr = self._buffer(name, arr.nbytes)
        self._check(self.rt.cudaMemcpyAsync(ptr, arr.ctypes.data, arr.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream))
        return ptr

    def _memset(self, ptr: int, nbytes: int, stream: int) -> None:
        self._check(self.rt.cudaMemsetAsync(ptr, 0, nbytes, stream))

    def _download(self, ptr: int, out: np.ndarray, stream: int) -> np.ndarray:
        self._check(self.rt.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes,
                                            self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream))
        self._check(self.rt.cudaStreamSynchronize(stream))
        return out

    def close(self) -> None:
        for ptr, _ in self._buffers.values():
            self.rt.cudaFree(ptr)
        self._buffers.clear()

    def set_classifier(self, weights: np.ndarray) -> None:
        """Upload the classifier [K, C] once (a camera loop then sends only features and classes)."""
        weights = np.asarray(weights, np.float32)
        if weights.ndim != 2:
            raise ValueError(f"classifier weights must be [K, C], got shape {weights.shape}")
        if weights.shape[1] * 4 > 48 * 1024:
            raise ValueError(f"{weights.shape[1]} channels: the classifier row must fit in 48 KiB of shared memory")
        self._upload("cam_weights", weights, 0)
        self._check(self.rt.cudaStreamSynchronize(0))
        self.classifier_shape = weights.shape

    def cams(self, features, class_ids, shape: tuple[int, int, int, int], *, weights: np.ndarray | None = None,
             fp16: bool = False, out: int | None = None, stream: int = 0) -> np.ndarray | None:
        """CAM of one class per image, ``weights[class_ids[b]] . features[b]`` -> [B, h, w] float32
        (kernel (a): FP32 accumulation, FP32 or FP16 features).

        ``features``: [B, C, h, w] (``shape``) float32, or float16 with ``fp16=True``, as a host
        array or a device pointer (e.g. a TensorRT output binding); ``class_ids`` [B] a host array
        (checked) or a device pointer to int64 (e.g. the engine's class_ids output; an id outside
        [0, K) gives an all-zero CAM); ``weights`` [K, C], given here or once with
        ``set_classifier``. Returns the CAMs as a host array, or, given a device pointer ``out``
        (B*h*w float32), enqueues them there on ``stream`` and returns None, so that ``boxes`` or
        ``enqueue_boxes`` take them without a host round trip.
        """
        import ctypes

        if weights is not None:
            self.set_classifier(weights)
        if self.classifier_shape is None:
            raise ValueError("no classifier on the GPU: pass weights= or call set_classifier first")
        K, Cw = self.classifier_shape
        B, C, h, w = shape
        if Cw != C:
            raise ValueError(f"the classifier has {Cw} channels, the features {C}")
        if isinstance(class_ids, int):
            ids_ptr = class_ids
        else:
            ids = np.asarray(class_ids, np.int64).reshape(-1)
            if len(ids) != B:
                raise ValueError(f"class_ids must hold one class per image ({B}), got {len(ids)}")
            if ((ids < 0) | (ids >= K)).any():
                raise ValueError(f"class ids must lie in [0, {K}), got {ids.tolist()}")
            ids_ptr = self._upload("cam_class_ids", ids, stream)
        if isinstance(features, int):
            feats = features
        else:
            arr = np.asarray(features, np.float16 if fp16 else np.float32)
            if arr.shape != tuple(shape):
                raise ValueError(f"features have shape {arr.shape}, expected {tuple(shape)}")
            feats = self._upload("cam_features", arr.view(np.uint16) if fp16 else arr, stream)
        dst = out if out is not None else self._buffer("cam_out", B * h * w * 4)
        i32, ptr = ctypes.c_int, ctypes.c_void_p
        self._launch("cam_fused_f16" if fp16 else "cam_fused_f32", ((h * w + CAM_PIXELS - 1) // CAM_PIXELS, B, 1), BLOCK,
                     [(feats, ptr), (self._buffers["cam_weights"][0], ptr), (ids_ptr, ptr), (dst, ptr), (C, i32),
                      (h * w, i32), (K, i32)], shared=C * 4, stream=stream)
        if out is not None:
            return None
        return self._download(dst, np.empty((B, h, w), np.float32), stream)

    def boxes(self, cams, shape: tuple[int, int, int], thresholds, size: int = 224, stream: int = 0,
              threshold_chunk: int = 8) -> np.ndarray:
        """Boxes [B, T, 4] (int32) for raw CAMs [B, h, w] (float32 device pointer or host array) at
        every threshold, by the largest-8-connected-component rule. Thresholds are processed in
        chunks to bound memory (labels and stats grow with B * T * size^2). A CAM already at
        ``size`` x ``size`` passes the bicubic stage unchanged (a score map, e.g. a test pattern).
        An upsampling tile's source rows must fit in 48 KiB of shared memory: sizes up to 1113 x 1113
        from a 14 x 14 CAM, 680 x 680 for a map already at full size (larger ones are refused in one line)."""
        B, h, w = shape
        upsample_shared_bytes(h, w, size)  # a refusal before the CAMs' upload
        taus = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        T = len(taus)
        if isinstance(cams, int):
            cams_ptr = cams
        else:
            arr = np.asarray(cams, np.float32)
            if arr.shape != tuple(shape):
                raise ValueError(f"cams have shape {arr.shape}, expected {tuple(shape)}")
            cams_ptr = self._upload("box_cams", arr, stream)
        chunk = max(1, min(threshold_chunk, T))
        out = np.zeros((B, T, 4), np.int32)
        for t0 in range(0, T, chunk):
            part = taus[t0:t0 + chunk]
            boxes = self.enqueue_boxes(cams_ptr, shape, self._upload("taus", part, stream), len(part), size, stream,
                                       reserve=chunk, scoremaps=t0 == 0)
            # also orders the next chunk's upload of taus after this chunk's kernels have read them
            out[:, t0:t0 + len(part)] = self._download(boxes, np.zeros((B, len(part), 4), np.int32), stream)
        return out

    def enqueue_boxes(self, cams_ptr: int, shape: tuple[int, int, int], taus_ptr: int, T: int, size: int = 224,
                      stream: int = 0, *, reserve: int | None = None, scoremaps: bool = True) -> int:
        """Enqueue every stage for raw CAMs and T thresholds (float64), all on the GPU, and return
        the device pointer of the boxes [B, T, 4] int32; nothing is copied or synchronised, so a
        CUDA graph can capture it (``capture``). ``scoremaps=False`` reuses the u8 maps of the
        previous call (the next chunk of thresholds); ``reserve`` sizes the buffers for that many
        thresholds. Buffers grow (reallocate) only outside a capture: run once before capturing."""
        import ctypes

        B, h, w = shape
        n = size * size
        rows = upsample_rows_bound(h, size)
        shared = upsample_shared_bytes(h, w, size) if scoremaps else 0  # refused before any allocation or work
        Qmax, Q = B * max(T, reserve or T), B * T
        maps, stats, u8 = self._buffer("maps", B * n * 4), self._buffer("image_stats", B * 4 * 4), self._buffer("u8", B * n)
        labels, cstats = self._buffer("labels", Qmax * n * 4), self._buffer("component_stats", Qmax * n * 5 * 4)
        best, boxes = self._buffer("best", Qmax * 8), self._buffer("boxes", Qmax * 4 * 4)
        i32, u64 = ctypes.c_int, ctypes.c_void_p
        if scoremaps:
            grid_px = ((n + BLOCK - 1) // BLOCK, B, 1)
            self._memset(stats, B * 4 * 4, stream)  # min/max codes, flags and max u8 are accumulated with atomics
            f64 = ctypes.c_double  # cv::resize's scales: 1 / (S / w) in double
            self._launch("upsample_bicubic", ((size + UP_ROWS - 1) // UP_ROWS, B, 1), BLOCK,
                         [(cams_ptr, u64), (maps, u64), (stats, u64), (h, i32), (w, i32), (size, i32),
                          (1.0 / (size / w), f64), (1.0 / (size / h), f64), (rows, i32)], shared=shared, stream=stream)
            self._launch("normalize_quantize", grid_px, BLOCK, [(maps, u64), (stats, u64), (u8, u64), (n, i32)],
                         stream=stream)
        grid_q = ((n + BLOCK - 1) // BLOCK, Q, 1)
        self._launch("ccl_init", grid_q, BLOCK, [(u8, u64), (stats, u64), (taus_ptr, u64), (labels, u64), (cstats, u64),
                                                 (size, i32), (T, i32)], stream=stream)
        self._launch("ccl_merge", grid_q, BLOCK, [(labels, u64), (size, i32)], stream=stream)
        self._launch("ccl_compress_stats", grid_q, BLOCK, [(labels, u64), (cstats, u64), (size, i32)], stream=stream)
        self._memset(best, Q * 8, stream)
        self._launch("ccl_best", grid_q, BLOCK, [(labels, u64), (cstats, u64), (best, u64), (n, i32)], stream=stream)
        self._launch("ccl_box", ((Q + BLOCK - 1) // BLOCK, 1, 1), BLOCK, [(best, u64), (cstats, u64), (boxes, u64),
                                                                        (size, i32), (Q, i32)], stream=stream)
        return boxes

    def stream(self) -> int:
        """A new non-blocking CUDA stream (a graph cannot be captured on the legacy default stream)."""
        return int(self._check(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking)))

    def capture(self, enqueue, stream: int) -> "CudaGraph":
        """A CUDA graph of what ``enqueue(stream)`` puts on ``stream`` (kernels, memsets; no host
        copies or synchronisation), replayed with one launch: a camera loop then pays one API call
        per frame instead of one per stage. The graph holds today's buffers: a buffer that would
        grow during the capture is refused (run the work once first), and ``CudaGraph.launch`` refuses
        once a later call has grown any (re-capture after a larger batch; close graphs before ``close()``)."""
        self._check(self.rt.cudaStreamBeginCapture(stream, self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeRelaxed))
        self._capturing = True
        try:
            enqueue(stream)
        finally:
            self._capturing = False
            graph = self._check(self.rt.cudaStreamEndCapture(stream))
        return CudaGraph(self, graph, self._check(self.rt.cudaGraphInstantiate(graph, 0)))


class CudaGraph:
    def __init__(self, kernels: BoxKernels, graph, exe):
        self.kernels, self.graph, self.exe = kernels, graph, exe
        self.generation = kernels._generation  # the buffers it was captured with

    def launch(self, stream: int) -> None:
        if self.kernels._generation != self.generation:  # its kernels would write freed memory
            raise RuntimeError("the kernels' buffers were reallocated (a larger batch) after this graph was captured: "
                               "capture it again")
        self.kernels._check(self.kernels.rt.cudaGraphLaunch(self.exe, stream))

    def close(self) -> None:
        self.kernels.rt.cudaGraphExecDestroy(self.exe)
        self.kernels.rt.cudaGraphDestroy(self.graph)
