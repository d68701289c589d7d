/* kemu.cpp — the emulator behind kemu.h: the fiber scheduler of a block, the warp collectives,
 * mbarriers and bulk copies, and the parts of the CUDA runtime and cuBLAS APIs that kernels/cuda/
 * and tests/test_gpu_ops.c call, on host memory. The file comment of kemu.h says what is
 * emulated, what is checked and what is not.
 */
#include <cublas_v2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <boost/context/fiber.hpp>
#include <map>
#include <sched.h>
#include <thread>
#include <unordered_map>
#include <vector>

/* last: kemu.h defines __noinline__, which the attributes of the headers above spell too */
#include "kemu.h"

namespace kemu {

namespace {

/* S_SPIN: in an mbarrier wait; S_GSPIN: waiting on global memory (kemu::spin) */
enum lane_state { S_RUN, S_SPIN, S_GSPIN, S_BAR, S_WARP, S_DONE };
enum warp_op { OP_NONE, OP_SHFL, OP_MMA };
const char *const k_op_name[] = {"none", "shuffle", "mma.sync"};

struct lane {
    boost::context::fiber ctx; /* the suspended thread; empty while it runs and once it finished */
    uint3 tid;
    lane_state state;
    /* the collective this lane waits in */
    warp_op op;
    uint64_t val, out;
    int arg, width;
    bool xor_mode;
    mma_kind kind;
    uint32_t a[4], b[2], c[4];
};

struct pending_copy {
    void *dst;
    const void *src;
    uint32_t bytes;
};
struct mbarrier {
    unsigned count, pending;
    int64_t tx;
    uint32_t phase; /* phases completed */
    std::vector<pending_copy> copies;
};

const size_t k_stack = 256 * 1024;
const size_t k_smem_default = 48 * 1024, k_smem_max = 227 * 1024;
const int k_sms = 132; /* an H100 / H200 SXM: the grids are sized as on the real card */
/* an SM of sm_90: resident threads, blocks and shared memory (1 KiB of it reserved per block) */
const int k_sm_threads = 2048, k_sm_blocks = 32;
const size_t k_sm_smem = 228 * 1024, k_block_reserved_smem = 1024;
/* A cooperative launch whose blocks all wait on global memory while no block signals for this
 * long is reported as a deadlock (the kernels' own bounded waits usually say so first). */
const int k_coop_stall_s = 120;

/* The fiber stacks of one OS thread, kept for its later blocks and unmapped when it ends. The
 * calling thread's (ordinary launches) are mapped one at a time, each above a guard page. A
 * cooperative block's thread maps all its stacks at once, without guard pages: with two mappings
 * per stack, 132 blocks of 512 threads would pass the kernel's limit on mappings
 * (vm.max_map_count, 65,530 by default); a canary word at the bottom of each stack, checked when
 * the block ends, reports an overflow instead. */
const uint64_t k_canary = 0x6B656D75F1BE57ACull;
struct stack_pool {
    std::vector<void *> stacks;
    void *block_map = nullptr; /* a cooperative block's one mapping */
    size_t block_bytes = 0;
    ~stack_pool() {
        const long page = sysconf(_SC_PAGESIZE);
        if (block_map) munmap(block_map, block_bytes);
        else
            for (void *s : stacks) munmap((char *)s - page, k_stack + (size_t)page);
    }
};

/* The state of the block an OS thread runs (every block of an ordinary launch, in turn, on the
 * caller's thread; one block of a cooperative launch on a thread of its own). */
thread_local std::vector<lane> g_lanes;
thread_local stack_pool g_stacks;
thread_local std::vector<int> g_warp_count;
thread_local boost::context::fiber g_sched; /* the scheduler, while a thread runs */
thread_local int g_cur, g_live, g_bar_count;
thread_local uint64_t g_progress;
thread_local const std::function<void()> *g_body;
thread_local std::vector<unsigned char> g_smem;
thread_local size_t g_smem_bytes;
thread_local std::unordered_map<uint64_t *, mbarrier> g_mbars;
thread_local bool g_coop;                   /* this block is one of a cooperative launch */
std::atomic<uint64_t> g_grid_progress{0};   /* counter_add calls and finished blocks, all threads */
std::map<uintptr_t, size_t> g_allocs; /* cudaMalloc'd ranges: start -> bytes */
std::unordered_map<const void *, size_t> g_smem_attr;
cudaError_t g_last = cudaSuccess;

lane &me() { return g_lanes[g_cur]; }

void where(char *buf, size_t n) {
    const lane &l = me();
    snprintf(buf, n, "block (%u,%u,%u) thread (%u,%u,%u)", block_idx.x, block_idx.y, block_idx.z, l.tid.x, l.tid.y,
             l.tid.z);
}

[[noreturn]] void fail(const char *fmt, ...) {
    char w[96];
    where(w, sizeof w);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "kemu: %s: ", w);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(NULL);
    abort();
}

void yield() { g_sched = std::move(g_sched).resume(); }

void thread_body() {
    (*g_body)();
    lane &l = me();
    l.state = S_DONE;
    g_live--;
    g_progress++;
    const int w = g_cur / 32;
    if (g_warp_count[w]) fail("exited while %d lanes of its warp wait in a warp collective", g_warp_count[w]);
    if (g_bar_count && g_bar_count == g_live) { /* exited threads count as arrived at __syncthreads */
        for (lane &o : g_lanes)
            if (o.state == S_BAR) o.state = S_RUN;
        g_bar_count = 0;
    }
}

/* The lanes of warp w: [32 w, min(32 w + 32, n)). */
int warp_lanes(int w) {
    const int n = (int)g_lanes.size();
    return n - 32 * w < 32 ? n - 32 * w : 32;
}

float f16_bits(uint32_t reg, int half) {
    __half_raw r;
    r.x = (unsigned short)(reg >> (16 * half));
    return __half2float(__half(r));
}
int byte_of(uint32_t reg, int i, bool is_unsigned) {
    const uint8_t b = (uint8_t)(reg >> (8 * i));
    return is_unsigned ? (int)b : (int)(int8_t)b;
}

/* The PTX ISA's fragments, lane = 4 g + t (g = groupID, t = threadID_in_group):
 *   m16n8k16 f16: A a0,a1: row g, k 2t+{0,1} | a2,a3: row g+8 | a4,a5: row g, k 8+2t+{0,1} | a6,a7:
 *     row g+8, k 8+2t+{0,1} (two f16 per register, element 2r in the low half); B b0,b1: k 2t+{0,1},
 *     column g | b2,b3: k 8+2t+{0,1};
 *   m16n8k32 8-bit: A register r byte i: row g (r even) or g+8 (r odd), k 4t+i (r < 2) or
 *     16+4t+i; B register r byte i: k 4t+i+16r, column g;
 *   m16n8k16 8-bit: A register r byte i: row g + 8r, k 4t+i; B byte i: k 4t+i, column g;
 *   C/D (all): c0,c1: row g, columns 2t, 2t+1 | c2,c3: row g+8. */
void run_mma(int w) {
    lane *L = &g_lanes[32 * w];
    const mma_kind kind = L[0].kind;
    if (kind == MMA_F16_16816) {
        float A[16][16], B[16][8];
        for (int ln = 0; ln < 32; ln++) {
            const int g = ln >> 2, t = ln & 3;
            for (int r = 0; r < 4; r++)
                for (int h = 0; h < 2; h++) A[g + 8 * (r & 1)][8 * (r >> 1) + 2 * t + h] = f16_bits(L[ln].a[r], h);
            for (int r = 0; r < 2; r++)
                for (int h = 0; h < 2; h++) B[8 * r + 2 * t + h][g] = f16_bits(L[ln].b[r], h);
        }
        float C[16][8];
        for (int ln = 0; ln < 32; ln++) {
            const int g = ln >> 2, t = ln & 3;
            for (int i = 0; i < 4; i++) memcpy(&C[g + 8 * (i >> 1)][2 * t + (i & 1)], &L[ln].c[i], 4);
        }
        for (int m = 0; m < 16; m++)
            for (int n = 0; n < 8; n++) {
                float s = 0.0f;
                for (int k = 0; k < 16; k++) s += A[m][k] * B[k][n];
                C[m][n] += s;
            }
        for (int ln = 0; ln < 32; ln++) {
            const int g = ln >> 2, t = ln & 3;
            for (int i = 0; i < 4; i++) memcpy(&L[ln].c[i], &C[g + 8 * (i >> 1)][2 * t + (i & 1)], 4);
        }
        return;
    }
    const bool au = kind != MMA_S8_16832, k32 = kind != MMA_U8S8_16816;
    const int K = k32 ? 32 : 16;
    int A[16][32], B[32][8];
    for (int ln = 0; ln < 32; ln++) {
        const int g = ln >> 2, t = ln & 3;
        for (int i = 0; i < 4; i++) {
            if (k32) {
                for (int r = 0; r < 4; r++) A[g + 8 * (r & 1)][16 * (r >> 1) + 4 * t + i] = byte_of(L[ln].a[r], i, au);
                for (int r = 0; r < 2; r++) B[16 * r + 4 * t + i][g] = byte_of(L[ln].b[r], i, false);
            } else {
                for (int r = 0; r < 2; r++) A[g + 8 * r][4 * t + i] = byte_of(L[ln].a[r], i, au);
                B[4 * t + i][g] = byte_of(L[ln].b[0], i, false);
            }
        }
    }
    int32_t C[16][8];
    for (int ln = 0; ln < 32; ln++) {
        const int g = ln >> 2, t = ln & 3;
        for (int i = 0; i < 4; i++) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = (int32_t)L[ln].c[i];
    }
    for (int n = 0; n < 8; n++) {
        bool zero = true; /* a zero column of B adds nothing: the split x uses 3 of 8 */
        for (int k = 0; k < K && zero; k++) zero = B[k][n] == 0;
        if (zero) continue;
        for (int m = 0; m < 16; m++) {
            int64_t s = C[m][n];
            for (int k = 0; k < K; k++) s += (int64_t)A[m][k] * B[k][n];
            C[m][n] = (int32_t)(uint32_t)(uint64_t)s; /* s32 accumulation wraps */
        }
    }
    for (int ln = 0; ln < 32; ln++) {
        const int g = ln >> 2, t = ln & 3;
        for (int i = 0; i < 4; i++) L[ln].c[i] = (uint32_t)C[g + 8 * (i >> 1)][2 * t + (i & 1)];
    }
}

/* The calling lane enters a warp collective (its operands already in its lane record); returns
 * when all lanes of its warp have entered and the results are in their records. */
void warp_collective() {
    lane &l = me();
    const int w = g_cur / 32;
    if (warp_lanes(w) != 32) fail("a %s in a partial warp (%d lanes): not emulated", k_op_name[l.op], warp_lanes(w));
    l.state = S_WARP;
    g_progress++;
    if (++g_warp_count[w] < 32) {
        yield();
        return;
    }
    lane *L = &g_lanes[32 * w];
    for (int i = 0; i < 32; i++) { /* every lane in the same collective */
        const lane &o = L[i];
        if (o.op != l.op || (l.op == OP_MMA && o.kind != l.kind) ||
            (l.op == OP_SHFL && (o.xor_mode != l.xor_mode || o.width != l.width)))
            fail("warp %d diverges: lane %d is in a %s while lane %d is in a %s", w, i, k_op_name[o.op], g_cur & 31,
                 k_op_name[l.op]);
    }
    if (l.op == OP_SHFL) {
        for (int i = 0; i < 32; i++) {
            const int seg = i & ~(L[i].width - 1);
            int src;
            if (L[i].xor_mode) {
                src = i ^ L[i].arg;
                if ((src & ~(L[i].width - 1)) > seg || src > 31) src = i; /* a later segment: its own value */
            } else {
                src = seg + (L[i].arg & (L[i].width - 1));
            }
            L[i].out = L[src].val;
        }
    } else {
        run_mma(w);
    }
    for (int i = 0; i < 32; i++) L[i].state = S_RUN;
    g_warp_count[w] = 0;
}

/* A cooperative block's stacks: n in one mapping, each with its canary. */
void map_block_stacks(int n) {
    if (g_stacks.block_map || !g_stacks.stacks.empty()) return;
    g_stacks.block_bytes = k_stack * (size_t)n;
    void *p = mmap(NULL, g_stacks.block_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "kemu: mmap of a cooperative block's %d fiber stacks failed\n", n);
        abort();
    }
    g_stacks.block_map = p;
    for (int i = 0; i < n; i++) {
        char *base = (char *)p + k_stack * (size_t)i;
        memcpy(base, &k_canary, sizeof k_canary);
        g_stacks.stacks.push_back(base);
    }
}

