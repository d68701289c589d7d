/* bench_persistent.cu — the decode step's chain of linears run by one resident kernel against the
 * same work as a CUDA Graph of one kernel per node: what decides whether a resident decode engine
 * pays. Numbers go to bench/RESULTS.md and docs/performance.md with card, date and commit.
 *
 * The work. The linears of a Qwen2.5-0.5B decode step, layer after layer: q/k/v 1152 x 896,
 * attn_output 896 x 896, ffn_gate_up 9728 x 896, ffn_down 896 x 4864 (4 nodes a layer, 24 layers;
 * no attention, norms or epilogues). Node n reads node n - 1's output (its first `cols` values)
 * and writes its own, so every node depends on all of the previous one, as in the real step.
 * Weights are valid random GGML blocks (qp_quant_random_row) of the types of the Q4_K_M file:
 * Q5_0 for q/k/v, attn_output and gate+up, ffn_down Q6_K and Q4_K on alternate layers (the file's
 * attn_v is Q8_0 or Q6_K; here it is Q5_0 with q and k); --type T gives every node type T. Each
 * row is padded to 16 bytes, so that a block's rows are one contiguous, aligned byte range.
 *
 * The same tile code runs in both engines (tile_issue, tile_compute below): a block's rows of a
 * node are fetched into shared memory by one bulk copy (the copy engine, completing on an
 * mbarrier), x is staged from L2 in matvec_stage.cuh's padded layout, each warp dots whole rows,
 * a lane per 32-weight sub-chunk through quant_dot.cuh's qp_dot32 (the decoders of mmv_stream),
 * lane 0 writes each row's value.
 *   graph       one launch per node with PDL: the bulk copy is issued before the PDL wait (it
 *               reads only weights), so it overlaps the previous node's tail, as mmv_stream does
 *   persistent  one cooperative launch for the whole chain; two weight buffers per block: node
 *               n + 1's copy is issued before the wait for node n's input (a grid_sync.cuh
 *               counter that every block adds 1 to after writing its rows), so the weight stream
 *               never stops at a node boundary and the boundary is one counter wait, not a launch
 *   late copy   the counter engine issuing node n + 1's copy after node n's x is staged, not
 *               before its wait, so that the copy does not queue ahead of x's loads
 *   flags       the same kernel, but each block counts its own finished nodes in a word of its
 *               own, and a block's warps wait only for the blocks whose rows of node n - 1 they
 *               stage, staging each producer's rows as soon as it is done (stage_x_flags): no
 *               132-way atomic on one word, and x loaded while the late producers still run
 * Both are captured in a CUDA Graph and replayed; time = median of --reps replays (CUDA events)
 * after 3 warm-ups. Every run checks the four engines' outputs equal bit for bit (same code, same
 * order), and --check compares them with a double-precision CPU chain over the dequantised
 * weights (rel L2 <= 1e-4: f32 dots of <= 4,864 terms err by ~1e-6 relative a node; the weights'
 * standard deviation 1 / sqrt(cols) keeps the chain's norm).
 * The read ceiling is bench_read.cuh's streaming read of the same weight buffer. A third timing
 * runs the persistent kernel without its counter waits (into its own buffers: the results are
 * wrong, nothing checks them): the difference is what the waits cost, skew between blocks included.
 *
 * Where the time goes: one more replay of each engine with a trace (thread 0 of every block reads
 * its SM clock at four points of every node: start; input ready, i.e. after the PDL wait or the
 * counter wait; x staged and the weights landed; rows written), printed per node kind as the mean
 * over layers and blocks of wait, load (x and the rest of the weights) and compute, in µs at the
 * card's clock. The traced replays are not the timed ones.
 *
 * Usage: bench_persistent [--layers N (24)] [--reps N (20)] [--type Q4_0|Q5_0|Q8_0|Q4_K|Q6_K]
 *                         [--blocks-per-sm 1|2] [--check]
 *   --blocks-per-sm 2  every engine with two blocks an SM (each half the rows; 64 registers a
 *                      thread): two tiles in flight on each SM
 * Also built for the CPU emulator (bench_persistent_emu: a smoke run of the logic, and with
 * --layers 1 --reps 1 --check the test bench_persistent_emu of tests/kemu.cmake).
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "bench_cuda.h"
#include "qp_ggml.h"
#include "qp_quant.h"
#include "bench_read.cuh"
#include "bulk_copy.cuh"
#include "cuda_common.cuh"
#include "grid_sync.cuh"
#include "matvec_stage.cuh"
#include "quant_dot.cuh"

#define THREADS 512
#define WARPS (THREADS / 32)
#define ACT_MAX 9728 /* the widest output (ffn_gate_up) */
#define X_MAX 4864   /* the widest input (ffn_down) */
/* a wait that should complete: far above any healthy one, even on the emulator */
#define BOUND_NS 60000000000ull

