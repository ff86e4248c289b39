// CUDA kernels for CAM computation and thresholded box extraction.
//
// Stages (each one launch for the whole batch; no host round trip between them):
//   cam_fused_{f32,f16}     CAM of a chosen class per image: classifier row x features, the
//                           channels split over 8 warps and summed in a fixed order.
//   upsample_bicubic        raw CAM (h, w) -> (S, S), OpenCV INTER_CUBIC rule (A = -0.75,
//                           half-pixel centres, replicated border), separable: rows then columns
//                           (the rows' pass once per source row and tile, in shared memory),
//                           with the float32 rounding steps of OpenCV's own x86 code path
//                           (compiled with --fmad=false: no contraction into FMA). A float32
//                           transcription of these steps equals cv2.resize bit for bit with IPP
//                           off (tests/test_kernels.py); OpenCV's IPP path rounds the last bit
//                           differently, so the parity suite's reference turns IPP off.
//                           Also gathers each image's min, max and a NaN/inf flag (block
//                           reduction, then one atomic per block on order-preserving integer
//                           codes of the floats: min and max do not depend on the order).
//   normalize_quantize      map -> floor(255 * (v - min) / (max - min)) as uint8; a constant or
//                           non-finite map becomes all zeros (the protocol's guard); also each
//                           image's largest u8 value, which the thresholds scale.
//   ccl_init / ccl_merge / ccl_compress_stats / ccl_best / ccl_box
//                           8-connected components of (u8 > int(tau * max_u8)) for every
//                           (image, threshold) pair at once: horizontal runs first (a warp
//                           ballot), then union-find with atomicMin between runs of neighbouring
//                           rows (Playne & Hawick 2018, one union per pair of touching runs),
//                           per-component pixel count and bounds (aggregated per warp before the
//                           atomics), and the box of the component with the MOST PIXELS (ties:
//                           lowest root).
//
// Per-image stats [B, 4] (unsigned): ~code(min) and code(max) accumulated with atomicMax, the
// NaN/inf flag, max u8; the host zeroes them before each batch (zero is below every code).
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

#define CAM_GROUPS 8  // warps per CAM block, each summing every 8th channel for 32 pixels

