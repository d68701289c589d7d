/* activation.c — SwiGLU, residual add and softmax (CPU reference), f32 throughout. */
#include <math.h>

#include "qp_cpu.h"

float qp_cpu_silu(float g) {
    return g / (1.0f + expf(-g));
}

void qp_cpu_swiglu(const float *g, const float *u, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = qp_cpu_silu(g[i]) * u[i];
}

void qp_cpu_add(const float *a, const float *b, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void qp_cpu_softmax(float *x, int64_t n, int64_t w) {
    for (int64_t t = 0; t < n; t++) {
        float *r = x + t * w;
        float m = r[0];
        for (int64_t i = 1; i < w; i++)
            if (r[i] > m) m = r[i];
        float s = 0.0f;
        for (int64_t i = 0; i < w; i++) {
            r[i] = expf(r[i] - m);
            s += r[i];
        }
        float inv = 1.0f / s;
        for (int64_t i = 0; i < w; i++) r[i] *= inv;
    }
}
