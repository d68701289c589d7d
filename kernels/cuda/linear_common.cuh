/* linear_common.cuh — what the two LINEAR paths (matvec.cu for decode, gemm.cu for prefill)
 * share: the kernel parameter block built from qp_op_args, and the epilogue expressed per
 * "unit" (the work of one warp in the matvec, one thread in the GEMM epilogue):
 *
 *   NONE / RESIDUAL / ARGMAX: unit r = stacked row r; one product.
 *   SWIGLU:  unit u < R: products gate[u] (part 0) and up[u] (part 1); out[t][u] = silu(g)*up.
 *   ROPE_KV: units [0, Hq*hd/2) q pairs (i, i+hd/2) of part 0, then [.., +Hkv*hd/2) k pairs of
 *            part 1, then Hkv*hd v rows of part 2; q rotated into out, k rotated and v written
 *            to the cache rows pos+t (never past kv.ctx).
 *
 * Stacked rows: part p occupies rows [row0[p], row0[p] + rows[p]) of the virtual matrix.
 */
#pragma once
#include <type_traits>

#include "cuda_common.cuh"

struct qp_lin_params {
    const uint8_t *w[QP_OP_MAX_PARTS]; /* part weights, [rows][row_bytes] */
    int type[QP_OP_MAX_PARTS];         /* enum qp_ggml_type of each part */
    size_t row_bytes[QP_OP_MAX_PARTS];
    int64_t row0[QP_OP_MAX_PARTS + 1]; /* stacked row offsets; row0[n_parts] = rows_total */
    const float *bias[QP_OP_MAX_PARTS];
    int n_parts;
    int64_t cols;             /* in_w */
    const float *x;           /* [n][cols] */
    const float *norm;        /* [cols] or NULL (no prologue) */
    float eps;
    const float *in1;         /* residual [n][out_w] */
    float *out;               /* [n][out_w] */
    int64_t out_w;
    int64_t units;
    int n_head, n_head_kv, head_dim;
    float rope_base;
    void *kc, *vc;            /* [slots][ctx][kv_dim] f16 or f32 */
    int kv_f16;
    int64_t ctx, kv_dim, slots;
    const struct qp_step *step;
};

/* Builds the parameter block; units per epilogue as above. */
static inline qp_lin_params qp_lin_params_make(const struct qp_op_args *a) {
    qp_lin_params p;
    memset(&p, 0, sizeof p);
    p.n_parts = a->n_parts;
    p.row0[0] = 0;
    for (int i = 0; i < a->n_parts; i++) {
        p.w[i] = (const uint8_t *)a->w[i].data;
        p.type[i] = a->w[i].type;
        p.row_bytes[i] = a->w[i].row_bytes;
        p.bias[i] = a->bias[i];
        p.row0[i + 1] = p.row0[i] + a->w[i].rows;
    }
    for (int i = a->n_parts; i < QP_OP_MAX_PARTS; i++) p.row0[i + 1] = p.row0[i];
    p.cols = a->in_w;
    p.x = a->in0;
    p.norm = a->prologue == QP_PROLOGUE_RMS_NORM ? a->norm : NULL;
    p.eps = a->eps;
    p.in1 = a->in1;
    p.out = a->out;
    p.out_w = a->out_w;
    p.n_head = a->n_head;
    p.n_head_kv = a->n_head_kv;
    p.head_dim = a->head_dim;
    p.rope_base = a->rope_base;
    p.kc = a->kv.k;
    p.vc = a->kv.v;
    p.kv_f16 = a->kv.type == QP_GGML_F16;
    p.ctx = a->kv.ctx;
    p.kv_dim = a->kv.kv_dim;
    p.slots = a->kv.slots;
    p.step = a->step;
    switch (a->epilogue) {
    case QP_EPILOGUE_SWIGLU: p.units = a->w[0].rows; break;
    case QP_EPILOGUE_ROPE_KV:
        p.units = (int64_t)a->n_head * a->head_dim / 2 + (int64_t)a->n_head_kv * a->head_dim / 2 +
                  (int64_t)a->n_head_kv * a->head_dim;
        break;
    default: p.units = p.row0[a->n_parts]; break;
    }
    return p;
}

