/* threadpool.h - a small pool of worker threads owned by one session:
 * vlm_thread_pool_run (pool, fn, arg) calls fn (ith, nth, arg) on every
 * thread (the caller is thread 0) and returns when all are done. Workers
 * poll for a new job for a few microseconds after each one, then sleep on
 * a condition. */
#ifndef VLM_THREADPOOL_H
#define VLM_THREADPOOL_H

#include <glib.h>

typedef struct _VlmThreadPool VlmThreadPool;
typedef void (*VlmParallelFunc) (int ith, int nth, gpointer arg);

VlmThreadPool *vlm_thread_pool_new (int n_threads);
void vlm_thread_pool_free (VlmThreadPool *pool);
int vlm_thread_pool_size (const VlmThreadPool *pool);
/* pool may be NULL: fn (0, 1, arg). */
void vlm_thread_pool_run (VlmThreadPool *pool, VlmParallelFunc fn, gpointer arg);

/* The part [*begin, *end) of n items for thread ith of nth, in multiples of
 * align (except the last part). */
void vlm_split (int n, int ith, int nth, int align, int *begin, int *end);

#endif
