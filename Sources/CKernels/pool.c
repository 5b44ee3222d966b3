// Persistent spin-then-sleep thread pool.
//
// Protocol (C11 atomics):
//  run:    caller writes fn/ctx, stores remaining = n-1, then increments `gen`
//          (seq_cst). If any worker announced sleeping it wakes them (futex).
//          The caller runs ith 0, then waits for remaining == 0 (acquire).
//  worker: waits until gen differs from the last value it saw (acquire), reads
//          fn/ctx, runs its part, decrements remaining (release). The last one
//          wakes the caller if it announced sleeping.
//  Because the caller only writes fn/ctx after all workers have decremented
//  `remaining` for the previous run, and workers only read them after seeing
//  the new `gen`, plain fields suffice for fn/ctx (happens-before via gen and
//  remaining). Sleep/wake uses a Dekker pattern on seq_cst operations: the
//  sleeper increments `sleepers` then re-checks `gen`; the waker increments
//  `gen` then checks `sleepers`; futex_wait also re-checks the value in the
//  kernel, so no wake-up is lost.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define EK_PAUSE() _mm_pause()
#else
#define EK_PAUSE() ((void)0)
#endif

#include "include/ek_pool.h"
#include "include/ek_kernels.h"

#define EK_POOL_MAX_THREADS 256
#define EK_CACHE_LINE 64

struct ek_pool;

typedef struct ek_worker {
    struct ek_pool *pool;
    int ith;
    pthread_t thread;
} ek_worker;

struct ek_pool {
    // written by the caller once per run, read by spinning workers
    _Alignas(EK_CACHE_LINE) _Atomic uint32_t gen;
    ek_task_fn fn;
    void *ctx;
    int n;
    _Atomic int stop;
    _Atomic int spin_ns;
    // written by each worker once per run
    _Alignas(EK_CACHE_LINE) _Atomic uint32_t remaining;
    _Atomic int caller_sleeping;
    // rarely written
    _Alignas(EK_CACHE_LINE) _Atomic int sleepers;
    _Atomic int busy;
    int n_started;
    ek_worker *workers;
};

// ---- waiting primitives ------------------------------------------------------------

static void ek_futex_wait(_Atomic uint32_t *addr, uint32_t expected) {
#if defined(__linux__)
    // returns on wake, on value mismatch (EAGAIN) or on a signal: callers re-check.
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
#else
    (void)addr; (void)expected;
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
#endif
}

static void ek_futex_wake_all(_Atomic uint32_t *addr) {
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 0x7fffffff, NULL, NULL, 0);
#else
    (void)addr;
#endif
}

static inline uint64_t ek_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// Spins until *addr != seen or the budget runs out. Returns the last value read.
static uint32_t ek_spin_while_equal(_Atomic uint32_t *addr, uint32_t seen, int budget_ns) {
    uint32_t v = atomic_load_explicit(addr, memory_order_acquire);
    if (v != seen || budget_ns <= 0) return v;
    const uint64_t start = ek_now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            EK_PAUSE();
            v = atomic_load_explicit(addr, memory_order_acquire);
            if (v != seen) return v;
        }
        if (ek_now_ns() - start >= (uint64_t)budget_ns) return v;
    }
}

// Spins until *addr == 0 (acquire) or the budget runs out; returns 1 if it became 0.
static int ek_spin_until_zero(_Atomic uint32_t *addr, int budget_ns) {
    if (atomic_load_explicit(addr, memory_order_acquire) == 0) return 1;
    if (budget_ns <= 0) return 0;
    const uint64_t start = ek_now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            EK_PAUSE();
            if (atomic_load_explicit(addr, memory_order_acquire) == 0) return 1;
        }
        if (ek_now_ns() - start >= (uint64_t)budget_ns) return 0;
    }
}

// ---- workers -----------------------------------------------------------------------

static void *ek_worker_main(void *arg) {
    ek_worker *wk = (ek_worker *)arg;
    struct ek_pool *p = wk->pool;
    uint32_t seen = 0;   // gen starts at 0, workers are created before any run
    for (;;) {
        uint32_t g = ek_spin_while_equal(&p->gen, seen,
                                         atomic_load_explicit(&p->spin_ns, memory_order_relaxed));
        if (g == seen) {
            atomic_fetch_add_explicit(&p->sleepers, 1, memory_order_seq_cst);
            while ((g = atomic_load_explicit(&p->gen, memory_order_seq_cst)) == seen)
                ek_futex_wait(&p->gen, seen);
            atomic_fetch_sub_explicit(&p->sleepers, 1, memory_order_relaxed);
        }
        seen = g;
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) break;
        p->fn(p->ctx, wk->ith, p->n);
        if (atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_seq_cst) == 1) {
            if (atomic_load_explicit(&p->caller_sleeping, memory_order_seq_cst))
                ek_futex_wake_all(&p->remaining);
        }
    }
    return NULL;
}

static void ek_pool_stop_workers(struct ek_pool *p) {
    atomic_store_explicit(&p->stop, 1, memory_order_release);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_seq_cst);
    ek_futex_wake_all(&p->gen);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->workers[i].thread, NULL);
    p->n_started = 0;
}