/* Stacked rows whose products unit u needs: *ra always, *rb = -1 when only one. */
template <int EPI>
static __device__ __forceinline__ void qp_unit_rows(const qp_lin_params &p, int64_t u, int64_t *ra,
                                                    int64_t *rb) {
    if constexpr (EPI == QP_EPILOGUE_SWIGLU) {
        *ra = u;
        *rb = p.row0[1] + u;
    } else if constexpr (EPI == QP_EPILOGUE_ROPE_KV) {
        const int64_t half = p.head_dim / 2;
        const int64_t nq = (int64_t)p.n_head * half, nk = (int64_t)p.n_head_kv * half;
        if (u < nq) {
            const int64_t r = (u / half) * p.head_dim + u % half;
            *ra = r;
            *rb = r + half;
        } else if (u < nq + nk) {
            const int64_t v = u - nq, r = (v / half) * p.head_dim + v % half;
            *ra = p.row0[1] + r;
            *rb = p.row0[1] + r + half;
        } else {
            *ra = p.row0[2] + (u - nq - nk);
            *rb = -1;
        }
    } else {
        *ra = u;
        *rb = -1;
    }
}

static __device__ __forceinline__ float qp_lin_bias(const qp_lin_params &p, int64_t r) {
    int i = 0;
    while (i + 1 < p.n_parts && r >= p.row0[i + 1]) i++;
    return p.bias[i] ? p.bias[i][r - p.row0[i]] : 0.0f;
}

static __device__ __forceinline__ void qp_kv_store(void *cache, int f16, int64_t idx, float v) {
    if (f16) ((__half *)cache)[idx] = __float2half_rn(v);
    else ((float *)cache)[idx] = v;
}

/* What the epilogue of unit u of token t reads besides its products, loaded ahead of them by the
 * streamed matvec (matvec_stream.cu) so that no load or double-precision math is left for after
 * the dot products: the rows' biases, ROPE_KV's cos/sin of the pair's angle, RESIDUAL's in1 value. */
struct qp_unit_pre {
    float cs, sn, res, bias_a, bias_b;
};

/* The RoPE frequency of unit u (ROPE_KV pairs; 0 for v units and other epilogues): position-free,
 * so it can be computed before the kernel waits for its input. */
template <int EPI>
static __device__ __forceinline__ double qp_unit_freq(const qp_lin_params &p, int64_t u) {
    if constexpr (EPI == QP_EPILOGUE_ROPE_KV) {
        const int half = p.head_dim / 2;
        const int64_t nq = (int64_t)p.n_head * half, nk = (int64_t)p.n_head_kv * half;
        if (u < nq + nk) return qp_rope_freq((int)((u < nq ? u : u - nq) % half), p.head_dim, p.rope_base);
    }
    return 0.0;
}