void check_block_stacks() {
    for (size_t i = 0; i < g_stacks.stacks.size(); i++)
        if (memcmp(g_stacks.stacks[i], &k_canary, sizeof k_canary)) {
            fprintf(stderr, "kemu: block (%u,%u,%u) thread %zu overflowed its %zu KiB fiber stack\n", block_idx.x,
                    block_idx.y, block_idx.z, i, k_stack / 1024);
            abort();
        }
}

void *stack_of(int i) {
    while ((int)g_stacks.stacks.size() <= i) {
        const long page = sysconf(_SC_PAGESIZE);
        void *p = mmap(NULL, k_stack + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) {
            fprintf(stderr, "kemu: mmap of a fiber stack failed\n");
            abort();
        }
        mprotect(p, (size_t)page, PROT_NONE); /* a guard page under the stack */
        g_stacks.stacks.push_back((char *)p + page);
    }
    return g_stacks.stacks[(size_t)i];
}

/* Boost.Context's stack allocator over the stacks above, which live as long as the process. */
struct kept_stack {
    int i;
    boost::context::stack_context allocate() {
        boost::context::stack_context sc;
        sc.size = k_stack;
        sc.sp = (char *)stack_of(i) + k_stack; /* the top: stacks grow down */
        return sc;
    }
    void deallocate(boost::context::stack_context &) noexcept {}
};

