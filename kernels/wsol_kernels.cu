// CUDA kernels for CAM computation and thresholded box extraction.
//
// Stages (each one launch for the whole batch; no host round trip between them):
//   cam_fused_{f32,f16}     CAM of a chosen class per image: classifier row x features.
//   upsample_bicubic        raw CAM (h, w) -> (S, S), OpenCV INTER_CUBIC rule (A = -0.75,
//                           half-pixel centres, replicated border), separable: rows then columns,
//                           with the float32 rounding steps of OpenCV's own x86 code path
//                           (compiled with --fmad=false: no contraction into FMA). A float32
//                           transcription of these steps equals cv2.resize bit for bit with IPP
//                           off (tests/test_kernels.py); OpenCV's IPP path rounds the last bit
//                           differently, so the parity suite's reference turns IPP off.
//   minmax_per_image        per-image min, max and a NaN/inf flag (one block per image).
//   normalize_quantize      map -> floor(255 * (v - min) / (max - min)) as uint8; a constant or
//                           non-finite map becomes all zeros (the protocol's guard).
//   ccl_init / ccl_merge / ccl_compress / ccl_stats / ccl_largest_box
//                           8-connected components of (u8 > int(tau * max_u8)) for every
//                           (image, threshold) pair at once, union-find with atomicMin
//                           (Playne & Hawick 2018), per-component pixel count and bounds, and
//                           the box of the component with the MOST PIXELS (ties: lowest root).
//
// The GPU rule for "largest" is pixel count; the wsoleval CPU rule is cv2.contourArea of the
// outer contour. They differ e.g. for a thin ring vs a small solid blob. The CPU reference for
// this rule is wsol_edge.postprocess.boxes.largest_component_box.
// Box: x0 = xmin, y0 = ymin, x1 = min(xmax + 1, S - 1), y1 = min(ymax + 1, S - 1) (the protocol's
// boundingRect convention); no foreground pixel gives (0, 0, 0, 0).

#define WSOL_BLOCK 256

// FP16 -> FP32 by the PTX conversion instruction, so NVRTC needs no cuda_fp16.h include path
// (it is not on the search list of a wheel-only NVRTC install).
__device__ __forceinline__ float half_bits_to_float(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ float load_feature(const float* f) { return *f; }
__device__ __forceinline__ float load_feature(const unsigned short* f) { return half_bits_to_float(*f); }

// One block per (pixel tile, image): the classifier row of the image's class goes to shared
// memory, each thread contracts it with its pixel's C features (accumulated in FP32: FP16 sums
// over 1280 channels would lose the CAM's shape).
template <typename T>
__device__ void cam_fused(const T* __restrict__ features,            // [B, C, HW]
                          const float* __restrict__ weights,         // [K, C]
                          const long long* __restrict__ class_ids,   // [B]
                          float* __restrict__ cams,                  // [B, HW]
                          int C, int HW, int K) {
    extern __shared__ float row[];
    const int b = blockIdx.y;
    const long long k = class_ids[b];
    const bool valid = k >= 0 && k < K;
    for (int c = threadIdx.x; c < C; c += blockDim.x) row[c] = valid ? weights[k * C + c] : 0.0f;
    __syncthreads();
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= HW) return;
    const T* f = features + (size_t)b * C * HW + p;
    float acc = 0.0f;
    for (int c = 0; c < C; ++c) acc = fmaf(row[c], load_feature(f + (size_t)c * HW), acc);
    cams[(size_t)b * HW + p] = acc;
}

extern "C" __global__ void cam_fused_f32(const float* __restrict__ features, const float* __restrict__ weights,
                                         const long long* __restrict__ class_ids, float* __restrict__ cams,
                                         int C, int HW, int K) {
    cam_fused(features, weights, class_ids, cams, C, HW, K);
}

extern "C" __global__ void cam_fused_f16(const unsigned short* __restrict__ features,  // FP16 bits
                                         const float* __restrict__ weights, const long long* __restrict__ class_ids,
                                         float* __restrict__ cams, int C, int HW, int K) {
    cam_fused(features, weights, class_ids, cams, C, HW, K);
}

__device__ __forceinline__ void cubic_coeffs(float x, float* c) {
    const float A = -0.75f;
    c[0] = ((A * (x + 1.f) - 5.f * A) * (x + 1.f) + 8.f * A) * (x + 1.f) - 4.f * A;
    c[1] = ((A + 2.f) * x - (A + 3.f)) * x * x + 1.f;
    c[2] = ((A + 2.f) * (1.f - x) - (A + 3.f)) * (1.f - x) * (1.f - x) + 1.f;
    c[3] = 1.f - c[0] - c[1] - c[2];
}

