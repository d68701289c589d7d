/* matvec_ring.cu — mmv_stream's ring form (launch.grid > 0): LINEAR for a few tokens whose matrix
 * is larger than one wave of matvec_stream.cu's blocks can hold.
 *
 * Why (issue 23, docs/performance.md): matvec_stream.cu gives each block one tile of at most
 * QP_CUDA_MMVS_WBYTES of rows, copied whole before its dots start. At ~100 registers a thread one
 * 512-thread block fits an SM, so a matrix of more tiles than SMs (the 1.5B model's 15.5 MB gate+up:
 * 320 tiles) runs in waves, each paying its copy, its x staging and its dots one after the other.
 * Here launch.grid blocks (one per SM by default) each own a contiguous run of tiles, hold up to
 * QP_CUDA_MMVS_RING_SLOTS of them in shared memory, and stream the run: the copies of the first
 * slots are issued at kernel start (before the PDL wait), the dots of a tile start as soon as its own
 * copies land, and a slot is refilled with the run's next tile as soon as its dots are done. The
 * input is staged once per block, not once per wave.
 *
 * Per tile, in order: wait on the slot's mbarrier (its phase parity flips with each reuse); the
 * items as in matvec_stream.cu (warp w takes items w, w + warps, ...: a unit's row and a chunk of 32
 * sub-chunks, one sub-chunk per lane, the warp sums the chunk); a barrier; thread 0 refills the slot
 * (a proxy fence orders the block's reads of it before the bulk copies' writes) while the block's
 * last threads write the tile's epilogues; a barrier; the refill's edge bytes by all warps. The
 * chunk sums of a row are added in chunk order, as in matvec_stream.cu, so both forms give the same
 * bits for the same node.
 *
 * Tokens: all of the node's tokens in one group (qp_mmvs_geometry requires launch.split >= n_tok),
 * staged once; each lane decodes its sub-chunk once for all of them (qp_dot32_group), or takes the
 * integer dots of quant_dot.cuh for one token.
 */
#include "matvec_stream.cuh"

#define QP_MMVR_SLOTS QP_CUDA_MMVS_RING_SLOTS

/* Dynamic shared memory: [slots x wbytes of tile rows][staged x: g x xsf floats][chunk sums: g x
 * the items of a tile]. upt: units per tile; tpb: tiles per block. */