[[noreturn]] void deadlock() {
    fprintf(stderr, "kemu: block (%u,%u,%u): deadlock: %d threads live, none can proceed\n", block_idx.x, block_idx.y,
            block_idx.z, g_live);
    int shown = 0;
    for (size_t i = 0; i < g_lanes.size() && shown < 8; i++) {
        const lane &l = g_lanes[i];
        if (l.state == S_DONE) continue;
        fprintf(stderr, "  thread %zu: %s\n", i,
                l.state == S_BAR     ? "at __syncthreads"
                : l.state == S_WARP  ? k_op_name[l.op]
                : l.state == S_SPIN  ? "in an mbarrier wait that cannot complete"
                : l.state == S_GSPIN ? (g_coop ? "waiting on global memory that no block writes"
                                               : "waiting on global memory that only another block could write: the "
                                                 "blocks of an ordinary launch run one at a time (a cooperative "
                                                 "launch, grid_sync.cuh, runs them together)")
                                     : "runnable");
        shown++;
    }
    fflush(NULL);
    abort();
}

/* The order in which a pass resumes the runnable threads (KEMU_SCHEDULE): forward (thread 0
 * first), reverse, or shuffle (a new random order every pass, seeded by KEMU_SEED). A kernel
 * whose warps share memory without the barrier between the write and the read gets the value
 * in some of these orders and not in others; tests/kemu.cmake runs test_gpu_ops in all three. */