ek_pool *ek_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > EK_POOL_MAX_THREADS) n_threads = EK_POOL_MAX_THREADS;
    ek_init();
    struct ek_pool *p = aligned_alloc(EK_CACHE_LINE, (sizeof(struct ek_pool) + EK_CACHE_LINE - 1) /
                                                         EK_CACHE_LINE * EK_CACHE_LINE);
    if (p == NULL) return NULL;
    memset(p, 0, sizeof *p);
    atomic_init(&p->gen, 0);
    atomic_init(&p->remaining, 0);
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->busy, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->spin_ns, 200 * 1000);
    p->n = n_threads;
    p->workers = NULL;
    p->n_started = 0;
    if (n_threads > 1) {
        p->workers = calloc((size_t)(n_threads - 1), sizeof(ek_worker));
        if (p->workers == NULL) {
            free(p);
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            p->workers[i].pool = p;
            p->workers[i].ith = i + 1;
            if (pthread_create(&p->workers[i].thread, NULL, ek_worker_main, &p->workers[i]) != 0) {
                ek_pool_stop_workers(p);
                free(p->workers);
                free(p);
                return NULL;
            }
            p->n_started = i + 1;
        }
    }
    return p;
}

void ek_pool_destroy(ek_pool *p) {
    if (p == NULL) return;
    ek_pool_stop_workers(p);
    free(p->workers);
    free(p);
}

int ek_pool_size(const ek_pool *p) { return p == NULL ? 1 : p->n; }

void ek_pool_set_spin_us(ek_pool *p, int microseconds) {
    if (p == NULL) return;
    if (microseconds < 0) microseconds = 0;
    if (microseconds > 1000000) microseconds = 1000000;
    atomic_store_explicit(&p->spin_ns, microseconds * 1000, memory_order_relaxed);
}

void ek_pool_run(ek_pool *p, ek_task_fn fn, void *ctx) {
    if (p == NULL || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    if (atomic_exchange_explicit(&p->busy, 1, memory_order_acquire) != 0) {
        // nested or concurrent use: do all the parts here rather than deadlock
        for (int i = 0; i < p->n; i++) fn(ctx, i, p->n);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->remaining, (uint32_t)(p->n - 1), memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0) ek_futex_wake_all(&p->gen);

    fn(ctx, 0, p->n);

    if (atomic_load_explicit(&p->remaining, memory_order_acquire) != 0 &&
        !ek_spin_until_zero(&p->remaining, atomic_load_explicit(&p->spin_ns, memory_order_relaxed))) {
        // a worker is slow (probably preempted): sleep until the last one wakes us
        atomic_store_explicit(&p->caller_sleeping, 1, memory_order_seq_cst);
        uint32_t r;
        while ((r = atomic_load_explicit(&p->remaining, memory_order_seq_cst)) != 0)
            ek_futex_wait(&p->remaining, r);
        atomic_store_explicit(&p->caller_sleeping, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

// ---- multi-job Q8_0 matvec -----------------------------------------------------------

typedef struct ek_mv_ctx {
    const ek_matvec_job *jobs;
    int n_jobs;
    int64_t start[16];   // cumulative weight (blocks) before each job
    int64_t total;
} ek_mv_ctx;

#define EK_MV_ROW_ALIGN 16

// First row of job j that belongs to thread t (monotone in t; t == nth gives nrows).
static int64_t ek_mv_boundary(const ek_mv_ctx *c, int j, int t, int nth) {
    const ek_matvec_job *job = &c->jobs[j];
    const int64_t nb = job->ncols / 32;
    const int64_t at = c->total * t / nth - c->start[j];   // weight offset inside job j
    if (nb <= 0 || at <= 0) return 0;
    int64_t r = (at + nb - 1) / nb;
    if (r >= job->nrows) return job->nrows;
    r = (r + EK_MV_ROW_ALIGN / 2) / EK_MV_ROW_ALIGN * EK_MV_ROW_ALIGN;
    return r < job->nrows ? r : job->nrows;
}

static void ek_mv_task(void *vctx, int ith, int nth) {
    const ek_mv_ctx *c = (const ek_mv_ctx *)vctx;
    for (int j = 0; j < c->n_jobs; j++) {
        const int64_t r0 = ek_mv_boundary(c, j, ith, nth);
        const int64_t r1 = ek_mv_boundary(c, j, ith + 1, nth);
        if (r1 > r0) {
            const ek_matvec_job *job = &c->jobs[j];
            ek_matvec_q8_0(job->w, job->ncols, r0, r1, job->xq, job->y);
        }
    }
}

void ek_pool_matvec_q8_0(ek_pool *p, const ek_matvec_job *jobs, int n_jobs) {
    if (jobs == NULL || n_jobs <= 0) return;
    ek_init();
    // more than 16 jobs: run them in groups of 16
    while (n_jobs > 16) {
        ek_pool_matvec_q8_0(p, jobs, 16);
        jobs += 16;
        n_jobs -= 16;
    }
    ek_mv_ctx c;
    c.jobs = jobs;
    c.n_jobs = n_jobs;
    c.total = 0;
    for (int j = 0; j < n_jobs; j++) {
        c.start[j] = c.total;
        const int64_t nr = jobs[j].nrows > 0 ? jobs[j].nrows : 0;
        c.total += nr * (jobs[j].ncols / 32);
    }
    if (c.total == 0) return;
    ek_pool_run(p, ek_mv_task, &c);
}
