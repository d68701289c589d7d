/* qp_cpu.h — the CPU reference ops as plain-argument C functions (kernels/cpu/).
 *
 * These are the numerics every other backend is tested against: f32 activations, f32
 * accumulation, Qwen2 semantics as docs/ops.md states them. They check nothing: the op-table
 * entries (qp_cpu_ops[] in kernels/cpu/ops.c) check shapes against struct qp_op_args and then
 * call these. Buffers are row-major; "[n][w]" is n rows of w floats, rows contiguous unless a
 * stride argument says otherwise. No function allocates or does I/O; qp_cpu_linear and
 * qp_cpu_attention spread their work over a persistent thread pool (kernels/cpu/pool.c) of
 * qp_cpu_set_threads threads (default: the online processor count).
 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qp_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest head_dim the CPU rope and attention accept (stack buffers of this size). */
#define QP_CPU_MAX_HEAD_DIM 1024

/* Most threads the CPU ops use. */
#define QP_CPU_MAX_THREADS 256

/* Sets the threads the CPU ops use from now on, the caller included, for the whole process:
 * n in [1, QP_CPU_MAX_THREADS] (larger is capped); n <= 0 = one per online processor. Starts
 * the workers that count needs; a smaller count leaves extra workers asleep. Returns the count
 * in effect (fewer than n when the system refused a thread). Jobs already running keep theirs. */
int qp_cpu_set_threads(int n);

/* Threads the CPU ops use (the caller included); the first call without an earlier
 * qp_cpu_set_threads starts the default count. */
int qp_cpu_thread_count(void);

/* True when the CPU ops can read weights of this GGML type. */
bool qp_cpu_weight_type_supported(int32_t type);

/* dst[0..n) = elements [first, first+n) of row `row` of w, dequantized to f32. first and n must
 * be multiples of the type's block size, the range inside the row. */
void qp_cpu_weight_row(const struct qp_weight *w, int64_t row, int64_t first, int64_t n, float *dst);

/* out [n][w->cols]: out[t] = row rows[t].token of w (each 0 <= token < w->rows). */
void qp_cpu_embed(const struct qp_weight *w, const struct qp_step_row *rows, int64_t n, float *out);

/* out [n][dim] = x[t] / sqrt(mean(x[t]^2) + eps) * w, w [dim]. out may equal x. */
void qp_cpu_rms_norm(const float *x, const float *w, float *out, int64_t n, int64_t dim, float eps);

/* For t < n, r < w->rows:
 *   y[t*y_stride + r] = (add ? add[t*add_stride + r] : 0) + (sum_c W[r][c] * x[t*x_stride + c] + bias[r])
 * x rows hold w->cols floats; bias [w->rows] or NULL; add may equal y (in place).
 * dequant_once false (decode): each dot is qp_quant_dot_row. true (prefill): each weight row is
 * dequantized once (per group of 32 tokens when a row exceeds 16384 elements) and dotted with
 * every token (qp_cpu_dot). For a given dequant_once, an element's bits depend on neither n nor
 * the thread count; the two modes differ by rounding (a few ulp of sum |W x|). */
void qp_cpu_linear(const struct qp_weight *w, const float *bias, const float *x, int64_t x_stride,
                   int64_t n, float *y, int64_t y_stride, const float *add, int64_t add_stride,
                   bool dequant_once);

/* In place on x [n][n_head*head_dim] (rows x_stride floats apart): NEOX RoPE, for i < head_dim/2
 * the pair (x[i], x[i + head_dim/2]) of every head of row t rotates by rows[t].pos *
 * base^(-2i/head_dim). head_dim even, <= QP_CPU_MAX_HEAD_DIM. The angles are computed in double,
 * the rotation in f32. */
void qp_cpu_rope(float *x, int64_t x_stride, int64_t n, int32_t n_head, int32_t head_dim,
                 const struct qp_step_row *rows, float base);

/* Position rows[t].pos of slot rows[t].slot of the cache gets k[t], v[t] ([n][kv->kv_dim], f32),
 * converted to the cache's type (F16: round to nearest even); padding rows (slot < 0) write
 * nothing. Every other row: 0 <= slot < kv->slots, 0 <= pos < kv->ctx. */
void qp_cpu_kv_write(const struct qp_kv_ref *kv, const float *k, const float *v, int64_t n,
                     const struct qp_step_row *rows);

/* out [n][n_head*head_dim]: for row t and head h, the softmax-weighted sum of the V rows 0..pos
 * of its slot (pos = rows[t].pos) with weights softmax(q·K_j / sqrt(head_dim)), reading KV head
 * h / (n_head / n_head_kv); a padding row (slot < 0) gives 0. q [n][n_head*head_dim]. Softmax in
 * f32 with max subtraction (online over chunks of 2048 positions). n_head % n_head_kv == 0. */
void qp_cpu_attention(const float *q, const struct qp_kv_ref *kv, float *out, int64_t n, int32_t n_head,
                      int32_t n_head_kv, int32_t head_dim, const struct qp_step_row *rows);

/* silu(g) = g / (1 + exp(-g)) in f32. */
float qp_cpu_silu(float g);

/* out[i] = silu(g[i]) * u[i], i < n. out may equal g or u. */
void qp_cpu_swiglu(const float *g, const float *u, float *out, int64_t n);

/* out[i] = a[i] + b[i], i < n. out may equal a or b. */
void qp_cpu_add(const float *a, const float *b, float *out, int64_t n);

/* In place on x [n][w]: each row becomes exp(x - max) / sum(exp(x - max)), f32. */
void qp_cpu_softmax(float *x, int64_t n, int64_t w);

/* Index of the largest of x[0..n), n >= 1; the first one on ties; NaNs never win (0 if all NaN). */
int32_t qp_cpu_argmax(const float *x, int64_t n);

/* The rows move on (struct qp_step says how, by n_out). */
void qp_cpu_step_advance(struct qp_step *step);

#ifdef __cplusplus
}
#endif