// One block per (32-pixel tile, image): the classifier row of the image's class goes to shared
// memory; warp g sums channels g, g + 8, ... for its 32 pixels (a warp's loads are one 128-byte
// line per channel), then the 8 partial sums are added in a fixed order (deterministic). FP32
// accumulation: FP16 sums over 1280 channels would lose the CAM's shape.
template <typename T>
__device__ void cam_fused(const T* __restrict__ features,            // [B, C, HW]
                          const float* __restrict__ weights,         // [K, C]
                          const long long* __restrict__ class_ids,   // [B]
                          float* __restrict__ cams,                  // [B, HW]
                          int C, int HW, int K) {
    extern __shared__ float row[];
    __shared__ float partial[CAM_GROUPS][32];
    const int b = blockIdx.y;
    const long long k = class_ids[b];
    const bool valid = k >= 0 && k < K;
    for (int c = threadIdx.x; c < C; c += blockDim.x) row[c] = valid ? weights[k * C + c] : 0.0f;
    __syncthreads();
    const int lane = threadIdx.x & 31, g = threadIdx.x >> 5;
    const int p = blockIdx.x * 32 + lane;
    float acc = 0.0f;
    if (p < HW) {
        const T* f = features + (size_t)b * C * HW + p;
#pragma unroll 8
        for (int c = g; c < C; c += CAM_GROUPS) acc = fmaf(row[c], load_feature(f + (size_t)c * HW), acc);
    }
    partial[g][lane] = acc;
    __syncthreads();
    if (g == 0 && p < HW) {
        float sum = partial[0][lane];
        for (int j = 1; j < CAM_GROUPS; ++j) sum = __fadd_rn(sum, partial[j][lane]);
        cams[(size_t)b * HW + p] = sum;
    }
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

// Order-preserving code of a (non-NaN) float as an unsigned int: a < b  <=>  code(a) < code(b).
__device__ __forceinline__ unsigned float_code(float f) {
    const unsigned u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float code_float(unsigned c) {
    return __uint_as_float((c & 0x80000000u) ? (c & 0x7fffffffu) : ~c);
}

#define UP_ROWS 8  // output rows per upsampling block

// One block per (UP_ROWS output rows, image), separable as OpenCV is: the horizontal pass of each
// source row the tile needs is computed once into shared memory, then every output pixel takes
// 4 of those (the same float steps as one pixel at a time, with a sixth of the instructions:
// the per-pixel version was instruction-bound, ncu: 78% issue slots busy). The block also
// gathers its min, max and NaN/inf flag into stats [B, 4] (zeroed by the host).
// scale_x, scale_y: 1 / (S / w) and 1 / (S / h) in double, as cv::resize computes them.
// max_rows: the host's bound on the source rows one tile needs (sizes the shared memory).
extern "C" __global__ void upsample_bicubic(const float* __restrict__ cams,  // [B, h, w]
                                            float* __restrict__ maps,        // [B, S, S]
                                            unsigned* __restrict__ stats,
                                            int h, int w, int S, double scale_x, double scale_y, int max_rows) {
    extern __shared__ float smem[];
    float* tap = smem;                         // [S][4] horizontal weights per output column
    int* first = (int*)(smem + 4 * S);         // [S]    its first source column (before clamping)
    float* ytap = smem + 5 * S;                // [UP_ROWS][4]
    int* yfirst = (int*)(ytap + 4 * UP_ROWS);  // [UP_ROWS]
    float* hpass = ytap + 5 * UP_ROWS;         // [max_rows][S]
    __shared__ float smin[WSOL_BLOCK / 32], smax[WSOL_BLOCK / 32];
    __shared__ int sbad[WSOL_BLOCK / 32];
    const int b = blockIdx.y;
    const int y0 = blockIdx.x * UP_ROWS, rows = min(UP_ROWS, S - y0);
    const float* src = cams + (size_t)b * h * w;
    for (int dx = threadIdx.x; dx < S; dx += blockDim.x) {
        float fx = (float)((dx + 0.5) * scale_x - 0.5);
        const int sx = (int)floorf(fx);
        cubic_coeffs(fx - sx, tap + 4 * dx);
        first[dx] = sx - 1;
    }
    if (threadIdx.x < rows) {
        float fy = (float)((y0 + threadIdx.x + 0.5) * scale_y - 0.5);
        const int sy = (int)floorf(fy);
        cubic_coeffs(fy - sy, ytap + 4 * threadIdx.x);
        yfirst[threadIdx.x] = sy - 1;
    }
    __syncthreads();
    // the rows' first source rows grow with the output row, so the tile reads [yfirst[0], yfirst[rows - 1] + 3]
    const int r0 = yfirst[0], nv = yfirst[rows - 1] + 4 - r0;
    if (nv > max_rows) __trap();  // the host's bound is wrong: fail the launch, never write past shared memory
    for (int j = 0; j < nv; ++j) {
        const float* line = src + clampi(r0 + j, 0, h - 1) * w;
        for (int dx = threadIdx.x; dx < S; dx += blockDim.x) {  // OpenCV's horizontal pass: products added left to right
            const float* c = tap + 4 * dx;
            float v = 0.f;
            for (int i = 0; i < 4; ++i) v = __fadd_rn(v, __fmul_rn(c[i], line[clampi(first[dx] + i, 0, w - 1)]));
            hpass[j * S + dx] = v;
        }
    }
    __syncthreads();
    float lo = __int_as_float(0x7f800000), hi = __int_as_float(0xff800000);  // +inf, -inf (no math.h in NVRTC)
    int bad = 0;
    for (int r = 0; r < rows; ++r) {
        const float* cy = ytap + 4 * r;
        const int base = (yfirst[r] - r0) * S;
        for (int dx = threadIdx.x; dx < S; dx += blockDim.x) {
            const float* col = hpass + base + dx;
            // OpenCV's vertical pass (VResizeCubicVec_32f): r0*b0 + (r1*b1 + (r2*b2 + r3*b3)), no FMA
            float out = __fmul_rn(col[3 * S], cy[3]);
            for (int j = 2; j >= 0; --j) out = __fadd_rn(__fmul_rn(col[j * S], cy[j]), out);
            maps[(size_t)b * S * S + (size_t)(y0 + r) * S + dx] = out;
            if (!isfinite(out)) bad = 1;
            else { lo = fminf(lo, out); hi = fmaxf(hi, out); }
        }
    }
    for (int off = 16; off > 0; off >>= 1) {
        lo = fminf(lo, __shfl_down_sync(0xffffffffu, lo, off));
        hi = fmaxf(hi, __shfl_down_sync(0xffffffffu, hi, off));
        bad |= __shfl_down_sync(0xffffffffu, bad, off);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { smin[warp] = lo; smax[warp] = hi; sbad[warp] = bad; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < WSOL_BLOCK / 32; ++i) {
            lo = fminf(lo, smin[i]);
            hi = fmaxf(hi, smax[i]);
            bad |= sbad[i];
        }
        unsigned* s = stats + b * 4;
        if (lo <= hi) {  // the block saw a finite value
            atomicMax(&s[0], ~float_code(lo));
            atomicMax(&s[1], float_code(hi));
        }
        if (bad) atomicOr(&s[2], 1u);
    }
}

// u8 = floor(255 * normalised) with the same float steps as the CPU reference:
// (v - min) / (max - min) in float32, then * 255 and truncation; stats[b][3] = max u8.
extern "C" __global__ void normalize_quantize(const float* __restrict__ maps, unsigned* __restrict__ stats,
                                              unsigned char* __restrict__ u8, int n) {
    __shared__ unsigned smax[WSOL_BLOCK / 32];
    const int b = blockIdx.y;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned q = 0;
    if (p < n) {
        const unsigned* s = stats + b * 4;
        const float lo = code_float(~s[0]), hi = code_float(s[1]);
        const bool zero = s[2] != 0u || hi == lo;
        const size_t i = (size_t)b * n + p;
        const float v = zero ? 0.f : __fdiv_rn(__fsub_rn(maps[i], lo), __fsub_rn(hi, lo));
        q = (unsigned char)__fmul_rn(v, 255.f);
        u8[i] = (unsigned char)q;
    }
    for (int off = 16; off > 0; off >>= 1) q = max(q, __shfl_down_sync(0xffffffffu, q, off));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) smax[warp] = q;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < WSOL_BLOCK / 32; ++i) q = max(q, smax[i]);
        atomicMax(&stats[b * 4 + 3], q);
    }
}

