#pragma once
// Persistent thread pool for per-token work (decode calls it a few hundred
// times per token, so a run must cost well under a microsecond when warm).
//
// Workers are created once. Between runs they spin on an atomic generation
// counter for a while (default 200 microseconds, see ek_pool_set_spin_us) and
// then sleep on a futex; a run wakes sleepers only when there are any. The
// calling thread takes part: it runs task 0, then any task no worker has
// claimed yet (so a descheduled worker cannot stall a run on a busy machine),
// and waits for the others (spinning, then sleeping on a futex). Everything a
// task writes is visible to the caller when the run returns.
#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_pool ek_pool;
typedef void (*ek_task_fn)(void *ctx, int ith, int nth);

/// n_threads = total threads including the caller (values < 1 mean 1; values
/// above 256 are clamped). Returns NULL only if memory or thread creation
/// fails (then no thread is left running).
ek_pool *ek_pool_create(int n_threads);
/// Stops and joins the workers, frees the pool. NULL is ignored. Must not be
/// called while a run is in progress.
void ek_pool_destroy(ek_pool *p);
/// Total threads including the caller (1 for a NULL pool).
int ek_pool_size(const ek_pool *p);
/// How long idle workers spin before sleeping (microseconds, 0 = sleep at
/// once). Takes effect at the workers' next idle period.
void ek_pool_set_spin_us(ek_pool *p, int microseconds);

/// Runs fn(ctx, i, n) for every i in 0..<n (n = ek_pool_size) exactly once and
/// returns when all have finished. Task 0 runs on the calling thread; the
/// others run on whichever thread claims them first (usually one per worker;
/// the caller takes tasks of workers that have not started), so tasks must not
/// rely on running on distinct threads - only on distinct i.
/// A NULL pool runs fn(ctx, 0, 1). If the pool is already running (a nested
/// call from inside a task, or a second thread calling concurrently), the call
/// does not deadlock: it runs fn(ctx, i, n) for all i serially on the calling
/// thread instead.
void ek_pool_run(ek_pool *p, ek_task_fn fn, void *ctx);

/// Like ek_pool_run with n_tasks tasks instead of one per thread: fn(ctx, i,
/// n_tasks) for every i in 0..<n_tasks exactly once (1 <= n_tasks <= 2^31-1;
/// n_tasks <= 0 does nothing), handed out dynamically - more tasks than threads
/// balance uneven work or a slow thread. Task 0 runs on the calling thread.
void ek_pool_run_n(ek_pool *p, ek_task_fn fn, void *ctx, int n_tasks);

// ---- multi-threaded Q8_0 matrix-vector products ------------------------------

/// One matrix-vector product: y[r] = dot(row r of w, xq) for r in 0..<nrows.
typedef struct ek_matvec_job {
    const void *w;     // Q8_0 rows, ncols/32 blocks of 34 bytes each
    const void *xq;    // ncols/32 Q8_0 blocks (from ek_quantize_row_q8_0)
    float *y;          // nrows outputs
    int64_t nrows;
    int64_t ncols;     // multiple of 32
} ek_matvec_job;

/// Runs several independent matrix-vector products in ONE pool run (e.g. the
/// Q, K and V projections, or the FFN gate and up projections, which share an
/// input), splitting all rows of all jobs into tasks of equal bytes
/// (boundaries on multiples of 16 rows; two tasks per thread when there is
/// enough work, so a slowed thread is balanced out). Uses ek_matvec_q8_0.
/// Results are bit-identical to one ek_matvec_q8_0 call over all rows.
/// p may be NULL (single-threaded). n_jobs <= 0 does nothing.
void ek_pool_matvec_q8_0(ek_pool *p, const ek_matvec_job *jobs, int n_jobs);

/// If OpenBLAS (Debian's DYNAMIC_ARCH build) fell back to its SSE3 "Prescott" kernels on a CPU
/// with AVX-512 or AVX2 and OPENBLAS_CORETYPE is not set, re-runs OpenBLAS's core selection with
/// SkylakeX / Haswell (found through dlsym; nothing happens without OpenBLAS). Once per process;
/// returns 1 if the core was changed. Call before any BLAS work is running.
int ek_openblas_prefer_native_core(void);

#ifdef __cplusplus
}
#endif