template <int EPI>
static __device__ __forceinline__ qp_unit_pre qp_unit_prepare(const qp_lin_params &p, int t, int64_t u, double freq) {
    qp_unit_pre r = {1.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    int64_t ra, rb;
    qp_unit_rows<EPI>(p, u, &ra, &rb);
    r.bias_a = qp_lin_bias(p, ra);
    if (rb >= 0) r.bias_b = qp_lin_bias(p, rb);
    if constexpr (EPI == QP_EPILOGUE_ROPE_KV) {
        const int64_t nq = (int64_t)p.n_head * (p.head_dim / 2), nk = (int64_t)p.n_head_kv * (p.head_dim / 2);
        if (u < nq + nk) qp_rope_cs_f((int64_t)p.step->rows[t].pos, freq, &r.cs, &r.sn);
    } else if constexpr (EPI == QP_EPILOGUE_RESIDUAL) {
        r.res = p.in1[(int64_t)t * p.out_w + u];
    }
    return r;
}

/* Writes unit u of token t from its raw products a (row ra) and b (row rb), biases not yet
 * added, and its prepared inputs (qp_unit_prepare). Returns a + bias (for NONE / ARGMAX: exactly
 * the value written). */
template <int EPI>
static __device__ __forceinline__ float qp_unit_store_pre(const qp_lin_params &p, int t, int64_t u, int64_t ra,
                                                         int64_t rb, float a, float b, const qp_unit_pre &pre) {
    a += pre.bias_a;
    b += pre.bias_b; /* 0 when there is no row b */
    float *o = p.out + (int64_t)t * p.out_w;
    if constexpr (EPI == QP_EPILOGUE_SWIGLU) {
        o[u] = a / (1.0f + expf(-a)) * b;
    } else if constexpr (EPI == QP_EPILOGUE_ROPE_KV) {
        const int half = p.head_dim / 2;
        const int64_t nq = (int64_t)p.n_head * half, nk = (int64_t)p.n_head_kv * half;
        /* row t's cache position in its slot; a padding row (slot < 0) or a position past the
         * cache writes nothing */
        const struct qp_step_row rw = p.step->rows[t];
        const bool keep = rw.slot >= 0 && rw.slot < p.slots && rw.pos < p.ctx;
        const int64_t pos = ((int64_t)rw.slot * p.ctx + rw.pos);
        if (u < nq + nk) {
            const int64_t v = u < nq ? u : u - nq;
            const int i = (int)(v % half);
            const float x0 = a * pre.cs - b * pre.sn, x1 = a * pre.sn + b * pre.cs;
            const int64_t r = (v / half) * p.head_dim + i;
            if (u < nq) {
                o[r] = x0;
                o[r + half] = x1;
            } else if (keep) {
                qp_kv_store(p.kc, p.kv_f16, (int64_t)pos * p.kv_dim + r, x0);
                qp_kv_store(p.kc, p.kv_f16, (int64_t)pos * p.kv_dim + r + half, x1);
            }
        } else if (keep) {
            qp_kv_store(p.vc, p.kv_f16, (int64_t)pos * p.kv_dim + (u - nq - nk), a);
        }
    } else if constexpr (EPI == QP_EPILOGUE_RESIDUAL) {
        o[u] = pre.res + a;
    } else {
        o[u] = a;
    }
    return a; /* the value written by NONE / ARGMAX (the logit the argmax epilogue compares) */
}

/* qp_unit_store_pre with the prepared inputs loaded here. */
template <int EPI>
static __device__ __forceinline__ float qp_unit_store(const qp_lin_params &p, int t, int64_t u, int64_t ra,
                                                     int64_t rb, float a, float b) {
    return qp_unit_store_pre<EPI>(p, t, u, ra, rb, a, b, qp_unit_prepare<EPI>(p, t, u, qp_unit_freq<EPI>(p, u)));
}

/* Dispatches a runtime epilogue to a template instantiation: f(std::integral_constant<int, EPI>{}). */
template <class F> static void qp_epi_dispatch(int epi, F &&f) {
    switch (epi) {
    case QP_EPILOGUE_RESIDUAL: f(std::integral_constant<int, QP_EPILOGUE_RESIDUAL>{}); break;
    case QP_EPILOGUE_SWIGLU: f(std::integral_constant<int, QP_EPILOGUE_SWIGLU>{}); break;
    case QP_EPILOGUE_ROPE_KV: f(std::integral_constant<int, QP_EPILOGUE_ROPE_KV>{}); break;
    default: f(std::integral_constant<int, QP_EPILOGUE_NONE>{}); break; /* NONE and ARGMAX */
    }
}

/* Row r of the stacked matrix and the part it lies in. */
static __device__ __forceinline__ const uint8_t *qp_lin_row(const qp_lin_params &p, int64_t r, int *part) {
    int i = 0;
    while (i + 1 < p.n_parts && r >= p.row0[i + 1]) i++;
    *part = i;
    return p.w[i] + (size_t)(r - p.row0[i]) * p.row_bytes[i];
}

/* The argmax epilogue's end, for one token t, in the matvec kernels that run it over several
 * blocks (matvec.cu, matvec_batch.cu, matvec_q8.cu): (v, i) is each thread's best (logit, row);
 * the block's best goes to part[blockIdx.x] (the token's gridDim.x partials in scratch), and the
 * last block to finish the token (the count in *done, module memory, reset by that block) merges
 * the partials and writes step->rows[t].next. Ties go to the first index, NaN never wins. Contains
 * __syncthreads() (call from all threads); `last` is __shared__ bool. Returns true in the block that
 * merged. */
static __device__ __forceinline__ bool qp_amax_finish(float v, int32_t i, qp_amax *part, unsigned int *done,
                                                      const struct qp_step *step, int t, bool *last) {
    qp_amax_block(&v, &i);
    if (threadIdx.x == 0) {
        part[blockIdx.x] = qp_amax{v, i};
        __threadfence();
        *last = atomicAdd(done, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    const bool merge = *last; /* uniform in the block */
    __syncthreads();           /* `last` may be rewritten by the caller's next token */
    if (!merge) return false;
    __threadfence();
    v = -INFINITY;
    i = INT32_MAX;
    for (int k = threadIdx.x; k < (int)gridDim.x; k += blockDim.x) {
        const float2 pk = __ldcg((const float2 *)(part + k));
        qp_amax_merge(&v, &i, pk.x, __float_as_int(pk.y));
    }
    qp_amax_block(&v, &i);
    if (threadIdx.x == 0) {
        ((struct qp_step *)step)->rows[t].next = i == INT32_MAX ? 0 : i;
        *done = 0;
    }
    return true;
}