enum schedule { SCHED_FORWARD, SCHED_REVERSE, SCHED_SHUFFLE };
schedule g_schedule;
uint64_t g_seed;             /* KEMU_SEED */
thread_local uint64_t g_rng; /* the seed, mixed with the block's number in a cooperative launch */

uint64_t next_random() { /* xorshift64 */
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

void read_schedule() {
    static bool done;
    if (done) return;
    done = true;
    const char *e = getenv("KEMU_SCHEDULE"), *seed = getenv("KEMU_SEED");
    if (!e || !strcmp(e, "forward")) g_schedule = SCHED_FORWARD;
    else if (!strcmp(e, "reverse")) g_schedule = SCHED_REVERSE;
    else if (!strcmp(e, "shuffle")) g_schedule = SCHED_SHUFFLE;
    else {
        fprintf(stderr, "kemu: KEMU_SCHEDULE=%s: expected forward, reverse or shuffle\n", e);
        exit(2);
    }
    g_rng = g_seed = seed ? strtoull(seed, NULL, 10) : 0x9E3779B97F4A7C15ull;
    if (!g_rng) g_rng = g_seed = 1;
    if (g_schedule != SCHED_FORWARD)
        fprintf(stderr, "kemu: schedule %s, seed %llu\n", e, (unsigned long long)g_rng);
}

void run_block() {
    const int n = (int)g_lanes.size();
    g_live = n;
    g_bar_count = 0;
    g_warp_count.assign((size_t)(n + 31) / 32, 0);
    g_mbars.clear();
    if (g_smem_bytes) memset(g_smem.data(), 0xFF, g_smem_bytes);
    for (int i = 0; i < n; i++) {
        lane &l = g_lanes[(size_t)i];
        const unsigned bx = block_dim.x, by = block_dim.y;
        l.tid = make_uint3((unsigned)i % bx, ((unsigned)i / bx) % by, (unsigned)i / (bx * by));
        l.state = S_RUN;
        l.op = OP_NONE;
        l.ctx = boost::context::fiber(std::allocator_arg, kept_stack{i}, [](boost::context::fiber &&sched) {
            g_sched = std::move(sched);
            thread_body();
            return std::move(g_sched);
        });
    }
    std::vector<int> order((size_t)n);
    for (int i = 0; i < n; i++) order[(size_t)i] = g_schedule == SCHED_REVERSE ? n - 1 - i : i;
    uint64_t grid_seen = 0;  /* g_grid_progress when this block last saw it move */
    struct timespec stalled; /* since then */
    clock_gettime(CLOCK_MONOTONIC, &stalled);
    while (g_live > 0) {
        const uint64_t before = g_progress;
        bool ran = false, gspin = false;
        if (g_schedule == SCHED_SHUFFLE)
            for (int i = n - 1; i > 0; i--) std::swap(order[(size_t)i], order[(size_t)(next_random() % (uint64_t)(i + 1))]);
        for (int k = 0; k < n; k++) {
            const int i = order[(size_t)k];
            lane &l = g_lanes[(size_t)i];
            if (l.state != S_RUN && l.state != S_SPIN && l.state != S_GSPIN) continue;
            g_cur = i;
            cur_tid = &l.tid;
            ran = true;
            l.ctx = std::move(l.ctx).resume();
            gspin |= l.state == S_GSPIN;
        }
        if (!ran) deadlock();
        if (g_progress != before) continue;
        /* nothing moved in this block: in a cooperative launch, threads waiting on global memory
         * wait for the other blocks (the OS thread steps aside for them) until none has moved
         * for k_coop_stall_s */
        if (!g_coop || !gspin) deadlock();
        const uint64_t now = g_grid_progress.load();
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (now != grid_seen) {
            grid_seen = now;
            stalled = t;
        } else if (t.tv_sec - stalled.tv_sec > k_coop_stall_s) {
            deadlock();
        }
        sched_yield();
    }
    g_grid_progress++;
}

mbarrier &mbar_of(uint64_t *bar, const char *what) {
    auto it = g_mbars.find(bar);
    if (it == g_mbars.end()) fail("%s on an mbarrier that was never initialised in this block", what);
    return it->second;
}

void mbar_try_complete(mbarrier &m) {
    if (m.pending == 0 && m.tx == 0) {
        m.phase++;
        m.pending = m.count;
        g_progress++;
    }
}

bool in_allocation(const void *p, size_t bytes) {
    const uintptr_t a = (uintptr_t)p;
    auto it = g_allocs.upper_bound(a);
    if (it == g_allocs.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

} // namespace

void syncthreads() {
    lane &l = me();
    l.state = S_BAR;
    g_progress++;
    if (++g_bar_count < g_live) {
        yield();
        return;
    }
    for (lane &o : g_lanes)
        if (o.state == S_BAR) o.state = S_RUN;
    g_bar_count = 0;
}

uint64_t shfl(unsigned mask, uint64_t v, int lane_arg, bool xor_mode, int width) {
    lane &l = me();
    if (mask != 0xffffffffu) fail("shuffle with mask %#x: only full-warp masks are emulated", mask);
    if (width < 1 || width > 32 || (width & (width - 1))) fail("shuffle width %d: not a power of two <= 32", width);
    l.op = OP_SHFL;
    l.val = v;
    l.arg = lane_arg;
    l.xor_mode = xor_mode;
    l.width = width;
    warp_collective();
    return me().out;
}

void mma(mma_kind kind, const uint32_t a[4], const uint32_t b[2], uint32_t c[4]) {
    lane &l = me();
    l.op = OP_MMA;
    l.kind = kind;
    memcpy(l.a, a, sizeof l.a);
    memcpy(l.b, b, sizeof l.b);
    memcpy(l.c, c, sizeof l.c);
    warp_collective();
    memcpy(c, me().c, sizeof me().c);
}

void mbar_init(uint64_t *bar, unsigned count) {
    if (((uintptr_t)bar & 7) != 0) fail("mbarrier at %p: not 8-byte aligned", (void *)bar);
    mbarrier &m = g_mbars[bar];
    m = mbarrier{count, count, 0, 0, {}};
    *bar = 0;
}

void mbar_arrive_tx(uint64_t *bar, uint32_t bytes) {
    mbarrier &m = mbar_of(bar, "arrive.expect_tx");
    if (m.pending == 0) fail("arrive on an mbarrier whose phase has no arrivals left");
    m.tx += bytes;
    m.pending--;
    mbar_try_complete(m);
}

void bulk_copy(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    mbarrier &m = mbar_of(bar, "cp.async.bulk");
    if (((uintptr_t)dst & 15) || ((uintptr_t)src & 15) || (bytes & 15) || bytes == 0)
        fail("cp.async.bulk of %u bytes from %p to %p: addresses and size must be multiples of 16", bytes, src, dst);
    if (!in_allocation(src, bytes)) fail("cp.async.bulk reads %u bytes at %p: outside every cudaMalloc allocation", bytes, src);
    const unsigned char *s = g_smem.data();
    if (!((unsigned char *)dst >= s && (unsigned char *)dst + bytes <= s + g_smem_bytes))
        fail("cp.async.bulk writes %u bytes at %p: outside the block's dynamic shared memory", bytes, dst);
    memset(dst, 0xFF, bytes); /* in flight: unreadable until a wait completes it */
    m.copies.push_back(pending_copy{dst, src, bytes});
}

void mbar_wait(uint64_t *bar, uint32_t parity) {
    for (;;) {
        mbarrier &m = mbar_of(bar, "mbarrier wait");
        for (const pending_copy &c : m.copies) {
            memcpy(c.dst, c.src, c.bytes);
            m.tx -= c.bytes;
        }
        if (!m.copies.empty()) {
            m.copies.clear();
            g_progress++;
            mbar_try_complete(m);
        }
        if ((m.phase & 1u) != (parity & 1u)) break;
        me().state = S_SPIN;
        yield();
        me().state = S_RUN;
    }
}

void spin() {
    me().state = S_GSPIN;
    yield();
    me().state = S_RUN;
}

void counter_add(unsigned long long *c, unsigned long long v) {
    __atomic_fetch_add(c, v, __ATOMIC_RELEASE);
    g_progress++;
    g_grid_progress++;
}

uint64_t globaltimer_ns() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int blocks_per_sm(int threads, size_t smem) {
    const int by_threads = k_sm_threads / ((threads + 31) / 32 * 32);
    const int by_smem = (int)(k_sm_smem / (smem + k_block_reserved_smem));
    const int n = by_threads < by_smem ? by_threads : by_smem;
    return n < k_sm_blocks ? n : k_sm_blocks;
}

void *dyn_smem() { return g_smem.data(); }

[[noreturn]] void trap(const char *why) { fail("%s", why); }

namespace {

/* The calling OS thread's block state for a launch of this shape. */
void setup_thread(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body, bool coop) {
    g_smem.assign(smem + 16, 0xFF);
    g_smem_bytes = smem;
    block_dim = block;
    grid_dim = grid;
    g_lanes.clear();
    g_lanes.resize((size_t)block.x * block.y * block.z);
    g_body = &body;
    g_coop = coop;
}

void run_grid(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    read_schedule();
    setup_thread(grid, block, smem, body, false);
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                block_idx = make_uint3(x, y, z);
                run_block();
            }
}

/* Every block at once, one OS thread each; returns when all have finished. */
void run_grid_coop(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
    read_schedule();
    std::vector<std::thread> threads;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++)
                threads.emplace_back([=, &body]() {
                    setup_thread(grid, block, smem, body, true);
                    map_block_stacks((int)(block.x * block.y * block.z));
                    block_idx = make_uint3(x, y, z);
                    g_rng = g_seed ^ (0x9E3779B97F4A7C15ull * (1 + x + grid.x * (y + (uint64_t)grid.y * z)));
                    if (!g_rng) g_rng = 1;
                    run_block();
                    check_block_stacks();
                });
    for (std::thread &t : threads) t.join();
}

} // namespace

