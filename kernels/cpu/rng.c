/* rng.c — splitmix64 and the derived uniform helpers declared in qp_rng.h. */
#include "qp_rng.h"

uint64_t qp_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float qp_rng_uniform(uint64_t *state) {
    return (float)(qp_rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

uint32_t qp_rng_below(uint64_t *state, uint32_t n) {
    return (uint32_t)(((qp_rng_next(state) >> 32) * (uint64_t)n) >> 32);
}
