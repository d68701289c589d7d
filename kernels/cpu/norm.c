/* norm.c — RMSNorm (CPU reference): x / sqrt(mean(x^2) + eps) * w, f32 accumulation. */
#include <math.h>

#include "cpu_internal.h"
#include "qp_cpu.h"

void qp_cpu_rms_norm(const float *x, const float *w, float *out, int64_t n, int64_t dim, float eps) {
    for (int64_t t = 0; t < n; t++) {
        const float *xr = x + t * dim;
        float *o = out + t * dim;
        float ss = qp_cpu_dot(xr, xr, dim);
        float inv = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int64_t i = 0; i < dim; i++) o[i] = xr[i] * inv * w[i];
    }
}