/* ---- streams and graph capture: work runs at once, unless its stream is being captured ---- */

std::vector<std::function<void()>> *g_capture; /* the graph being captured, or NULL */
cudaStream_t g_capture_stream;

bool capturing(cudaStream_t st) { return g_capture && st == g_capture_stream; }

/* Runs fn now, or records it into the graph being captured on st. */
void enqueue(cudaStream_t st, std::function<void()> fn) {
    if (capturing(st)) g_capture->push_back(std::move(fn));
    else fn();
}

cudaError_t launch(const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t st, std::function<void()> body,
                   bool coop) {
    const uint64_t threads = (uint64_t)block.x * block.y * block.z;
    if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535 || grid.x > 0x7fffffffu)
        return g_last = cudaErrorInvalidConfiguration;
    auto it = g_smem_attr.find(fn);
    const size_t limit = it == g_smem_attr.end() ? k_smem_default : it->second;
    if (smem > limit) return g_last = cudaErrorInvalidValue;
    if (coop) {
        const uint64_t blocks = (uint64_t)grid.x * grid.y * grid.z;
        if (blocks > (uint64_t)k_sms * (uint64_t)blocks_per_sm((int)threads, smem))
            return g_last = cudaErrorCooperativeLaunchTooLarge;
        enqueue(st, [grid, block, smem, body]() { run_grid_coop(grid, block, smem, body); });
        return cudaSuccess;
    }
    enqueue(st, [grid, block, smem, body]() { run_grid(grid, block, smem, body); });
    return cudaSuccess;
}

