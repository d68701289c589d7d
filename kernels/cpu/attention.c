/* attention.c — causal grouped-query attention over the KV cache (CPU reference).
 *
 * Query head h of row t (position pos = rows[t].pos in slot rows[t].slot) attends to that slot's
 * cache rows 0..pos of KV head h / (n_head / n_head_kv), scale 1/sqrt(head_dim); a padding row
 * (slot < 0) gives 0. Softmax in f32 with max subtraction,
 * computed online over chunks of CHUNK positions (scores of a chunk stored, the running sum and
 * output rescaled when the maximum grows), so any context length needs only fixed stack space;
 * up to CHUNK positions it is the plain two-pass softmax. (t, h) pairs are split over the pool.
 */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"
#include "fp16_inline.h"
#include "qp_cpu.h"
#include "qp_ggml.h"

#define CHUNK 2048

struct attn_job {
    const float *q;
    const struct qp_kv_ref *kv;
    float *out;
    int32_t n_head, n_head_kv, head_dim;
    const struct qp_step_row *rows;
};

/* dst[0..hd) = cache row j, kv head g, as f32. */
static const float *cache_row(const void *cache, int32_t type, int64_t kv_dim, int64_t j, int32_t g,
                              int32_t hd, float *tmp) {
    if (type == QP_GGML_F32) return (const float *)cache + j * kv_dim + (int64_t)g * hd;
    const uint16_t *src = (const uint16_t *)cache + j * kv_dim + (int64_t)g * hd;
    for (int32_t i = 0; i < hd; i++) tmp[i] = qp_h2f(src[i]);
    return tmp;
}

static void attn_items(void *vctx, int64_t i0, int64_t i1) {
    const struct attn_job *a = vctx;
    int32_t hd = a->head_dim, group = a->n_head / a->n_head_kv;
    int64_t qw = (int64_t)a->n_head * hd, kv_dim = a->kv->kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    float s[CHUNK], acc[QP_CPU_MAX_HEAD_DIM], tmp[QP_CPU_MAX_HEAD_DIM];
    for (int64_t it = i0; it < i1; it++) {
        int64_t t = it / a->n_head;
        int32_t h = (int32_t)(it % a->n_head), g = h / group;
        const float *q = a->q + t * qw + (int64_t)h * hd;
        float *o = a->out + t * qw + (int64_t)h * hd;
        const struct qp_step_row *row = &a->rows[t];
        if (row->slot < 0) { /* a padding row */
            memset(o, 0, sizeof(float) * (size_t)hd);
            continue;
        }
        int64_t len = (int64_t)row->pos + 1; /* causal: positions 0..pos */
        const int64_t base = (int64_t)row->slot * a->kv->ctx; /* the slot's first cache row */
        float m = -INFINITY, l = 0.0f;
        memset(acc, 0, sizeof(float) * (size_t)hd);
        for (int64_t j0 = 0; j0 < len; j0 += CHUNK) {
            int64_t cn = len - j0 < CHUNK ? len - j0 : CHUNK;
            float cm = -INFINITY;
            for (int64_t j = 0; j < cn; j++) {
                const float *k = cache_row(a->kv->k, a->kv->type, kv_dim, base + j0 + j, g, hd, tmp);
                s[j] = qp_cpu_dot(q, k, hd) * scale;
                if (s[j] > cm) cm = s[j];
            }
            float nm = cm > m ? cm : m;
            float alpha = expf(m - nm); /* 0 on the first chunk (m = -inf) */
            l *= alpha;
            for (int32_t i = 0; i < hd; i++) acc[i] *= alpha;
            for (int64_t j = 0; j < cn; j++) {
                float p = expf(s[j] - nm);
                l += p;
                const float *v = cache_row(a->kv->v, a->kv->type, kv_dim, base + j0 + j, g, hd, tmp);
                for (int32_t i = 0; i < hd; i++) acc[i] += p * v[i];
            }
            m = nm;
        }
        float inv = 1.0f / l;
        for (int32_t i = 0; i < hd; i++) o[i] = acc[i] * inv;
    }
}

void qp_cpu_attention(const float *q, const struct qp_kv_ref *kv, float *out, int64_t n, int32_t n_head,
                      int32_t n_head_kv, int32_t head_dim, const struct qp_step_row *rows) {
    struct attn_job j = {q, kv, out, n_head, n_head_kv, head_dim, rows};
    /* One (row, head) item costs ~2 * (pos+1) * head_dim multiply-adds. */
    int64_t per_item = 2 * ((int64_t)rows[0].pos + 1) * head_dim;
    int64_t min_items = per_item >= 65536 ? 1 : 65536 / per_item;
    qp_cpu_parallel_for(n * n_head, min_items, attn_items, &j);
}
