/* sampler.c — the token sampler of qp_sampler.h: penalty, top-k, top-p, min-p, temperature,
 * a seeded xoshiro256** draw. Owns its candidate buffers (sized by the vocabulary at init) and
 * the penalty window (a ring of repeat_last_n ids). Invariant: nothing is allocated after init.
 */
#include "qp_sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct qp_cand {
    float logit;
    int32_t id;
};

struct qp_sampler {
    struct qp_sampler_params p;
    int32_t n_vocab;
    float *work;           /* [n_vocab] penalized logits */
    struct qp_cand *cand;  /* [n_vocab] surviving candidates */
    int32_t *hist;         /* [repeat_last_n] ring of accepted ids */
    int32_t hist_n;        /* valid entries, <= repeat_last_n */
    int32_t hist_head;     /* next slot to write */
    uint64_t rng[4];       /* xoshiro256** state */
};

struct qp_sampler_params qp_sampler_defaults(void) {
    struct qp_sampler_params p = {
        .temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
        .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0,
    };
    return p;
}

static bool penalizes(const struct qp_sampler_params *p) {
    return p->repeat_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f);
}

bool qp_sampler_params_greedy(const struct qp_sampler_params *p) {
    return p->temp <= 0.0f && !penalizes(p);
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double qp_sampler_uniform(struct qp_sampler *s) {
    return (double)(xoshiro_next(s->rng) >> 11) * 0x1.0p-53;
}

enum qp_status qp_sampler_init(const struct qp_sampler_params *p, int32_t n_vocab,
                               struct qp_sampler **out, struct qp_error *err) {
    *out = NULL;
    if (n_vocab <= 0)
        return qp_error_set(err, QP_ERR_INVALID, "sampler: vocabulary size %d must be positive",
                            n_vocab);
    if (!(p->top_p > 0.0f))
        return qp_error_set(err, QP_ERR_INVALID, "sampler: --top-p %g must be > 0 (1 turns it off)",
                            (double)p->top_p);
    if (!(p->min_p <= 1.0f) || isnan(p->min_p))
        return qp_error_set(err, QP_ERR_INVALID, "sampler: --min-p %g must be <= 1 (0 turns it off)",
                            (double)p->min_p);
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        return qp_error_set(err, QP_ERR_INVALID,
                            "sampler: --repeat-penalty %g must be > 0 (1 turns it off)",
                            (double)p->repeat_penalty);
    if (p->repeat_last_n < 0 || p->repeat_last_n > (1 << 20))
        return qp_error_set(err, QP_ERR_INVALID, "sampler: --repeat-last-n %d must be in [0, %d]",
                            p->repeat_last_n, 1 << 20);
    if (isnan(p->temp))
        return qp_error_set(err, QP_ERR_INVALID, "sampler: --temp is NaN");
    if (!isfinite(p->freq_penalty) || !isfinite(p->presence_penalty))
        return qp_error_set(err, QP_ERR_INVALID, "sampler: frequency and presence penalties must be finite");
    struct qp_sampler *s = calloc(1, sizeof *s);
    if (!s) return qp_error_set(err, QP_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->work = malloc((size_t)n_vocab * sizeof *s->work);
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->hist = malloc(((size_t)p->repeat_last_n + 1) * sizeof *s->hist);
    if (!s->work || !s->cand || !s->hist) {
        qp_sampler_free(s);
        return qp_error_set(err, QP_ERR_NOMEM, "sampler: out of memory for %d logits", n_vocab);
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    *out = s;
    return QP_OK;
}

void qp_sampler_free(struct qp_sampler *s) {
    if (!s) return;
    free(s->work);
    free(s->cand);
    free(s->hist);
    free(s);
}

void qp_sampler_accept(struct qp_sampler *s, int32_t token) {
    if (s->p.repeat_last_n == 0) return;
    s->hist[s->hist_head] = token;
    s->hist_head = (s->hist_head + 1) % s->p.repeat_last_n;
    if (s->hist_n < s->p.repeat_last_n) s->hist_n++;
}

void qp_sampler_reset(struct qp_sampler *s) {
    s->hist_n = 0;
    s->hist_head = 0;
}

void qp_sampler_penalize(const struct qp_sampler *s, float *logits) {
    if (!penalizes(&s->p)) return;
    const float pen = s->p.repeat_penalty, freq = s->p.freq_penalty, pres = s->p.presence_penalty;
    int32_t n = s->hist_n, cap = s->p.repeat_last_n;
    int32_t start = (s->hist_head - n + cap) % (cap ? cap : 1);
    for (int32_t i = 0; i < n; i++) {
        int32_t t = s->hist[(start + i) % cap];
        if (t < 0 || t >= s->n_vocab) continue;
        bool seen = false; /* once per distinct token: skip later duplicates */
        for (int32_t j = 0; j < i && !seen; j++) seen = s->hist[(start + j) % cap] == t;
        if (seen) continue;
        int32_t count = 1;
        for (int32_t j = i + 1; j < n; j++) count += s->hist[(start + j) % cap] == t;
        float l = logits[t];
        l = l > 0.0f ? l / pen : l * pen;
        logits[t] = l - (float)count * freq - pres;
    }
}

/* Descending by logit, ties to the lower id: a total order, so results never depend on qsort. */
static int cand_cmp(const void *a, const void *b) {
    const struct qp_cand *x = a, *y = b;
    if (x->logit > y->logit) return -1;
    if (x->logit < y->logit) return 1;
    return (x->id > y->id) - (x->id < y->id);
}

static bool cand_before(const struct qp_cand *x, const struct qp_cand *y) {
    return cand_cmp(x, y) < 0;
}

/* Moves the k best of c[0..n) to c[0..k), sorted: a min-heap of k over the n (O(n log k)). */
static void top_k_select(struct qp_cand *c, int32_t n, int32_t k) {
    /* heap in c[0..k): root is the worst of the kept ones */
    for (int32_t i = 0; i < n; i++) {
        struct qp_cand x = c[i];
        int32_t size = i < k ? i : k;
        if (i >= k) {
            if (!cand_before(&x, &c[0])) continue;
            /* replace root, sift down */
            int32_t j = 0;
            for (;;) {
                int32_t l = 2 * j + 1, r = l + 1, w = j;
                struct qp_cand *wc = &x;
                if (l < size && cand_before(wc, &c[l])) { w = l; wc = &c[l]; }
                if (r < size && cand_before(wc, &c[r])) { w = r; wc = &c[r]; }
                if (w == j) break;
                c[j] = c[w];
                j = w;
            }
            c[j] = x;
        } else {
            /* push, sift up: parent must be worse-or-equal (later in order) than children */
            int32_t j = size;
            while (j > 0) {
                int32_t par = (j - 1) / 2;
                if (!cand_before(&c[par], &x)) break;
                c[j] = c[par];
                j = par;
            }
            c[j] = x;
        }
    }
    qsort(c, (size_t)k, sizeof *c, cand_cmp);
}

int32_t qp_sampler_sample(struct qp_sampler *s, const float *logits) {
    int32_t nv = s->n_vocab;
    float *w = s->work;
    for (int32_t i = 0; i < nv; i++) w[i] = isnan(logits[i]) ? -INFINITY : logits[i];
    qp_sampler_penalize(s, w);

    if (s->p.temp <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < nv; i++)
            if (w[i] > w[best]) best = i;
        return best;
    }

    struct qp_cand *c = s->cand;
    int32_t n = 0;
    for (int32_t i = 0; i < nv; i++)
        if (w[i] != -INFINITY) c[n++] = (struct qp_cand){w[i], i};
    if (n == 0) return 0;

    bool sorted = false;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        top_k_select(c, n, s->p.top_k);
        n = s->p.top_k;
        sorted = true;
    }
    if (s->p.top_p < 1.0f) {
        if (!sorted) qsort(c, (size_t)n, sizeof *c, cand_cmp);
        sorted = true;
        double max = c[0].logit, sum = 0.0;
        for (int32_t i = 0; i < n; i++) sum += exp((double)c[i].logit - max);
        double cum = 0.0;
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            cum += exp((double)c[i].logit - max) / sum;
            if (cum >= (double)s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (s->p.min_p > 0.0f) {
        float max = c[0].logit;
        if (!sorted)
            for (int32_t i = 1; i < n; i++)
                if (c[i].logit > max) max = c[i].logit;
        double thr = (double)max + log((double)s->p.min_p);
        int32_t m = 0;
        for (int32_t i = 0; i < n; i++)
            if ((double)c[i].logit >= thr) c[m++] = c[i];
        n = m; /* the max itself always passes: n >= 1 */
    }

    double inv_t = 1.0 / (double)s->p.temp, max = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit > max) max = c[i].logit;
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += exp(((double)c[i].logit - max) * inv_t);
    double u = qp_sampler_uniform(s) * sum, cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        cum += exp(((double)c[i].logit - max) * inv_t);
        if (u < cum) return c[i].id;
    }
    return c[n - 1].id; /* u rounded up to the sum */
}