struct pnode {
    const uint8_t *w;  /* [rows][stride] */
    int type, rows, cols;
    uint32_t stride;   /* bytes a row: the GGML row rounded up to 16 */
};

/* the rows [r0, r1) block b of G owns */
static __host__ __device__ inline void rows_of(int rows, int G, int b, int *r0, int *r1) {
    const int per = (rows + G - 1) / G;
    *r0 = b * per < rows ? b * per : rows;
    *r1 = *r0 + per < rows ? *r0 + per : rows;
}

/* Thread 0: the block's rows of node d into buf, completing the barrier's current phase (a block
 * with no rows completes it with nothing). */
static __device__ __forceinline__ void tile_issue(const pnode &d, uint8_t *buf, uint64_t *bar) {
    int r0, r1;
    rows_of(d.rows, gridDim.x, blockIdx.x, &r0, &r1);
    const uint32_t bytes = (uint32_t)(r1 - r0) * d.stride;
    qp_mbar_arrive_tx(bar, bytes);
    if (bytes) qp_bulk_copy(buf, d.w + (size_t)r0 * d.stride, bytes, bar);
}

/* x[i] for i = first, first + step, ... below hi (written by other blocks: read through L2) into
 * shared memory, sub-chunk s of 32 floats at xs + s * QP_XS_STRIDE (matvec_stage.cuh: the pad keeps
 * the lanes' float4 loads apart) */
static __device__ __forceinline__ void stage_x(const float *x, float *xs, int first, int hi, int step) {
    for (int i = first; i < hi; i += step) xs[(i >> 5) * QP_XS_STRIDE + (i & 31)] = __ldcg(x + i);
}

/* The block's rows of node d from buf, x from xs: a warp per row, lane l dotting sub-chunks
 * l, l + 32, ... (qp_dot32, as mmv_stream's one-token path), the warp summing the lanes. */
template <int T>
static __device__ __forceinline__ void tile_rows(const pnode &d, const uint8_t *buf, const float *xs, float *y) {
    using Q = qp_qt<T>;
    int r0, r1;
    rows_of(d.rows, gridDim.x, blockIdx.x, &r0, &r1);
    const int n = r1 - r0, subs = d.cols / 32, lane = threadIdx.x & 31;
    for (int i = threadIdx.x >> 5; i < n; i += WARPS) {
        const uint8_t *row = buf + (size_t)i * d.stride;
        float acc = 0.0f;
        for (int s = lane; s < subs; s += 32)
            acc += qp_dot32<T, qp_lds>(row + (s / Q::SUBS) * Q::BYTES, s % Q::SUBS, xs + s * QP_XS_STRIDE);
        acc = qp_warp_sum(acc);
        if (lane == 0) y[r0 + i] = acc;
    }
}

#define BENCH_TYPES(X) X(QP_GGML_Q4_0) X(QP_GGML_Q5_0) X(QP_GGML_Q8_0) X(QP_GGML_Q4_K) X(QP_GGML_Q6_K)
static __device__ __forceinline__ void tile_compute(const pnode &d, const uint8_t *buf, const float *xs, float *y) {
#define BENCH_TYPE_CASE(T_) \
    case T_: tile_rows<T_>(d, buf, xs, y); return;
    switch (d.type) {
        BENCH_TYPES(BENCH_TYPE_CASE)
    default: return; /* main admits no other type */
    }
#undef BENCH_TYPE_CASE
}

