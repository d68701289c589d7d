/* kemu.h — the CUDA kernels of kernels/cuda/ compiled as plain C++ and run on the CPU, so that
 * their index arithmetic, fragment layouts, barriers and bulk-copy rings are tested on machines
 * without a GPU (tests/kemu.cmake builds test_gpu_ops against it as test_gpu_ops_emu).
 *
 * What it is: a block-at-a-time emulator. Each thread of a block is a fiber (Boost.Context) on one
 * OS thread; fibers switch only at the points where CUDA threads communicate: __syncthreads, the
 * warp collectives (__shfl_*_sync, mma.sync), a failed mbarrier wait, and a wait on another
 * block (kemu::spin, grid_sync.cuh). Blocks of a grid run one after another, in order, on the
 * calling OS thread; the blocks of a cooperative launch (kemu_launch with coop, which grid_sync.cuh's
 * qp_cuda_launch_coop calls) run all at once, one OS thread each, as the card guarantees for
 * such a launch, so that blocks can wait on each other. Shared memory is thread_local storage
 * (every fiber of the block sees it); dynamic shared memory is a buffer of the launch's size,
 * filled with 0xFF (NaN as floats) before each block. Atomics and __threadfence are the host's.
 *
 * What it checks that the hardware would only show as a hang, a fault or a wrong number: all 32
 * lanes of a warp reach the same collective (a divergent shuffle or mma aborts with the two
 * lanes' operations); a block whose threads can no longer progress (a barrier some thread never
 * reaches, an mbarrier whose bytes never arrive) aborts as a deadlock; bulk copies must be
 * 16-byte aligned, a multiple of 16 bytes and read inside one cudaMalloc allocation; a bulk
 * copy's destination reads as 0xFF until a thread's mbarrier wait completes it (so a read
 * before the wait, or a slot re-issued while another warp still reads it, gives NaN); dynamic
 * shared memory is bounded by the function's attribute (48 KiB by default, 227 KiB at most).
 *
 * A wait on global memory that another block must satisfy aborts as a deadlock in an ordinary
 * launch (its blocks run in turn, as nothing guarantees otherwise on the card); in a cooperative
 * one it aborts when no block has signalled for k_coop_stall_s seconds. A cooperative grid larger
 * than the card could hold resident (132 SMs; 2,048 threads, 32 blocks and 228 KiB of shared
 * memory an SM) fails to launch, as on the card.
 *
 * What it cannot check: timing, the GPU's memory model between blocks (the host's x86 order is
 * stronger), registers and static shared memory in occupancy, and the tensor cores' internal
 * rounding: the f16 mma is emulated with f32 products summed in k order, the integer ones exactly.
 *
 * The semantics of every emulated instruction are written from the PTX ISA (fragment layouts of
 * mma.m16n8k16 and mma.m16n8k32: docs/cuda-kernels.md quotes them). Force-included (-include)
 * before each kernel source, with QP_KEMU defined; kernels/cuda/ takes its QP_KEMU branches in
 * the few helpers that are inline PTX on the GPU.
 */
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

/* CUDA's qualifiers: device code is host code here; __shared__ variables are one per block, and
 * the block's fibers share the OS thread. */
#undef __global__
#undef __device__
#undef __shared__
#undef __launch_bounds__
#undef __grid_constant__
#define __global__
#define __device__
#define __shared__ thread_local
#define __launch_bounds__(...)
#define __grid_constant__
#ifndef __noinline__
#define __noinline__ __attribute__((noinline))
#endif

namespace kemu {
/* Per OS thread, so per block of a cooperative launch. Defined here (inline variables), not
 * declared extern: every translation unit then sees that they need no dynamic initialisation,
 * and g++ emits no TLS wrapper call, whose weak-symbol test -fsanitize=null miscompiles into a
 * false "reference binding to null pointer" (g++ 12). */
inline thread_local const uint3 *cur_tid; /* the running fiber's threadIdx */
inline thread_local uint3 block_idx;
inline thread_local dim3 block_dim, grid_dim;

void syncthreads();
/* A thread waiting on global memory that another block writes: lets the block's other threads,
 * and the other blocks, run (grid_sync.cuh). */
void spin();
/* Adds v to a grid_sync.cuh counter (release) and counts as progress for the deadlock check. */
void counter_add(unsigned long long *c, unsigned long long v);
uint64_t globaltimer_ns();
uint64_t shfl(unsigned mask, uint64_t v, int lane_arg, bool xor_mode, int width);
enum mma_kind { MMA_F16_16816, MMA_S8_16832, MMA_U8S8_16832, MMA_U8S8_16816 };
/* One warp-wide mma.sync: a[4], b[2] the lane's registers (unused ones ignored), c[4] the
 * accumulators in and the result out, as raw 32-bit words (f32 or s32). */
void mma(mma_kind kind, const uint32_t a[4], const uint32_t b[2], uint32_t c[4]);
void mbar_init(uint64_t *bar, unsigned count);
void mbar_arrive_tx(uint64_t *bar, uint32_t bytes);
void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *bar);
void mbar_wait(uint64_t *bar, uint32_t parity);
void *dyn_smem();
[[noreturn]] void trap(const char *why);
/* A kernel launch on stream st: run now, or recorded while st is being captured into a graph.
 * Returns the launch's configuration error (as the runtime would) or cudaSuccess. */
cudaError_t launch(const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t st, std::function<void()> body,
                   bool coop);
/* Blocks of `threads` threads with `smem` bytes of dynamic shared memory that an SM holds at once. */
int blocks_per_sm(int threads, size_t smem);
} // namespace kemu