__device__ __forceinline__ int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// One thread per output pixel of one image; blockIdx.y = image.
extern "C" __global__ void upsample_bicubic(const float* __restrict__ cams,  // [B, h, w]
                                            float* __restrict__ maps,        // [B, S, S]
                                            int h, int w, int S) {
    const int b = blockIdx.y;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= S * S) return;
    const int dy = p / S, dx = p % S;
    const double scale_x = 1.0 / ((double)S / w), scale_y = 1.0 / ((double)S / h);  // as cv::resize: 1 / inv_scale
    float fx = (float)((dx + 0.5) * scale_x - 0.5);
    float fy = (float)((dy + 0.5) * scale_y - 0.5);
    const int sx = (int)floorf(fx), sy = (int)floorf(fy);
    fx -= sx;
    fy -= sy;
    float cx[4], cy[4];
    cubic_coeffs(fx, cx);
    cubic_coeffs(fy, cy);
    const float* src = cams + (size_t)b * h * w;
    float rows[4];
    for (int j = 0; j < 4; ++j) {  // OpenCV's horizontal pass: products added left to right
        const int yy = clampi(sy - 1 + j, 0, h - 1);
        float rowv = 0.f;
        for (int i = 0; i < 4; ++i) rowv = __fadd_rn(rowv, __fmul_rn(cx[i], src[yy * w + clampi(sx - 1 + i, 0, w - 1)]));
        rows[j] = rowv;
    }
    // OpenCV's vertical pass (VResizeCubicVec_32f): r0*b0 + (r1*b1 + (r2*b2 + r3*b3)), no FMA
    float out = __fmul_rn(rows[3], cy[3]);
    for (int j = 2; j >= 0; --j) out = __fadd_rn(__fmul_rn(rows[j], cy[j]), out);
    maps[(size_t)b * S * S + p] = out;
}

// One block per image: min, max, and whether any value is NaN/inf.
extern "C" __global__ void minmax_per_image(const float* __restrict__ maps, float* __restrict__ stats,  // [B, 3]
                                            int n) {
    __shared__ float smin[WSOL_BLOCK], smax[WSOL_BLOCK];
    __shared__ int sbad[WSOL_BLOCK];
    const float* m = maps + (size_t)blockIdx.x * n;
    float lo = __int_as_float(0x7f800000), hi = __int_as_float(0xff800000);  // +inf, -inf (no math.h in NVRTC)
    int bad = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = m[i];
        if (!isfinite(v)) bad = 1;
        else { lo = fminf(lo, v); hi = fmaxf(hi, v); }
    }
    smin[threadIdx.x] = lo; smax[threadIdx.x] = hi; sbad[threadIdx.x] = bad;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            smin[threadIdx.x] = fminf(smin[threadIdx.x], smin[threadIdx.x + s]);
            smax[threadIdx.x] = fmaxf(smax[threadIdx.x], smax[threadIdx.x + s]);
            sbad[threadIdx.x] |= sbad[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        stats[blockIdx.x * 3 + 0] = smin[0];
        stats[blockIdx.x * 3 + 1] = smax[0];
        stats[blockIdx.x * 3 + 2] = (float)sbad[0];
    }
}

// u8 = floor(255 * normalised) with the same float steps as the CPU reference:
// (v - min) / (max - min) in float32, then * 255 and truncation.
extern "C" __global__ void normalize_quantize(float* __restrict__ maps, const float* __restrict__ stats,
                                              unsigned char* __restrict__ u8, int n) {
    const int b = blockIdx.y;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const float lo = stats[b * 3], hi = stats[b * 3 + 1];
    const bool zero = stats[b * 3 + 2] != 0.f || hi == lo;
    const size_t i = (size_t)b * n + p;
    const float v = zero ? 0.f : __fdiv_rn(__fsub_rn(maps[i], lo), __fsub_rn(hi, lo));
    maps[i] = v;
    u8[i] = (unsigned char)__fmul_rn(v, 255.f);
}

// Per (image, threshold) pair q = b * T + t: the threshold in u8 units, int(tau * max_u8).
extern "C" __global__ void u8_thresholds(const unsigned char* __restrict__ u8, const double* __restrict__ taus,
                                         int* __restrict__ cut, int n, int T) {
    __shared__ int smax[WSOL_BLOCK];
    const int b = blockIdx.x;
    int mx = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) mx = max(mx, (int)u8[(size_t)b * n + i]);
    smax[threadIdx.x] = mx;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) smax[threadIdx.x] = max(smax[threadIdx.x], smax[threadIdx.x + s]);
        __syncthreads();
    }
    for (int t = threadIdx.x; t < T; t += blockDim.x) cut[b * T + t] = (int)(taus[t] * (double)smax[0]);
}

