// Persistent spin-then-sleep thread pool.
//
// Protocol (C11 atomics):
//  run:    the caller writes fn/ctx, resets `done`, publishes the task counter
//          `claim` = (n_tasks << 32) | 1 (release; it keeps task 0 for itself),
//          then increments `gen` (seq_cst) and wakes sleeping workers (futex)
//          if any announced sleeping. It runs task 0, then claims and runs
//          leftover tasks like a worker, then waits until done == n_tasks.
//  worker: waits until gen differs from the last value it saw (spin, then
//          futex), then claims tasks with a CAS on `claim` until none is left;
//          after each task it increments `done` (release); the increment that
//          completes the run wakes the caller if it announced sleeping.
//  Tasks go to whichever thread claims them, so a worker that is descheduled
//  (busy machine) does not stall the run: the caller takes its task instead.
//  fn/ctx are plain fields: a thread reads them only after a successful claim
//  (acquire, synchronized with the caller's release store of `claim`), and the
//  caller rewrites them only after `done` reached n_tasks, which cannot happen
//  before every claimed task finished. A stale claim word can only be claimed
//  while its run is incomplete, so a late worker never touches a finished run.
//  Sleep/wake uses a Dekker pattern on seq_cst operations: the sleeper
//  increments `sleepers` then re-checks `gen`; the waker increments `gen` then
//  checks `sleepers`; futex_wait re-checks the value in the kernel, so no
//  wake-up is lost. The same pattern guards the caller's sleep on `done`.
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
    int n;                       // threads including the caller
    _Atomic int stop;
    _Atomic int spin_ns;
    // task counter: (n_tasks << 32) | next task index
    _Alignas(EK_CACHE_LINE) _Atomic uint64_t claim;
    // completed tasks of the current run
    _Alignas(EK_CACHE_LINE) _Atomic uint32_t done;
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

// Spins until *addr == want (acquire) or the budget runs out; returns 1 if reached.
static int ek_spin_until(_Atomic uint32_t *addr, uint32_t want, int budget_ns) {
    if (atomic_load_explicit(addr, memory_order_acquire) == want) return 1;
    if (budget_ns <= 0) return 0;
    const uint64_t start = ek_now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            EK_PAUSE();
            if (atomic_load_explicit(addr, memory_order_acquire) == want) return 1;
        }
        if (ek_now_ns() - start >= (uint64_t)budget_ns) return 0;
    }
}

// ---- workers -----------------------------------------------------------------------

// Claims and runs tasks of the current run until none is left.
static void ek_pool_work(struct ek_pool *p) {
    uint64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        const uint32_t n = (uint32_t)(c >> 32), next = (uint32_t)c;
        if (next >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;   // c now holds the current value
        p->fn(p->ctx, (int)next, (int)n);
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_seq_cst) + 1 == n &&
            atomic_load_explicit(&p->caller_sleeping, memory_order_seq_cst))
            ek_futex_wake_all(&p->done);
        c = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

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
        ek_pool_work(p);
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
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
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

void ek_pool_run_n(ek_pool *p, ek_task_fn fn, void *ctx, int n_tasks) {
    if (n_tasks <= 0) return;
    if (p == NULL || p->n == 1 || n_tasks == 1 ||
        atomic_exchange_explicit(&p->busy, 1, memory_order_acquire) != 0) {
        // single thread, single task, or nested/concurrent use: run everything here
        for (int i = 0; i < n_tasks; i++) fn(ctx, i, n_tasks);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->claim, ((uint64_t)(uint32_t)n_tasks << 32) | 1u, memory_order_release);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->sleepers, memory_order_seq_cst) > 0) ek_futex_wake_all(&p->gen);

    fn(ctx, 0, n_tasks);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
    ek_pool_work(p);   // take tasks no worker has claimed yet

    const uint32_t want = (uint32_t)n_tasks;
    if (atomic_load_explicit(&p->done, memory_order_acquire) != want &&
        !ek_spin_until(&p->done, want, atomic_load_explicit(&p->spin_ns, memory_order_relaxed))) {
        // a worker holding a task is slow (probably preempted): sleep until it is done
        atomic_store_explicit(&p->caller_sleeping, 1, memory_order_seq_cst);
        uint32_t d;
        while ((d = atomic_load_explicit(&p->done, memory_order_seq_cst)) != want) ek_futex_wait(&p->done, d);
        atomic_store_explicit(&p->caller_sleeping, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&p->busy, 0, memory_order_release);
}

void ek_pool_run(ek_pool *p, ek_task_fn fn, void *ctx) {
    ek_pool_run_n(p, fn, ctx, p == NULL ? 1 : p->n);
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
        const int64_t nb = jobs[j].ncols / 32;
        if (nb <= 0) {   // empty rows: every dot product is 0
            for (int64_t r = 0; r < nr; r++) jobs[j].y[r] = 0.0f;
        }
        c.total += nr * (nb > 0 ? nb : 0);
    }
    if (c.total == 0) return;
    // two tasks per thread when each still gets >= ~64 KiB of weights
    const int nth = ek_pool_size(p);
    const int64_t per_task_blocks = 64 * 1024 / 34;
    int n_tasks = nth;
    if (nth > 1 && c.total >= (int64_t)2 * nth * per_task_blocks) n_tasks = 2 * nth;
    ek_pool_run_n(p, ek_mv_task, &c, n_tasks);
}