/* The trace: SM clock of phase k (0 start, 1 input ready, 2 x and weights in, 3 rows written) of
 * node n in this block, by thread 0, when a trace buffer is given. */
#define TRACE_PHASES 4
static __device__ __forceinline__ void trace_at(long long *trace, int n, int k) {
    if (trace && threadIdx.x == 0) trace[((size_t)n * gridDim.x + blockIdx.x) * TRACE_PHASES + k] = clock64();
}

/* The graph engine's node: copies first (weights only), then the PDL wait, x, the dots. */
template <int MINB>
static __global__ void __launch_bounds__(THREADS, MINB) node_kernel(const pnode d, const float *in, float *out,
                                                                 uint32_t wbuf, long long *trace, int n) {
    QP_DYNAMIC_SMEM(float4, smem4);
    __shared__ uint64_t bar;
    uint8_t *buf = (uint8_t *)smem4;
    float *xs = (float *)(buf + 2 * (size_t)wbuf);
    trace_at(trace, n, 0);
    if (threadIdx.x == 0) {
        qp_mbar_init(&bar);
        tile_issue(d, buf, &bar);
    }
    qp_pdl_wait();
    qp_pdl_trigger();
    trace_at(trace, n, 1);
    stage_x(in, xs, threadIdx.x, d.cols, THREADS);
    __syncthreads(); /* the barrier initialised, x staged */
    qp_mbar_wait(&bar, 0);
    trace_at(trace, n, 2);
    tile_compute(d, buf, xs, out);
    __syncthreads();
    trace_at(trace, n, 3);
}

/* Node n reads in(n) and writes out(n): the chain's input, then two buffers in turn. */
static __host__ __device__ inline const float *node_in(const float *x0, const float *act, int n) {
    return n == 0 ? x0 : act + (size_t)((n - 1) & 1) * ACT_MAX;
}
static __host__ __device__ inline float *node_out(float *act, int n) { return act + (size_t)(n & 1) * ACT_MAX; }

/* How the persistent kernel waits for node n - 1 before node n. */
enum { WAIT_NONE, WAIT_COUNTER, WAIT_FLAGS };
#define N_ENGINES 5 /* the graph and four persistent schedules (main's eng) */

/* WAIT_FLAGS: the block's x of node n (the first cols values of node n - 1's output), staged as
 * their producers finish. Warp w takes producers [w * P, (w + 1) * P) (P = blocks / warps,
 * rounded up); lane l waits for producer w * P + l's flag to reach target (acquire), then the warp
 * stages the rows those producers wrote, as one contiguous range. The early producers' rows are
 * loaded while the late ones still run. False when a wait timed out. */
static __device__ __forceinline__ bool stage_x_flags(const pnode &prev, int cols, const float *x, float *xs,
                                                     const unsigned long long *flags, unsigned long long target,
                                                     unsigned task, qp_watch *w) {
    const int G = (int)gridDim.x, P = (G + WARPS - 1) / WARPS, lane = threadIdx.x & 31;
    const int j0 = (threadIdx.x >> 5) * P, j1 = j0 + P < G ? j0 + P : G;
    bool ok = true;
    int r0, r1;
    if (j0 + lane < j1) {
        rows_of(prev.rows, G, j0 + lane, &r0, &r1);
        if (r0 < cols) ok = qp_counter_wait(flags + j0 + lane, target, task, w, BOUND_NS);
    }
    ok = __all_sync(0xffffffffu, ok);
    __syncwarp(); /* each lane's acquire ordered before every lane's loads below */
    if (!ok || j0 >= j1) return ok;
    int lo, hi, t;
    rows_of(prev.rows, G, j0, &lo, &t);
    rows_of(prev.rows, G, j1 - 1, &t, &hi);
    if (hi > cols) hi = cols;
    stage_x(x, xs, lo + lane, hi, 32);
    return true;
}

