/* argmax.c — greedy token choice (CPU reference): first index of the maximum; NaNs never win. */
#include "qp_cpu.h"

int32_t qp_cpu_argmax(const float *x, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++)
        if (x[i] == x[i] && (best < 0 || x[i] > x[best])) best = i;
    return best < 0 ? 0 : (int32_t)best;
}
