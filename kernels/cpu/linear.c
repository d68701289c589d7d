/* linear.c — x times W transposed on GGUF-layout weights of any supported type (CPU reference).
 *
 * Two ways to form the dot products, chosen by the caller (the op entry: by its n_tok):
 *  - decode (dequant_once false): qp_quant_dot_row per row and token, which never materialises
 *    the row (2-17x faster than dequantizing it for one token: bench_ops vs bench_matvec);
 *  - prefill (dequant_once true): the row is dequantized in chunks of CHUNK elements (one chunk
 *    for rows up to 16384, i.e. every Qwen2 matrix up to 7B), each chunk dotted with every
 *    token's matching slice (qp_cpu_dot), the chunk sums added in order starting from 0.
 * Then the bias, then the residual. Every output element is computed whole by one thread in a
 * fixed order, so its bits depend on neither the thread count nor how the caller tiles tokens:
 * fused and unfused forms agree bit for bit. Rows are split over the thread pool.
 */
#include <stdbool.h>

#include "cpu_internal.h"
#include "qp_cpu.h"
#include "qp_quant.h"

#define CHUNK 16384 /* f32 elements of a dequantized row slice (64 KiB of stack), a multiple of 256 */
#define TGROUP 32   /* tokens per pass over a row longer than CHUNK */

struct linear_job {
    const struct qp_weight *w;
    const float *bias;
    const float *x;
    int64_t x_stride, n;
    float *y;
    int64_t y_stride;
    const float *add;
    int64_t add_stride;
    bool dequant_once;
};

static void store(const struct linear_job *j, int64_t t, int64_t r, float sum) {
    float v = sum;
    if (j->bias) v += j->bias[r];
    if (j->add) v = j->add[t * j->add_stride + r] + v;
    j->y[t * j->y_stride + r] = v;
}

static void linear_rows_dot(void *vctx, int64_t r0, int64_t r1) {
    const struct linear_job *j = vctx;
    for (int64_t r = r0; r < r1; r++) {
        const void *row = (const uint8_t *)j->w->data + (size_t)r * j->w->row_bytes;
        for (int64_t t = 0; t < j->n; t++)
            store(j, t, r, qp_quant_dot_row(j->w->type, row, j->x + t * j->x_stride, j->w->cols));
    }
}

static void linear_rows(void *vctx, int64_t r0, int64_t r1) {
    const struct linear_job *j = vctx;
    float buf[CHUNK];
    int64_t cols = j->w->cols;
    bool one_chunk = cols <= CHUNK;
    for (int64_t r = r0; r < r1; r++) {
        if (one_chunk) qp_cpu_weight_row(j->w, r, 0, cols, buf);
        for (int64_t t0 = 0; t0 < j->n; t0 += TGROUP) {
            int64_t tn = j->n - t0 < TGROUP ? j->n - t0 : TGROUP;
            float sums[TGROUP] = {0};
            for (int64_t c0 = 0; c0 < cols; c0 += CHUNK) {
                int64_t len = cols - c0 < CHUNK ? cols - c0 : CHUNK;
                if (!one_chunk) qp_cpu_weight_row(j->w, r, c0, len, buf);
                for (int64_t t = 0; t < tn; t++)
                    sums[t] += qp_cpu_dot(buf, j->x + (t0 + t) * j->x_stride + c0, len);
            }
            for (int64_t t = 0; t < tn; t++) store(j, t0 + t, r, sums[t]);
        }
    }
}

void qp_cpu_linear(const struct qp_weight *w, const float *bias, const float *x, int64_t x_stride,
                   int64_t n, float *y, int64_t y_stride, const float *add, int64_t add_stride,
                   bool dequant_once) {
    struct linear_job j = {w, bias, x, x_stride, n, y, y_stride, add, add_stride, dequant_once};
    /* At least ~64K multiply-adds per range: below that, waking a thread costs more than it saves. */
    int64_t work = w->cols * n;
    int64_t min_rows = work >= 65536 ? 1 : 65536 / (work > 0 ? work : 1);
    qp_cpu_parallel_for(w->rows, min_rows, dequant_once ? linear_rows : linear_rows_dot, &j);
}
