/* cuda_common.cuh — internals shared by the CUDA op families (the .cu files of kernels/cuda): the one
 * checking macro for CUDA / cuBLAS calls and kernel launches, warp/block reductions, f16/bf16
 * helpers, and the launcher prototypes that ops.cu (the op table) calls.
 *
 * Not a public header: nothing outside kernels/cuda/ includes it. Launchers take an already
 * validated struct qp_op_args (ops.cu checks shapes and types), enqueue on a->stream, never
 * allocate, synchronise or read device memory from the host (they run inside graph capture),
 * and return QP_OK or QP_ERR_DEVICE with "file:line: statement: CUDA error" in err.
 */
#pragma once
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <utility>

#include "qp_ggml.h"
#include "qp_kernels.h"
#include "qp_ops.h"
#include "qp_status.h"

/* Every CUDA runtime call goes through this: on failure it names the statement, file and line
 * and returns QP_ERR_DEVICE from the enclosing function (which must take `err`). The runtime
 * prefixes the plan node when it reports the error. */
#define QP_CUDA_CHECK(err, stmt)                                                               \
    do {                                                                                       \
        cudaError_t qp_e_ = (stmt);                                                            \
        if (qp_e_ != cudaSuccess)                                                              \
            return qp_error_set((err), QP_ERR_DEVICE, "%s:%d: %s: %s (%s)", __FILE__, __LINE__, \
                                #stmt, cudaGetErrorString(qp_e_), cudaGetErrorName(qp_e_));     \
    } while (0)

#define QP_CUBLAS_CHECK(err, stmt)                                                             \
    do {                                                                                       \
        cublasStatus_t qp_s_ = (stmt);                                                         \
        if (qp_s_ != CUBLAS_STATUS_SUCCESS)                                                    \
            return qp_error_set((err), QP_ERR_DEVICE, "%s:%d: %s: cuBLAS %s", __FILE__,        \
                                __LINE__, #stmt, cublasGetStatusString(qp_s_));                 \
    } while (0)

/* Programmatic Dependent Launch (PDL, sm_90). A node whose launch says pdl: 1 is launched with
 * cudaLaunchAttributeProgrammaticStreamSerialization, so it may start while the previous kernel
 * in the stream is still running. The rule that keeps this correct: every kernel calls
 * qp_pdl_wait() before it reads anything an earlier kernel wrote or writes anything (only
 * immutable data, the weights, may be touched before), then qp_pdl_trigger() to let the next
 * kernel start. Since every kernel waits for its predecessor's completion before it completes,
 * completion is transitive along the stream. Both are no-ops when the kernel was launched without
 * the attribute (or a cuBLAS kernel precedes it). The compiler sets pdl on the nodes of the
 * decode-sized programs (docs/performance.md has the measurements). */
static __device__ __forceinline__ void qp_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
static __device__ __forceinline__ void qp_pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/* SMs of the current device (read once per translation unit; 1 if the query fails, which only
 * makes grids smaller). */
static inline int qp_cuda_sm_count(void) {
    static int sms = 0;
    if (!sms) {
        int dev = 0, n = 0;
        sms = cudaGetDevice(&dev) == cudaSuccess &&
                      cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && n > 0
                  ? n
                  : 1;
    }
    return sms;
}

/* Launches kernel k, with PDL when pdl (see above) and cooperatively when coop (every block
 * resident at once, or the launch fails with cudaErrorCooperativeLaunchTooLarge: for kernels whose
 * blocks wait on each other, grid_sync.cuh); returns the launch's error. */
template <typename... KArgs, typename... Args>
static cudaError_t qp_cuda_launch_kc(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                                     bool pdl, bool coop, Args &&...args) {
#ifdef QP_KEMU /* tests/kemu/: run on the CPU, at once (a cooperative launch's blocks side by side) */
    (void)pdl;
    return kemu_launch(k, grid, block, smem, st, coop, std::forward<Args>(args)...);
#else
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cudaLaunchAttribute attr[2];
    unsigned n = 0;
    if (pdl) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (coop) {
        attr[n].id = cudaLaunchAttributeCooperative;
        attr[n++].val.cooperative = 1;
    }
    cfg.attrs = attr;
    cfg.numAttrs = n;
    return cudaLaunchKernelEx(&cfg, k, std::forward<Args>(args)...);
#endif
}
template <typename... KArgs, typename... Args>
static cudaError_t qp_cuda_launch_k(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                                    bool pdl, Args &&...args) {
    return qp_cuda_launch_kc(k, grid, block, smem, st, pdl, false, std::forward<Args>(args)...);
}

/* Launch for node a (its stream and pdl) and check the launch (configuration errors show at once;
 * faults show at the next synchronising call, which the runtime attributes to the node). A kernel
 * name with template arguments separated by commas goes in parentheses. */
#define QP_CUDA_LAUNCH(err, kernel, grid, block, smem, a, ...)                                 \
    do {                                                                                       \
        QP_CUDA_CHECK(err, qp_cuda_launch_k(kernel, (grid), (block), (smem), QP_STREAM(a),      \
                                            (a)->launch.pdl != 0, __VA_ARGS__));               \
        QP_CUDA_CHECK(err, cudaPeekAtLastError());                                             \
    } while (0)

#define QP_STREAM(a) ((cudaStream_t)(a)->stream)

/* A kernel's dynamic shared memory (the launch's smem bytes) as `T name[]`. */
#ifdef QP_KEMU
#define QP_DYNAMIC_SMEM(T, name) T *const name = (T *)kemu::dyn_smem()
#else
#define QP_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#endif

static __device__ __forceinline__ float qp_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* The warp sums of N values at once (N a power of two <= 32): returns, in every lane, the sum
 * over the warp of v[(lane >> s) & (N - 1)], s = log2(32 / N); v is overwritten. Each step of
 * the first log2(N) halves the values a lane holds (it keeps one half, sends the other), so N
 * sums cost N - 1 + log2(32 / N) shuffles instead of 5 N. Each sum's order depends on N and the
 * lane only, never on the values. */
template <int N> static __device__ __forceinline__ float qp_warp_sum_n(float (&v)[N], int lane) {
    static_assert(N >= 1 && N <= 32 && (N & (N - 1)) == 0, "N: a power of two up to 32");
    int o = 16;
#pragma unroll
    for (int n = N; n > 1; n >>= 1, o >>= 1) {
        const bool up = lane & o;
#pragma unroll
        for (int i = 0; i < n / 2; i++) {
            const float send = up ? v[i] : v[i + n / 2], keep = up ? v[i + n / 2] : v[i];
            v[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
        }
    }
    float r = v[0];
#pragma unroll
    for (; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
    return r;
}

static __device__ __forceinline__ float qp_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the whole block (blockDim.x a multiple of 32, at most 1024). Every thread gets the
 * result. `red` is __shared__ float[32]. Contains __syncthreads(): call from all threads. */
static __device__ __forceinline__ float qp_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = qp_warp_sum(v);
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return qp_warp_sum(v);
}

/* (value, index) pairs of an argmax: ties go to the smaller index, NaN never wins. */
struct qp_amax {
    float v;
    int32_t i;
};

static __device__ __forceinline__ void qp_amax_merge(float *v, int32_t *i, float v2, int32_t i2) {
    if (v2 > *v || (v2 == *v && i2 < *i)) {
        *v = v2;
        *i = i2;
    }
}

/* Block-wide merge; thread 0 gets the result. Contains __syncthreads(): call from all threads. */
static __device__ __forceinline__ void qp_amax_block(float *v, int32_t *i) {
    __shared__ float sv[32];
    __shared__ int32_t si[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        qp_amax_merge(v, i, __shfl_xor_sync(0xffffffffu, *v, o), __shfl_xor_sync(0xffffffffu, *i, o));
    __syncthreads(); /* sv/si may still be read by a previous call */
    if (lane == 0) {
        sv[warp] = *v;
        si[warp] = *i;
    }
    __syncthreads();
    if (warp == 0) {
        *v = lane < nw ? sv[lane] : -INFINITY;
        *i = lane < nw ? si[lane] : INT32_MAX;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            qp_amax_merge(v, i, __shfl_xor_sync(0xffffffffu, *v, o), __shfl_xor_sync(0xffffffffu, *i, o));
    }
}

/* One element of a KV cache of type C (__half or float) as f32. */
template <typename C> static __device__ __forceinline__ float qp_kv_f32(const C *p) {
    if constexpr (sizeof(C) == 2) return __half2float(*(const __half *)p);
    else return *p;
}

static __device__ __forceinline__ float qp_h2f(uint16_t h) {
    return __half2float(__ushort_as_half(h));
}
static __device__ __forceinline__ float qp_bf2f(uint16_t h) {
    return __uint_as_float((uint32_t)h << 16);
}

/* 1 / rms(x[0..n)) with eps, computed by the whole block (see qp_block_sum). */
static __device__ __forceinline__ float qp_block_inv_rms(const float *x, int64_t n, float eps,
                                                         float *red) {
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += x[i] * x[i];
    s = qp_block_sum(s, red);
    return 1.0f / sqrtf(s / (float)n + eps);
}

/* RoPE (NEOX): cos and sin of the angle of pair i (0 <= i < hd/2) at position pos. The angle
 * and its cos/sin in double, rounded to f32, as the CPU reference (kernels/cpu/rope.c) does:
 * f32 angles would be off by milliradians at long positions. */
static __device__ __forceinline__ double qp_rope_freq(int i, int hd, float base) {
    return pow((double)base, -2.0 * i / hd);
}
/* The same, from pair i's frequency (qp_rope_freq), which does not depend on the position. */
static __device__ __forceinline__ void qp_rope_cs_f(int64_t pos, double freq, float *cs, float *sn) {
    double s, c;
    sincos((double)pos * freq, &s, &c);
    *cs = (float)c;
    *sn = (float)s;
}
static __device__ __forceinline__ void qp_rope_cs(int64_t pos, int i, int hd, float base, float *cs,
                                                  float *sn) {
    qp_rope_cs_f(pos, qp_rope_freq(i, hd, base), cs, sn);
}

/* Records that the calling thread just enqueued kernel id (enum qp_kernel): every launcher calls
 * it where it launches, so qp_cuda_last_kernel (qp_cuda.h) reports what ran, not what was asked. */
void qp_cuda_note_launch(int32_t id);

/* ---- launchers (one per op family; ops.cu validates first) ---- */
enum qp_status qp_cuda_embed(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_rms_norm(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_matvec(const struct qp_op_args *a, struct qp_error *err);
/* matvec_stream.cu: the mmv_stream kernel (weights streamed into shared memory) */
enum qp_status qp_cuda_matvec_stream(const struct qp_op_args *a, struct qp_error *err);
/* matvec_batch.cu: the mmv_batch kernel (each weight decoded once for a group of tokens) */
enum qp_status qp_cuda_matvec_batch(const struct qp_op_args *a, struct qp_error *err);
/* matvec_q8.cu: the mmvq kernel (x quantized to 8 bits, integer dots) */
enum qp_status qp_cuda_matvec_q8(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_gemm(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_rope(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_kv_write(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_attention(const struct qp_op_args *a, struct qp_error *err);
/* attn_prefill.cu: the attn_prefill kernel */
enum qp_status qp_cuda_attn_prefill(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_swiglu(const struct qp_op_args *a, struct qp_error *err);
enum qp_status qp_cuda_add(const struct qp_op_args *a, struct qp_error *err);
/* Two-stage argmax of each of n_rows rows of logits [n_rows][n_cols] into step->rows[t].next,
 * launched for node a (stream, pdl, launch.block threads); scratch holds QP_CUDA_ARGMAX_BLOCKS
 * partials per row. */
enum qp_status qp_cuda_argmax_rows(const struct qp_op_args *a, const float *logits, int64_t n_cols, int n_rows,
                                   void *scratch, struct qp_error *err);
enum qp_status qp_cuda_step_advance(const struct qp_op_args *a, struct qp_error *err);
/* Epilogue of a linear whose raw products (no bias) sit in y [n][rows_total] f32. */
enum qp_status qp_cuda_linear_epilogue(const struct qp_op_args *a, const float *y,
                                       struct qp_error *err);