// labels: [Q, n] with Q = B * T pairs (q = b * T + t); -1 = background. The cut in u8 units is
// int(tau * max_u8), as the CPU reference computes it. Each foreground pixel starts pointing at
// the first pixel of its horizontal run inside its warp (one ballot), or at the pixel before the
// warp when the run comes from there: a row's runs are trees before any union, so the merge
// only has to join runs of neighbouring rows. A pixel that is its own label (a run's start) may
// become a component's root: its stats [Q, n, 5] are zeroed here.
extern "C" __global__ void ccl_init(const unsigned char* __restrict__ u8, const unsigned* __restrict__ stats,
                                    const double* __restrict__ taus, int* __restrict__ labels,
                                    int* __restrict__ cstats, int S, int T) {
    const int q = blockIdx.y;
    const int n = S * S;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;  // no early return before the ballots
    const int b = q / T;
    const int cut = (int)(taus[q % T] * (double)stats[b * 4 + 3]);
    const unsigned char* U = u8 + (size_t)b * n;
    const bool in = p < n;
    const bool fg = in && (int)U[p] > cut;
    const unsigned fg_lanes = __ballot_sync(0xffffffffu, fg);
    const unsigned row_starts = __ballot_sync(0xffffffffu, in && p % S == 0);
    if (!in) return;
    int* L = labels + (size_t)q * n;
    if (!fg) { L[p] = -1; return; }
    const int lane = threadIdx.x & 31;
    const unsigned upto = lane == 31 ? 0xffffffffu : (1u << (lane + 1)) - 1u;  // lanes 0..lane
    const unsigned gaps = ~fg_lanes & upto, rows = row_starts & upto;
    int start = gaps ? 32 - __clz(gaps) : 0;             // after the last background lane before this one
    if (rows) start = max(start, 31 - __clz(rows));      // not before this row's first pixel
    const int p0 = p - lane + start;
    const int label = (start == 0 && p0 % S != 0 && (int)U[p0 - 1] > cut) ? p0 - 1 : p0;
    L[p] = label;
    if (label == p) {
        int* s = cstats + ((size_t)q * n + p) * 5;
        s[0] = s[1] = s[2] = s[3] = s[4] = 0;
    }
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

// 8-connectivity between a run of row y and the runs of row y - 1 touching columns
// [start - 1, end + 1]: one union per touching run. The run's first pixel joins the run over
// its up-left (else up) neighbour; any pixel whose up-right neighbour starts a run above
// (up is background, up-right is not) joins that one. Together they reach every touching run.
extern "C" __global__ void ccl_merge(int* labels, int S) {
    const int q = blockIdx.y;
    const int n = S * S;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= n || p < S) return;
    int* L = labels + (size_t)q * n;
    if (L[p] < 0) return;
    const int x = p % S;
    const bool up = L[p - S] >= 0;
    if (x == 0 || L[p - 1] < 0) {
        if (x > 0 && L[p - S - 1] >= 0) union_roots(L, p, p - S - 1);
        else if (up) union_roots(L, p, p - S);
    }
    if (x + 1 < S && !up && L[p - S + 1] >= 0) union_roots(L, p, p - S + 1);
}