cudaError_t set_smem_attr(const void *fn, int bytes) {
    if (bytes < 0 || (size_t)bytes > k_smem_max) return g_last = cudaErrorInvalidValue;
    g_smem_attr[fn] = (size_t)bytes;
    return cudaSuccess;
}

} // namespace kemu

/* ---- the CUDA runtime API, on host memory; kernels run synchronously at their launch ---- */

extern "C" {

cudaError_t cudaGetDeviceCount(int *n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d != 0) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "kemu (the CPU emulator of tests/kemu/, shaped as an sm_90 card)");
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = kemu::k_sms;
    p->sharedMemPerBlockOptin = kemu::k_smem_max;
    p->sharedMemPerBlock = kemu::k_smem_default;
    p->maxThreadsPerBlock = 1024;
    p->warpSize = 32;
    p->totalGlobalMem = (size_t)16 << 30;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d) {
    if (d != 0) return cudaErrorInvalidDevice;
    switch (a) {
    case cudaDevAttrMultiProcessorCount: *v = kemu::k_sms; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = (int)kemu::k_smem_max; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; return cudaSuccess;
    case cudaDevAttrClockRate: *v = 1980000; return cudaSuccess; /* kHz, an H100 SXM's boost */
    default: return cudaErrorInvalidValue;
    }
}
cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total) {
    *free_b = (size_t)15 << 30;
    *total = (size_t)16 << 30;
    return cudaSuccess;
}
/* 256-byte aligned as the runtime's, and exactly n bytes long (the runtime rounds up): under
 * AddressSanitizer a kernel that reads past its buffer is reported, where the GPU would read
 * whatever follows. */