/* The persistent engine: every node of the chain in one launch. WAIT_COUNTER: counter ctr gets
 * one arrival per block per node, and node n waits for all of node n - 1's; this launch's base is
 * launches x nn x blocks (launches: how many WAIT_NONE / WAIT_COUNTER launches ran before, bumped
 * by block 0 at the end, after every block has read it: block 0 cannot end before every block has
 * arrived at node nn - 2). WAIT_NONE: no wait at all (wrong results; the waits' cost); it adds to
 * ctr and bumps launches like WAIT_COUNTER, and a block that reads launches after block 0's bump
 * only mis-sizes targets it never waits for. WAIT_FLAGS: block b's own counter flags[b] gets 1 per
 * node, and node n waits only for the blocks whose rows of node n - 1 it reads (stage_x_flags).
 * Some blocks are waited for by nobody (the rows of gate+up that ffn_down does not read), so block 0
 * may end before another block starts: the base is each block's own flag at the start (every
 * launch adds nn to every flag, and the previous launch has ended), not a launch count. */
template <int MINB>
static __global__ void __launch_bounds__(THREADS, MINB)
    persistent_kernel(const pnode *__restrict__ nodes, int nn, const float *x0, float *act, uint32_t wbuf,
                      unsigned long long *ctr, unsigned long long *flags, unsigned long long *launches, qp_watch *w,
                      long long *trace, int wait, int late) {
    QP_DYNAMIC_SMEM(float4, smem4);
    __shared__ uint64_t bar[2];
    __shared__ int ok;
    uint8_t *buf = (uint8_t *)smem4;
    float *xs = (float *)(buf + 2 * (size_t)wbuf);
    const unsigned long long G = gridDim.x, base = __ldcg(launches) * (unsigned long long)nn * G;
    const unsigned long long nl = wait == WAIT_FLAGS ? __ldcg(flags + blockIdx.x) : 0; /* nodes done before */
    if (threadIdx.x == 0) {
        qp_mbar_init(&bar[0]);
        qp_mbar_init(&bar[1]);
        tile_issue(nodes[0], buf, &bar[0]);
    }
    __syncthreads();
    for (int n = 0; n < nn; n++) {
        const pnode d = nodes[n];
        /* thread 0: node n + 1's rows into the other buffer (node n - 1's, read by now) */
        const auto issue_next = [&] {
            if (n + 1 < nn) tile_issue(nodes[n + 1], buf + (size_t)((n + 1) & 1) * wbuf, &bar[(n + 1) & 1]);
        };
        trace_at(trace, n, 0);
        if (threadIdx.x == 0) {
            if (!late) issue_next();
            /* node n - 1 written by every block */
            ok = n == 0 || wait != WAIT_COUNTER ||
                 qp_counter_wait(ctr, base + (unsigned long long)n * G, (unsigned)n, w, BOUND_NS);
        }
        __syncthreads();
        if (!ok) return;
        if (n > 0 && wait == WAIT_FLAGS) {
            if (!stage_x_flags(nodes[n - 1], d.cols, node_in(x0, act, n), xs, flags, nl + (unsigned long long)n,
                               (unsigned)n, w))
                ok = 0;
            trace_at(trace, n, 1); /* here "input ready" includes x staged */
        } else {
            trace_at(trace, n, 1);
            stage_x(node_in(x0, act, n), xs, threadIdx.x, d.cols, THREADS);
        }
        qp_mbar_wait(&bar[n & 1], (uint32_t)(n >> 1) & 1u); /* this buffer's (n / 2)-th fill */
        __syncthreads();
        if (!ok) return;
        /* late: node n + 1's copy only now, so that it does not queue ahead of this node's x */
        if (late && threadIdx.x == 0) issue_next();
        trace_at(trace, n, 2);
        tile_compute(d, buf + (size_t)(n & 1) * wbuf, xs, node_out(act, n));
        __syncthreads(); /* the rows written, buf and xs read: node n + 2 may refill this buffer */
        trace_at(trace, n, 3);
        if (threadIdx.x == 0) qp_counter_add(wait == WAIT_FLAGS ? flags + blockIdx.x : ctr, 1);
    }
    if (wait != WAIT_FLAGS && blockIdx.x == 0 && threadIdx.x == 0) atomicAdd(launches, 1ull);
}

