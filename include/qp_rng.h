/* qp_rng.h — the project's deterministic pseudo-random numbers (tests, synthetic models).
 *
 * splitmix64 (Steele, Lea, Flood 2014; the seeding generator of xoshiro): state += 0x9E3779B97F4A7C15,
 * then a fixed 64-bit mix of the state. Any seed (0 included) is a valid state; the same seed
 * gives the same sequence on every platform. Not for cryptography. Implemented in
 * kernels/cpu/rng.c.
 */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Next 64 random bits; advances *state. */
uint64_t qp_rng_next(uint64_t *state);

/* Uniform float in [0, 1) with 24 random bits (top bits of qp_rng_next); advances *state. */
float qp_rng_uniform(uint64_t *state);

/* Uniform integer in [0, n) for n >= 1 (multiply-shift; bias below 2^-32). */
uint32_t qp_rng_below(uint64_t *state, uint32_t n);

#ifdef __cplusplus
}
#endif