template <int T, int EPI, bool MULTI>
static __global__ void __launch_bounds__(QP_MMVS_THREADS, 1)
    matvec_ring_kernel(const qp_lin_params p, const int64_t upt, const int64_t tpb, const int nslot,
                       const uint32_t wbytes, const int n_tok) {
    QP_DYNAMIC_SMEM(float4, qp_mmvr_smem);
    __shared__ uint64_t bar[QP_MMVR_SLOTS];
    __shared__ qp_mmvs_seg seg[QP_MMVR_SLOTS][QP_MMVS_MAX_SEGS];
    __shared__ int nseg[QP_MMVR_SLOTS];
    __shared__ float red[MULTI ? 32 * QP_MMVS_MAX_TOKENS : 32];
    __shared__ float inv_s[QP_MMVS_MAX_TOKENS];
    constexpr int NR = (EPI == QP_EPILOGUE_SWIGLU || EPI == QP_EPILOGUE_ROPE_KV) ? 2 : 1;
    uint8_t *wsm = (uint8_t *)qp_mmvr_smem;
    const int g = MULTI ? n_tok : 1;
    const int64_t xsf = (p.cols / 32) * QP_XS_STRIDE; /* floats of one token's staged x */
    float *xs = (float *)(wsm + (size_t)nslot * wbytes);
    float *part = xs + g * xsf;
    const int64_t ntiles = (p.units + upt - 1) / upt;
    const int64_t t0 = (int64_t)blockIdx.x * tpb, nt = t0 + tpb < ntiles ? tpb : ntiles - t0;

    /* 1. weights only (safe before the PDL wait): the first slots' copies and edge bytes */
    if (threadIdx.x == 0) {
        for (int k = 0; k < nslot; k++) qp_mbar_init(&bar[k]);
        for (int k = 0; k < nslot && k < nt; k++) {
            const int64_t u0 = (t0 + k) * upt, u1 = u0 + upt < p.units ? u0 + upt : p.units;
            nseg[k] = qp_mmvs_fill<EPI>(p, u0, u1, seg[k], wsm + (size_t)k * wbytes, &bar[k]);
        }
    }
    __syncthreads();
    for (int k = 0; k < nslot && k < nt; k++) qp_mmvs_edges(seg[k], nseg[k], wsm + (size_t)k * wbytes);
    if (p.norm)
        for (int64_t c = (int64_t)threadIdx.x * 32; c < p.cols; c += (int64_t)blockDim.x * 32) qp_prefetch_l2(p.norm + c);
    qp_pdl_wait();
    qp_pdl_trigger();

    /* 2. the input, once */
    if constexpr (!MULTI) {
        const float inv = qp_stage_x_block(xs, p.x, p.norm, p.cols, p.eps, red);
        if (threadIdx.x == 0) inv_s[0] = inv;
    } else {
        qp_stage_x_group(xs, xsf, p.x, p.norm, p.cols, g, p.eps, red, inv_s);
    }
    __syncthreads(); /* inv_s, the edge bytes */

    /* 3. the run of tiles */
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    const int64_t nsub = p.cols / 32;
    const int nchunk = (int)((nsub + 31) / 32);
    const int ue = (int)blockDim.x - 1 - (int)threadIdx.x; /* epilogues from the block's last thread down */
    for (int64_t i = 0; i < nt; i++) {
        const int k = (int)(i % nslot);
        uint8_t *ws = wsm + (size_t)k * wbytes;
        const int64_t u0 = (t0 + i) * upt, u1 = u0 + upt < p.units ? u0 + upt : p.units;
        const int nu = (int)(u1 - u0), nitems = nu * NR * nchunk;
        qp_mbar_wait(&bar[k], (uint32_t)((i / nslot) & 1));
        const int dj = nw / nchunk, dc = nw % nchunk;
        for (int it = warp, c = warp % nchunk, j = warp / nchunk; it < nitems; it += nw) {
            int64_t ra, rb;
            qp_unit_rows<EPI>(p, u0 + j / NR, &ra, &rb);
            const int64_t row = j % NR ? rb : ra;
            const uint8_t *rp = NULL;
            int pi = 0;
            const int64_t s = (int64_t)c * 32 + lane;
            if (row >= 0) rp = qp_mmvs_row(p, seg[k], nseg[k], ws, row, &pi);
            if constexpr (!MULTI) {
                float acc = 0.0f;
                if (rp && s < nsub) {
                    if constexpr (T == QP_MMVS_MIXED) acc = qp_mmvs_sub_any(p.type[pi], rp, s, xs);
                    else acc = qp_mmvs_sub<T>(rp, s, xs);
                }
                acc = qp_warp_sum(acc);
                if (lane == 0) part[it] = acc;
            } else {
                float acc[QP_MMVS_MAX_TOKENS];
#pragma unroll
                for (int q = 0; q < QP_MMVS_MAX_TOKENS; q++) acc[q] = 0.0f;
                if (rp && s < nsub) {
                    if constexpr (T == QP_MMVS_MIXED) qp_mmvs_sub_multi_any(p.type[pi], rp, s, xs, xsf, g, acc);
                    else qp_mmvs_sub_multi<T>(rp, s, xs, xsf, g, acc);
                }
#pragma unroll
                for (int q = 0; q < QP_MMVS_MAX_TOKENS; q++) {
                    if (q >= g) break;
                    const float sum = qp_warp_sum(acc[q]);
                    if (lane == 0) part[q * nitems + it] = sum;
                }
            }
            c += dc;
            j += dj;
            if (c >= nchunk) {
                c -= nchunk;
                j++;
            }
        }
        __syncthreads(); /* the slot is read, the sums are written */
        const bool refill = i + nslot < nt;
        if (refill && threadIdx.x == 0) {
            qp_fence_proxy_async();
            const int64_t r0 = (t0 + i + nslot) * upt, r1 = r0 + upt < p.units ? r0 + upt : p.units;
            nseg[k] = qp_mmvs_fill<EPI>(p, r0, r1, seg[k], ws, &bar[k]);
        }
        for (int wi = ue; wi < g * nu; wi += blockDim.x) { /* the (token, unit) pairs of the tile */
            const int q = wi / nu, ui = wi - q * nu;
            const float inv = inv_s[q];
            const float *pq = part + q * nitems;
            float a = 0.0f, b = 0.0f;
            for (int c = 0; c < nchunk; c++) a += pq[(ui * NR) * nchunk + c];
            if constexpr (NR == 2)
                for (int c = 0; c < nchunk; c++) b += pq[(ui * NR + 1) * nchunk + c];
            int64_t ra, rb;
            qp_unit_rows<EPI>(p, u0 + ui, &ra, &rb);
            const qp_unit_pre pu = qp_unit_prepare<EPI>(p, q, u0 + ui, qp_unit_freq<EPI>(p, u0 + ui));
            qp_unit_store_pre<EPI>(p, q, u0 + ui, ra, rb, a * inv, b * inv, pu);
        }
        __syncthreads(); /* the refill's segments are visible; the sums are read */
        /* the refill's edge bytes: visible to its dots after the barrier that ends the next tile's
         * items (nslot >= 2 whenever a slot is refilled: qp_mmvs_geometry) */
        if (refill) qp_mmvs_edges(seg[k], nseg[k], ws);
    }
}