/* ---- host ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t next_u32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int layers = 24, reps = 20, only = -1, bps = 1;
    bool check = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--blocks-per-sm") && i + 1 < argc) bps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--type") && i + 1 < argc) {
            only = qp_ggml_type_from_name(argv[++i]);
#define BENCH_TYPE_OK(T_) || only == T_
            if (!(false BENCH_TYPES(BENCH_TYPE_OK))) {
                fprintf(stderr, "bench_persistent: --type must be Q4_0, Q5_0, Q8_0, Q4_K or Q6_K, got %s\n", argv[i]);
                return 2;
            }
#undef BENCH_TYPE_OK
        } else if (!strcmp(argv[i], "--check")) check = true;
        else {
            fprintf(stderr, "usage: bench_persistent [--layers N] [--reps N] [--type T] [--blocks-per-sm 1|2] [--check]\n");
            return 2;
        }
    }
    if (layers < 1 || layers > 64 || reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_persistent: --layers 1..64, --reps 1..1000\n");
        return 2;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    if (bps < 1 || bps > 2) {
        fprintf(stderr, "bench_persistent: --blocks-per-sm 1 or 2\n");
        return 2;
    }
    const int sms = prop.multiProcessorCount, G = sms * bps; /* the blocks of every engine */
    /* the instances: launch bounds for bps blocks of THREADS an SM (bps = 2: 64 registers a thread) */
    auto *const nkern = bps == 2 ? node_kernel<2> : node_kernel<1>;
    auto *const pkern = bps == 2 ? persistent_kernel<2> : persistent_kernel<1>;
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));

    /* the nodes and one buffer of all their weights */
    static const int shape[4][2] = {{1152, 896}, {896, 896}, {9728, 896}, {896, 4864}};
    const int nn = 4 * layers;
    std::vector<pnode> nodes((size_t)nn);
    std::vector<size_t> woff((size_t)nn);
    size_t total = 0;
    uint32_t wbuf = 0;
    for (int n = 0; n < nn; n++) {
        pnode &d = nodes[(size_t)n];
        d.rows = shape[n % 4][0];
        d.cols = shape[n % 4][1];
        d.type = only >= 0 ? only : n % 4 < 3 ? QP_GGML_Q5_0 : (n / 4) % 2 ? QP_GGML_Q4_K : QP_GGML_Q6_K;
        size_t rb = 0;
        if (!qp_ggml_row_bytes(d.type, d.cols, &rb)) {
            fprintf(stderr, "bench_persistent: %s cannot hold rows of %d (node %d)\n", qp_ggml_type_name(d.type),
                    d.cols, n);
            return 2;
        }
        d.stride = (uint32_t)(rb + 15) / 16 * 16;
        woff[(size_t)n] = total;
        total += (size_t)d.rows * d.stride;
        total = (total + 255) / 256 * 256;
        const uint32_t b = (uint32_t)((d.rows + G - 1) / G) * d.stride;
        if (b > wbuf) wbuf = b;
    }
    /* valid random blocks of standard deviation 1 / sqrt(cols): |y| stays ~|x| down the chain. Each
     * node's rows repeat a pool of POOL distinct rows (generating 380 MB of blocks row by row would
     * take the CPU longer than the benchmark); the copies are distinct memory all the same. */
    const int POOL = 61;
    std::vector<uint8_t> hw(total, 0);
    uint64_t qrng = 0x5EED0F18ull;
    for (int n = 0; n < nn; n++) {
        const pnode &d = nodes[(size_t)n];
        uint8_t *w = &hw[woff[(size_t)n]];
        for (int r = 0; r < d.rows; r++) {
            if (r < POOL) qp_quant_random_row(d.type, &qrng, 1.0f / sqrtf((float)d.cols), w + (size_t)r * d.stride, d.cols);
            else memcpy(w + (size_t)r * d.stride, w + (size_t)(r % POOL) * d.stride, d.stride);
        }
    }
    uint8_t *dw;
    CK(cudaMalloc(&dw, total));
    CK(cudaMemcpy(dw, hw.data(), total, cudaMemcpyHostToDevice));
    for (int n = 0; n < nn; n++) nodes[(size_t)n].w = dw + woff[(size_t)n];
    pnode *dnodes;
    CK(cudaMalloc(&dnodes, sizeof(pnode) * (size_t)nn));
    CK(cudaMemcpy(dnodes, nodes.data(), sizeof(pnode) * (size_t)nn, cudaMemcpyHostToDevice));
    std::vector<float> hx(X_MAX);
    for (float &v : hx) v = (float)((int)(next_u32() % 2001u) - 1000) / 1000.0f;
    float *x0, *acts; /* two activation buffers of ACT_MAX per engine (eng below) */
    CK(cudaMalloc(&x0, sizeof(float) * X_MAX));
    CK(cudaMemcpy(x0, hx.data(), sizeof(float) * X_MAX, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&acts, sizeof(float) * 2 * ACT_MAX * N_ENGINES));
    unsigned long long *ctr, *flags, *launches;
    qp_watch *watch;
    CK(cudaMalloc(&ctr, sizeof *ctr));
    CK(cudaMalloc(&launches, sizeof *launches));
    CK(cudaMalloc(&flags, (size_t)G * sizeof *flags));
    CK(cudaMemset(flags, 0, (size_t)G * sizeof *flags));
    CK(cudaMalloc(&watch, sizeof *watch));
    CK(cudaMemset(ctr, 0, sizeof *ctr));
    CK(cudaMemset(launches, 0, sizeof *launches));
    CK(cudaMemset(watch, 0, sizeof *watch));

    const size_t smem = 2 * (size_t)wbuf + qp_xs_bytes(X_MAX);
    CK(cudaFuncSetAttribute(nkern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    CK(cudaFuncSetAttribute(pkern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, pkern, THREADS, smem));
    printf("device %s, %d SMs; %d layers = %d nodes, %.1f MB of weights (%s); %d x %d threads, %zu B shared "
           "memory (%d block(s) an SM fit)\n",
           prop.name, sms, layers, nn, total / 1e6, only >= 0 ? qp_ggml_type_name(only) : "Q5_0, Q6_K / Q4_K down", G,
           THREADS, smem, per_sm);
    if (per_sm < bps) {
        fprintf(stderr, "bench_persistent: the persistent kernel cannot be resident: %d block(s) of %d threads and %zu B "
                "an SM fit, %d asked\n", per_sm, THREADS, smem, bps);
        return 1;
    }

    /* the engines, each captured in a graph, untraced (timed) and traced, each with its own
     * activation buffers; eng[0] is the graph of node launches, the others the persistent kernel */
    struct engine {
        const char *name;  /* in the time lines */
        const char *title; /* of its trace table; NULL: no waits, wrong results, neither traced nor checked */
        int wait, late;
        float *act;
        cudaGraphExec_t ge, get; /* untraced, traced */
        float ms;
    } eng[N_ENGINES] = {{"graph", "graph", 0, 0, nullptr, nullptr, nullptr, 0.0f},
                        {"counter", "persistent, counter", WAIT_COUNTER, 0, nullptr, nullptr, nullptr, 0.0f},
                        {"flags", "persistent, flags (wait includes x)", WAIT_FLAGS, 0, nullptr, nullptr, nullptr, 0.0f},
                        {"late copy", "persistent, counter, late copy", WAIT_COUNTER, 1, nullptr, nullptr, nullptr, 0.0f},
                        {"no waits", nullptr, WAIT_NONE, 0, nullptr, nullptr, nullptr, 0.0f}};
    long long *trace;
    const size_t trace_n = (size_t)nn * G * TRACE_PHASES;
    CK(cudaMalloc(&trace, sizeof(long long) * trace_n));
    auto capture = [&](const engine &e, long long *tr) {
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        if (&e == &eng[0])
            for (int n = 0; n < nn; n++)
                CK(qp_cuda_launch_k(nkern, dim3(G), dim3(THREADS), smem, st, true, nodes[(size_t)n],
                                    (const float *)node_in(x0, e.act, n), node_out(e.act, n), wbuf, tr, n));
        else
            CK(qp_cuda_launch_coop(pkern, dim3(G), dim3(THREADS), smem, st, (const pnode *)dnodes, nn,
                                   (const float *)x0, e.act, wbuf, ctr, flags, launches, watch, tr, e.wait, e.late));
        CK(cudaStreamEndCapture(st, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        CK(cudaGraphDestroy(g));
        return ge;
    };
    for (int e = 0; e < N_ENGINES; e++) {
        eng[e].act = acts + (size_t)e * 2 * ACT_MAX;
        eng[e].ge = capture(eng[e], nullptr);
        eng[e].get = eng[e].title ? capture(eng[e], trace) : nullptr;
    }

    /* once each: the outputs */
    const int last = nn - 1, out_rows = nodes[(size_t)last].rows;
    std::vector<std::vector<float>> y(N_ENGINES, std::vector<float>((size_t)out_rows));
    for (int e = 0; e < N_ENGINES; e++)
        if (eng[e].title) CK(cudaGraphLaunch(eng[e].ge, st));
    CK(cudaStreamSynchronize(st));
    for (int e = 0; e < N_ENGINES; e++)
        if (eng[e].title)
            CK(cudaMemcpy(y[e].data(), node_out(eng[e].act, last), sizeof(float) * out_rows, cudaMemcpyDeviceToHost));
    const std::vector<float> &yg = y[0];
    int failed = 0;
    /* true (and says which wait) when a persistent run's wait timed out */
    auto stuck = [&](const char *run) {
        qp_watch hw;
        CK(cudaMemcpy(&hw, watch, sizeof hw, cudaMemcpyDeviceToHost));
        if (hw.stuck)
            printf("FAIL persistent (%s): the wait for node %u timed out in block %u (counter %llu of %llu)\n", run,
                   hw.task, hw.block, hw.seen, hw.target);
        return hw.stuck != 0;
    };
    if (stuck("first run")) return 1;
    for (int e = 1; e < N_ENGINES; e++) {
        if (!eng[e].title) continue;
        const std::vector<float> &yo = y[e];
        if (memcmp(yg.data(), yo.data(), sizeof(float) * out_rows)) {
            int k = 0;
            while (k < out_rows && !memcmp(&yg[(size_t)k], &yo[(size_t)k], sizeof(float))) k++;
            printf("FAIL the graph and persistent (%s) differ: output %d: %.9g, %.9g\n", eng[e].name, k,
                   yg[(size_t)k], yo[(size_t)k]);
            failed = 1;
        } else {
            printf("ok   the graph's and persistent (%s)'s outputs are equal bit for bit (%d values)\n", eng[e].name,
                   out_rows);
        }
    }
    if (check) { /* the chain in double on the CPU */
        std::vector<double> x(hx.begin(), hx.end()), yc;
        std::vector<float> row;
        for (int n = 0; n < nn; n++) {
            const pnode &d = nodes[(size_t)n];
            row.resize((size_t)d.cols);
            yc.assign((size_t)d.rows, 0.0);
            for (int r = 0; r < d.rows; r++) {
                qp_quant_dequant_row(d.type, &hw[woff[(size_t)n] + (size_t)r * d.stride], row.data(), d.cols);
                double acc = 0.0;
                for (int k = 0; k < d.cols; k++) acc += (double)row[(size_t)k] * x[(size_t)k];
                yc[(size_t)r] = acc;
            }
            x = yc;
            if (x.size() < X_MAX) x.resize(X_MAX, 0.0);
        }
        double num = 0.0, den = 0.0;
        for (int r = 0; r < out_rows; r++) {
            num += (yg[(size_t)r] - yc[(size_t)r]) * (yg[(size_t)r] - yc[(size_t)r]);
            den += yc[(size_t)r] * yc[(size_t)r];
        }
        const double rel = sqrt(num / (den > 0.0 ? den : 1.0));
        const bool ok = rel <= 1e-4 && den > 0.0;
        printf("%s the chain against the CPU in double: rel L2 %.3g (tol 1e-4), |y| %.3g\n", ok ? "ok  " : "FAIL", rel,
               sqrt(den));
        if (!ok) failed = 1;
    }

    /* times */
    for (engine &e : eng) e.ms = bench_timed_ms(st, reps, [&] { CK(cudaGraphLaunch(e.ge, st)); });
    unsigned *sink;
    CK(cudaMalloc(&sink, sizeof *sink));
    const float ms_r = bench_read_ms(st, dw, total, sms * 2, 512, sink, reps);
    CK(cudaFree(sink));
    if (stuck("timed runs")) return 1;
    const float ms_g = eng[0].ms, ms_p = eng[1].ms; /* the graph, the counter engine */
    printf("graph      %d launches: %.3f ms, %.2f us a node, %.0f GB/s\n", nn, ms_g, ms_g * 1000.0f / nn,
           total / (ms_g * 1e6));
    for (int e = 1; e < N_ENGINES; e++) {
        const float ms = eng[e].ms;
        if (eng[e].title)
            printf("%-10s 1 launch:   %.3f ms, %.2f us a node, %.0f GB/s (%.2fx the graph)\n", eng[e].name, ms,
                   ms * 1000.0f / nn, total / (ms * 1e6), ms_g / ms);
        else
            printf("%-10s 1 launch:   %.3f ms, %.2f us a node (wrong results: what the %d waits cost, %.2f us each)\n",
                   eng[e].name, ms, ms * 1000.0f / nn, nn - 1, (ms_p - ms) * 1000.0f / (nn - 1));
    }
    printf("read       the weights once, %d x 512 threads: %.3f ms, %.0f GB/s (the floor)\n", sms * 2, ms_r,
           total / (ms_r * 1e6));

    /* the traces: per node kind, mean over layers and blocks (blocks with rows) of each phase */
    static const char *const kind[4] = {"q/k/v", "attn_output", "ffn_gate_up", "ffn_down"};
    int khz = 0;
    CK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0));
    const double us_per_clk = khz > 0 ? 1e3 / khz : 0.0;
    std::vector<long long> ht(trace_n);
    for (const engine &e : eng) {
        if (!e.title) continue;
        CK(cudaMemset(trace, 0, sizeof(long long) * trace_n));
        CK(cudaGraphLaunch(e.get, st));
        CK(cudaStreamSynchronize(st));
        CK(cudaMemcpy(ht.data(), trace, sizeof(long long) * trace_n, cudaMemcpyDeviceToHost));
        printf("%s, where a node's time goes (us, mean of layers and blocks; SM clock %.0f MHz):\n",
               e.title, khz / 1e3);
        printf("  %-12s %8s %8s %8s %8s\n", "node", "wait", "load", "compute", "total");
        for (int k = 0; k < 4; k++) {
            double ph[3] = {0, 0, 0};
            long cnt = 0;
            for (int n = k; n < nn; n += 4) {
                int r0, r1;
                for (int b = 0; b < G; b++) {
                    rows_of(nodes[(size_t)n].rows, G, b, &r0, &r1);
                    if (r1 <= r0) continue;
                    const long long *t = &ht[((size_t)n * G + b) * TRACE_PHASES];
                    for (int p = 0; p < 3; p++) ph[p] += (double)(t[p + 1] - t[p]);
                    cnt++;
                }
            }
            if (!cnt) continue;
            for (double &v : ph) v = v / cnt * us_per_clk;
            printf("  %-12s %8.2f %8.2f %8.2f %8.2f\n", kind[k], ph[0], ph[1], ph[2], ph[0] + ph[1] + ph[2]);
        }
    }
    if (stuck("traced run")) failed = 1;
    for (const engine &e : eng) {
        CK(cudaGraphExecDestroy(e.ge));
        if (e.get) CK(cudaGraphExecDestroy(e.get));
    }
    CK(cudaFree(trace));
    CK(cudaFree(dw));
    CK(cudaFree(dnodes));
    CK(cudaFree(x0));
    CK(cudaFree(acts));
    CK(cudaFree(flags));
    CK(cudaFree(ctr));
    CK(cudaFree(launches));
    CK(cudaFree(watch));
    CK(cudaStreamDestroy(st));
    return failed;
}