// Every foreground pixel to its root, and the root's stats: area, S-1-xmin, S-1-ymin, xmax, ymax
// (kept as maxima so that the zeros ccl_init wrote are the identity). Lanes of a warp with the
// same root (consecutive pixels of one run, usually) combine theirs first; one lane per root and
// warp then does the five atomics: a large component would otherwise send every pixel's atomics
// to the same five words.
extern "C" __global__ void ccl_compress_stats(int* labels, int* __restrict__ cstats, int S) {
    const int q = blockIdx.y;
    const int n = S * S;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;  // no early return: every lane takes part in the match
    int* L = labels + (size_t)q * n;
    int r = -1;
    if (p < n && L[p] >= 0) {
        r = find_root(L, p);
        L[p] = r;
    }
    const unsigned group = __match_any_sync(0xffffffffu, r);
    if (r < 0) return;
    const int x = p % S, y = p / S;
    const int xmin_flip = __reduce_max_sync(group, S - 1 - x), xmax = __reduce_max_sync(group, x);
    const int ymin_flip = __reduce_max_sync(group, S - 1 - y), ymax = __reduce_max_sync(group, y);
    if ((threadIdx.x & 31) != __ffs(group) - 1) return;
    int* s = cstats + ((size_t)q * n + r) * 5;
    atomicAdd(&s[0], __popc(group));
    atomicMax(&s[1], xmin_flip);
    atomicMax(&s[2], ymin_flip);
    atomicMax(&s[3], xmax);
    atomicMax(&s[4], ymax);
}

// best[q] = max over roots of key = area * 2^32 + (2^31 - 1 - root): the most pixels, then the
// lowest root (zeroed by the host; 0 = no component). Block reduction, one atomic per block.
extern "C" __global__ void ccl_best(const int* __restrict__ labels, const int* __restrict__ stats,
                                    unsigned long long* __restrict__ best, int n) {
    __shared__ unsigned long long sbest[WSOL_BLOCK / 32];
    const int q = blockIdx.y;
    const int p = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long key = 0;
    if (p < n && labels[(size_t)q * n + p] == p) {
        const unsigned long long area = (unsigned)stats[((size_t)q * n + p) * 5];
        key = (area << 32) | (unsigned long long)(0x7fffffff - p);
    }
    for (int off = 16; off > 0; off >>= 1) {
        const unsigned long long other = __shfl_down_sync(0xffffffffu, key, off);
        if (other > key) key = other;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sbest[warp] = key;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < WSOL_BLOCK / 32; ++i) if (sbest[i] > key) key = sbest[i];
        if (key) atomicMax(&best[q], key);
    }
}

// One thread per pair: the best root's box -> boxes [Q, 4].
extern "C" __global__ void ccl_box(const unsigned long long* __restrict__ best, const int* __restrict__ stats,
                                   int* __restrict__ boxes, int S, int Q) {
    const int q = blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= Q) return;
    const int n = S * S;
    int* out = boxes + q * 4;
    const unsigned long long key = best[q];
    if (key == 0) { out[0] = out[1] = out[2] = out[3] = 0; return; }
    const int root = 0x7fffffff - (int)(key & 0xffffffffULL);
    const int* s = stats + ((size_t)q * n + root) * 5;
    out[0] = S - 1 - s[1];
    out[1] = S - 1 - s[2];
    out[2] = min(s[3] + 1, S - 1);
    out[3] = min(s[4] + 1, S - 1);
}