cudaError_t cudaMalloc(void **p, size_t n) {
    if (posix_memalign(p, 256, n ? n : 1) != 0) return cudaErrorMemoryAllocation;
    kemu::g_allocs[(uintptr_t)*p] = n;
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    auto it = kemu::g_allocs.find((uintptr_t)p);
    if (it == kemu::g_allocs.end()) return cudaErrorInvalidValue;
    kemu::g_allocs.erase(it);
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t st) {
    kemu::enqueue(st, [d, s, n]() { memmove(d, s, n); });
    return cudaSuccess;
}
cudaError_t cudaMemset(void *d, int v, size_t n) {
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st) {
    kemu::enqueue(st, [d, v, n]() { memset(d, v, n); });
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) { return kemu::g_capture ? cudaErrorStreamCaptureUnsupported : cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    return kemu::capturing(st) ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int) {
    *p = malloc(n ? n : 1);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}

/* Streams and events: work is done when it is enqueued, so a stream is a name and an event a
 * host timestamp. */
struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    double ms;
};
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned int flags) {
    *st = new CUstream_st{flags};
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t st) {
    if (kemu::capturing(st)) return cudaErrorStreamCaptureUnsupported;
    delete st;
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = new CUevent_st{0.0};
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int) { return cudaEventCreate(e); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t st) {
    kemu::enqueue(st, [e]() {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        e->ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    });
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(b->ms - a->ms);
    return cudaSuccess;
}

