/* rope.c — rotary position embedding, NEOX pairing as Qwen2 uses it (CPU reference).
 *
 * For i < head_dim/2 the pair (x[i], x[i + head_dim/2]) rotates by theta = pos * base^(-2i/hd).
 * Angles, cos and sin are computed in double (exact to f32 rounding even at positions in the
 * hundreds of thousands, where pos*freq in f32 would be off by milliradians), then the rotation
 * is done in f32.
 */
#include <math.h>

#include "qp_cpu.h"

void qp_cpu_rope(float *x, int64_t x_stride, int64_t n, int32_t n_head, int32_t head_dim,
                 const struct qp_step_row *rows, float base) {
    float cs[QP_CPU_MAX_HEAD_DIM / 2], sn[QP_CPU_MAX_HEAD_DIM / 2];
    int32_t half = head_dim / 2;
    for (int64_t t = 0; t < n; t++) {
        double pos = (double)rows[t].pos;
        for (int32_t i = 0; i < half; i++) {
            double theta = pos * pow((double)base, -2.0 * i / head_dim);
            cs[i] = (float)cos(theta);
            sn[i] = (float)sin(theta);
        }
        for (int32_t h = 0; h < n_head; h++) {
            float *v = x + t * x_stride + (int64_t)h * head_dim;
            for (int32_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = a * sn[i] + b * cs[i];
            }
        }
    }
}