template <int T, int EPI, bool MULTI>
static enum qp_status launch_mmvr(const qp_lin_params &p, const struct qp_mmvs_geometry &g, int64_t upt, int n_tok,
                                  cudaStream_t st, bool pdl, struct qp_error *err) {
    auto k = matvec_ring_kernel<T, EPI, MULTI>;
    cudaError_t e = cudaSuccess;
    static size_t smem_set = 0; /* per instance: the dynamic shared memory beyond the default 48 KB */
    if (g.smem > smem_set) {
        e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)g.smem);
        if (e == cudaSuccess) smem_set = g.smem;
    }
    if (e == cudaSuccess)
        e = qp_cuda_launch_k(k, dim3((unsigned)g.blocks), dim3(QP_MMVS_THREADS), g.smem, st, pdl, p, upt,
                             g.tiles_per_block, (int)g.slots, g.wbytes, n_tok);
    if (e == cudaSuccess) e = cudaPeekAtLastError();
    if (e != cudaSuccess)
        return qp_error_set(err, QP_ERR_DEVICE, "%s:%d: matvec_ring_kernel<%s, %s><<<%lld, %d, %zu>>>: %s", __FILE__,
                            __LINE__, T == QP_MMVS_MIXED ? "mixed" : qp_ggml_type_name(T),
                            qp_epilogue_name((enum qp_epilogue)EPI), (long long)g.blocks, QP_MMVS_THREADS, g.smem,
                            cudaGetErrorString(e));
    return QP_OK;
}

/* Called by qp_cuda_matvec_stream (matvec_stream.cu) once the node and its geometry are checked. */
enum qp_status qp_cuda_matvec_ring(const struct qp_op_args *a, const struct qp_mmvs_geometry *g,
                                   struct qp_error *err) {
    const qp_lin_params p = qp_lin_params_make(a);
    bool mixed = false;
    for (int i = 0; i < a->n_parts; i++) mixed = mixed || a->w[i].type != a->w[0].type;
    cudaStream_t st = QP_STREAM(a);
    const bool pdl = a->launch.pdl != 0;
    const int64_t upt = a->launch.rows_per_block;
    const bool multi = a->n_tok > 1;
    enum qp_status s = QP_OK;
    qp_cuda_note_launch(QP_KERNEL_MMV_STREAM);
    if (mixed) {
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            s = multi ? launch_mmvr<QP_MMVS_MIXED, EPI, true>(p, *g, upt, a->n_tok, st, pdl, err)
                      : launch_mmvr<QP_MMVS_MIXED, EPI, false>(p, *g, upt, a->n_tok, st, pdl, err);
        });
        return s;
    }
    const bool ok = qp_type_dispatch(a->w[0].type, [&](auto tc_) {
        constexpr int T = decltype(tc_)::value;
        qp_epi_dispatch(a->epilogue, [&](auto te_) {
            constexpr int EPI = decltype(te_)::value;
            s = multi ? launch_mmvr<T, EPI, true>(p, *g, upt, a->n_tok, st, pdl, err)
                      : launch_mmvr<T, EPI, false>(p, *g, upt, a->n_tok, st, pdl, err);
        });
    });
    if (!ok)
        return qp_error_set(err, QP_ERR_UNSUPPORTED, "cuda mmv_stream: weight type %s has no kernel",
                            qp_ggml_type_name(a->w[0].type));
    return s;
}