/* Graphs: a captured stream's work as a list, replayed in order by cudaGraphLaunch. */
struct CUgraph_st {
    std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> work;
};
cudaError_t cudaStreamBeginCapture(cudaStream_t st, cudaStreamCaptureMode) {
    if (kemu::g_capture) return cudaErrorIllegalState;
    kemu::g_capture = new std::vector<std::function<void()>>();
    kemu::g_capture_stream = st;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t st, cudaGraph_t *g) {
    if (!kemu::capturing(st)) return cudaErrorIllegalState;
    *g = new CUgraph_st{std::move(*kemu::g_capture)};
    delete kemu::g_capture;
    kemu::g_capture = NULL;
    return cudaSuccess;
}
cudaError_t cudaGraphGetNodes(cudaGraph_t g, cudaGraphNode_t *nodes, size_t *n) {
    if (nodes) return cudaErrorNotSupported;
    *n = g->work.size();
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long) {
    *x = new CUgraphExec_st{g->work};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t st) {
    if (kemu::capturing(st)) return cudaErrorNotSupported;
    for (const auto &w : x->work) w();
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) {
    delete x;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
    const cudaError_t e = kemu::g_last;
    kemu::g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return kemu::g_last; }
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorIllegalState: return "the operation is not permitted in the current state";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorCooperativeLaunchTooLarge: return "too many blocks in cooperative launch";
    default: return "kemu: an error the emulator does not produce";
    }
}
const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorCooperativeLaunchTooLarge: return "cudaErrorCooperativeLaunchTooLarge";
    default: return "cudaErrorUnknown";
    }
}
cudaError_t cudaFuncSetAttribute(const void *fn, cudaFuncAttribute a, int v) {
    if (a == cudaFuncAttributeMaxDynamicSharedMemorySize) return kemu::set_smem_attr(fn, v);
    if (a == cudaFuncAttributePreferredSharedMemoryCarveout) return v >= -1 && v <= 100 ? cudaSuccess : cudaErrorInvalidValue;
    return cudaErrorInvalidValue;
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *fa, const void *) {
    memset(fa, 0, sizeof *fa);
    fa->binaryVersion = 90;
    fa->ptxVersion = 90;
    fa->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

} // extern "C"

/* ---- cuBLAS: the one GEMM the prefill path calls, by its documented contract ---- */

struct cublasContext {
    cudaStream_t stream;
};
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float al, const __half *a, int lda,
                 const __half *b, int ldb, float be, float *c, int ldc);

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *h) {
    *h = new cublasContext{};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t s) {
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void *, size_t) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s) {
    return s == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_NOT_SUPPORTED (kemu)";
}

/* Column-major C (m x n) = alpha op(A) op(B) + beta C with f16 A and B, f32 C, f32 compute (the
 * only combination kernels/cuda/gemm.cu uses; anything else is refused as NOT_SUPPORTED). The
 * f16 products are exact in f32; they are summed in k order. */
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B, cudaDataType bt,
                            int ldb, const void *beta, void *C, cudaDataType ct, int ldc, cublasComputeType_t comp,
                            cublasGemmAlgo_t) {
    if (at != CUDA_R_16F || bt != CUDA_R_16F || ct != CUDA_R_32F || comp != CUBLAS_COMPUTE_32F ||
        (ta != CUBLAS_OP_N && ta != CUBLAS_OP_T) || (tb != CUBLAS_OP_N && tb != CUBLAS_OP_T))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (m < 0 || n < 0 || k < 0 || lda < (ta == CUBLAS_OP_N ? m : k) || ldb < (tb == CUBLAS_OP_N ? k : n) || ldc < m)
        return CUBLAS_STATUS_INVALID_VALUE;
    const __half *a = (const __half *)A, *b = (const __half *)B;
    float *c = (float *)C;
    const float al = *(const float *)alpha, be = *(const float *)beta; /* host pointers: read at the call */
    kemu::enqueue(h->stream, [=]() { gemm(ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc); });
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"

static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float al, const __half *a, int lda,
                 const __half *b, int ldb, float be, float *c, int ldc) {
    std::vector<float> bcol((size_t)k);
    for (int j = 0; j < n; j++) {
        for (int p = 0; p < k; p++) bcol[(size_t)p] = __half2float(tb == CUBLAS_OP_N ? b[p + (size_t)j * ldb] : b[j + (size_t)p * ldb]);
        for (int i = 0; i < m; i++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++) {
                const __half av = ta == CUBLAS_OP_N ? a[i + (size_t)p * lda] : a[p + (size_t)i * lda];
                s += __half2float(av) * bcol[(size_t)p];
            }
            float *y = c + i + (size_t)j * ldc;
            *y = be == 0.0f ? al * s : al * s + be * *y; /* beta 0: C is not read (it may hold NaN) */
        }
    }
}