#define threadIdx (*kemu::cur_tid)
#define blockIdx (static_cast<const uint3 &>(kemu::block_idx))
#define blockDim (static_cast<const dim3 &>(kemu::block_dim))
#define gridDim (static_cast<const dim3 &>(kemu::grid_dim))

static inline void __syncthreads(void) { kemu::syncthreads(); }
static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
[[noreturn]] static inline void __trap(void) { kemu::trap("__trap() reached"); }

template <typename T> static inline T kemu_shfl_t(unsigned mask, T v, int arg, bool xor_mode, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a register-sized value");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    b = kemu::shfl(mask, b, arg, xor_mode, width);
    T r;
    memcpy(&r, &b, sizeof r);
    return r;
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return kemu_shfl_t(mask, v, lane_mask, true, width);
}
template <typename T> static inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
    return kemu_shfl_t(mask, v, src_lane, false, width);
}

/* A warp's lanes meet (a shuffle of nothing: the rendezvous of a warp collective; a block's lanes
 * are fibers of one thread, so memory is ordered without more). */
static inline void __syncwarp(unsigned mask = 0xffffffffu) { (void)__shfl_sync(mask, 0, 0); }

/* Nonzero when pred is nonzero in every lane of mask (the whole warp here): an AND butterfly. */
static inline int __all_sync(unsigned mask, int pred) {
    int v = pred != 0;
    for (int o = 16; o > 0; o >>= 1) v &= __shfl_xor_sync(mask, v, o);
    return v;
}

template <typename T> static inline T __ldg(const T *p) { return *p; }
template <typename T> static inline T __ldcg(const T *p) { return *p; }
static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
/* PTX prmt, default mode: byte n of the result is byte (s >> 4n) & 7 of {y, x} (x bytes 0..3). */
static inline unsigned __byte_perm(unsigned x, unsigned y, unsigned s) {
    const uint64_t v = (uint64_t)x | ((uint64_t)y << 32);
    unsigned r = 0;
    for (int n = 0; n < 4; n++) r |= (unsigned)((v >> (8 * ((s >> (4 * n)) & 7))) & 0xFF) << (8 * n);
    return r;
}
/* dp4a: c + the sum of the products of the four signed bytes of a and of b. */
static inline int __dp4a(int a, int b, int c) {
    for (int k = 0; k < 4; k++) c += (int)(int8_t)(a >> (8 * k)) * (int)(int8_t)(b >> (8 * k));
    return c;
}
/* cvt.rni.s32.f32: round to nearest even; NaN gives 0, out of range saturates. */
static inline int __float2int_rn(float f) {
    if (f != f) return 0;
    if (f >= 2147483647.0f) return INT32_MAX;
    if (f <= -2147483648.0f) return INT32_MIN;
    return (int)nearbyintf(f);
}
static inline size_t __cvta_generic_to_shared(const void *p) { return (size_t)p; }
static inline long long clock64(void) { return 0; }

/* Atomics: the host's (the fibers of a block never interleave inside a statement, but the blocks
 * of a cooperative launch run on OS threads side by side). kemu_rmw: *p = f(*p), returning the old. */
template <typename T, typename F> static inline T kemu_rmw(T *p, F f) {
    T o, n;
    __atomic_load(p, &o, __ATOMIC_SEQ_CST);
    do n = f(o);
    while (!__atomic_compare_exchange(p, &o, &n, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return o;
}
template <typename T> static inline T atomicAdd(T *p, T v) { return kemu_rmw(p, [v](T o) { return (T)(o + v); }); }
static inline unsigned atomicInc(unsigned *p, unsigned lim) {
    return kemu_rmw(p, [lim](unsigned o) { return o >= lim ? 0u : o + 1; });
}
template <typename T> static inline T atomicCAS(T *p, T cmp, T v) {
    __atomic_compare_exchange(p, &cmp, &v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp; /* the old value either way */
}
template <typename T> static inline T atomicExch(T *p, T v) { return kemu_rmw(p, [v](T) { return v; }); }
template <typename T> static inline T atomicMax(T *p, T v) { return kemu_rmw(p, [v](T o) { return v > o ? v : o; }); }
template <typename T> static inline T atomicMin(T *p, T v) { return kemu_rmw(p, [v](T o) { return v < o ? v : o; }); }

/* The runtime's C++ overloads that take a kernel (nvcc's headers declare them for CUDA sources). */
template <typename T> static inline cudaError_t cudaFuncSetAttribute(T *fn, cudaFuncAttribute a, int v) {
    return ::cudaFuncSetAttribute((const void *)fn, a, v);
}
template <typename T> static inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *fa, T *fn) {
    return ::cudaFuncGetAttributes(fa, (const void *)fn);
}
template <typename T>
static inline cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int *n, T *, int threads, size_t smem) {
    if (threads < 1 || threads > 1024) return cudaErrorInvalidValue;
    *n = kemu::blocks_per_sm(threads, smem);
    return cudaSuccess;
}

/* A launch: the kernel's arguments converted once to its parameter types, then the kernel body
 * run by every thread of every block. coop: a cooperative launch, every block at once (see the
 * file comment), or cudaErrorCooperativeLaunchTooLarge where the card could not hold them all. */
template <typename... KArgs, typename... Args>
static cudaError_t kemu_launch(void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st, bool coop,
                               Args &&...args) {
    auto t = std::make_shared<std::tuple<typename std::decay<KArgs>::type...>>(std::forward<Args>(args)...);
    return kemu::launch((const void *)k, grid, block, smem, st, [k, t]() { std::apply(k, *t); }, coop);
}