__device__ __forceinline__ int find_root(const int* labels, int p) {
    while (labels[p] != p) p = labels[p];
    return p;
}

__device__ void union_roots(int* labels, int a, int b) {
    // Lock-free union: always hang the larger root under the smaller (atomicMin), retry on races.
    while (true) {
        a = find_root(labels, a);
        b = find_root(labels, b);
        if (a == b) return;
        if (a > b) { int t = a; a = b; b = t; }
        const int old = atomicMin(&labels[b], a);
        if (old == b) return;
        b = old;
    }
}

// labels: [Q, n] with Q = B * T pairs; -1 = background, else the pixel's own index (within the pair).
extern "C" __global__ void ccl_init(const unsigned char* __restrict__ u8, const int* __restrict__ cut,
                                    int* __restrict__ labels, int n, int T) {
    const int q = blockIdx.y;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const int b = q / T;
    labels[(size_t)q * n + p] = ((int)u8[(size_t)b * n + p] > cut[q]) ? p : -1;
}

extern "C" __global__ void ccl_merge(int* labels, int S) {
    const int q = blockIdx.y;
    const int n = S * S;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    int* L = labels + (size_t)q * n;
    if (L[p] < 0) return;
    const int y = p / S, x = p % S;
    // 8-connectivity; looking at the 4 "earlier" neighbours covers every pair once.
    if (x > 0 && L[p - 1] >= 0) union_roots(L, p, p - 1);
    if (y > 0) {
        if (L[p - S] >= 0) union_roots(L, p, p - S);
        if (x > 0 && L[p - S - 1] >= 0) union_roots(L, p, p - S - 1);
        if (x + 1 < S && L[p - S + 1] >= 0) union_roots(L, p, p - S + 1);
    }
}

extern "C" __global__ void ccl_compress(int* labels, int n) {
    const int q = blockIdx.y;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    int* L = labels + (size_t)q * n;
    if (L[p] >= 0) L[p] = find_root(L, p);
}

// stats: [Q, n, 5] per root: area, xmin, ymin, xmax, ymax (initialised by ccl_stats_init).
extern "C" __global__ void ccl_stats_init(int* stats, long long count) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    const int field = (int)(i % 5);
    stats[i] = (field == 0 || field >= 3) ? 0 : 0x7fffffff;
}

extern "C" __global__ void ccl_stats(const int* __restrict__ labels, int* __restrict__ stats, int S) {
    const int q = blockIdx.y;
    const int n = S * S;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n) return;
    const int r = labels[(size_t)q * n + p];
    if (r < 0) return;
    int* s = stats + ((size_t)q * n + r) * 5;
    atomicAdd(&s[0], 1);
    atomicMin(&s[1], p % S);
    atomicMin(&s[2], p / S);
    atomicMax(&s[3], p % S);
    atomicMax(&s[4], p / S);
}

// One block per pair: the root with the largest area (ties: lowest root index) -> box [Q, 4].
extern "C" __global__ void ccl_largest_box(const int* __restrict__ labels, const int* __restrict__ stats,
                                           int* __restrict__ boxes, int S) {
    __shared__ long long best[WSOL_BLOCK];
    const int q = blockIdx.x;
    const int n = S * S;
    long long mine = -1;  // key = area * 2^32 + (2^31 - 1 - root): max key = most pixels, then lowest root
    for (int p = threadIdx.x; p < n; p += blockDim.x) {
        if (labels[(size_t)q * n + p] == p) {
            const long long area = stats[((size_t)q * n + p) * 5];
            const long long key = (area << 32) | (long long)(0x7fffffff - p);
            if (key > mine) mine = key;
        }
    }
    best[threadIdx.x] = mine;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s && best[threadIdx.x + s] > best[threadIdx.x]) best[threadIdx.x] = best[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        int* out = boxes + q * 4;
        if (best[0] < 0) { out[0] = out[1] = out[2] = out[3] = 0; return; }
        const int root = 0x7fffffff - (int)(best[0] & 0xffffffffLL);
        const int* s = stats + ((size_t)q * n + root) * 5;
        out[0] = s[1];
        out[1] = s[2];
        out[2] = min(s[3] + 1, S - 1);
        out[3] = min(s[4] + 1, S - 1);
    }
}
