/* threadpool.c - see threadpool.h. */
#include "threadpool.h"

struct _VlmThreadPool {
    int n;
    GThread **threads;
    GMutex lock;
    GCond wake, done;
    VlmParallelFunc fn;     /* written before generation is bumped */
    gpointer arg;
    gint generation;        /* atomic, bumped under lock for each job */
    gint pending;           /* atomic: workers still running the job */
    gboolean quit;          /* lock */
};

typedef struct {
    VlmThreadPool *pool;
    int ith;
} Worker;

/* Decoding runs a hundred small products per token: a worker that has
 * just finished one, and the caller waiting for the others, poll for a
 * few microseconds before sleeping on a condition, which saves a futex
 * wake-up and a scheduler round trip per product. */
#define SPINS 5000

static inline void relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause ();
#endif
}

static gpointer worker_main (gpointer data)
{
    Worker *w = data;
    VlmThreadPool *p = w->pool;
    gint seen = 0;
    for (;;) {
        for (int i = 0; i < SPINS && g_atomic_int_get (&p->generation) == seen; i++)
            relax ();
        g_mutex_lock (&p->lock);
        while (!p->quit && g_atomic_int_get (&p->generation) == seen)
            g_cond_wait (&p->wake, &p->lock);
        gboolean quit = p->quit;
        g_mutex_unlock (&p->lock);
        if (quit)
            break;
        seen = g_atomic_int_get (&p->generation);
        p->fn (w->ith, p->n, p->arg);
        if (g_atomic_int_dec_and_test (&p->pending)) {
            g_mutex_lock (&p->lock);
            g_cond_signal (&p->done);
            g_mutex_unlock (&p->lock);
        }
    }
    g_free (w);
    return NULL;
}

VlmThreadPool *vlm_thread_pool_new (int n_threads)
{
    VlmThreadPool *p = g_new0 (VlmThreadPool, 1);
    p->n = MAX (n_threads, 1);
    g_mutex_init (&p->lock);
    g_cond_init (&p->wake);
    g_cond_init (&p->done);
    p->threads = g_new0 (GThread *, p->n);
    for (int i = 1; i < p->n; i++) {
        Worker *w = g_new (Worker, 1);
        *w = (Worker) { p, i };
        p->threads[i] = g_thread_new ("vlm-worker", worker_main, w);
    }
    return p;
}

void vlm_thread_pool_free (VlmThreadPool *p)
{
    if (!p)
        return;
    g_mutex_lock (&p->lock);
    p->quit = TRUE;
    g_cond_broadcast (&p->wake);
    g_mutex_unlock (&p->lock);
    for (int i = 1; i < p->n; i++)
        g_thread_join (p->threads[i]);
    g_free (p->threads);
    g_mutex_clear (&p->lock);
    g_cond_clear (&p->wake);
    g_cond_clear (&p->done);
    g_free (p);
}

int vlm_thread_pool_size (const VlmThreadPool *p)
{
    return p ? p->n : 1;
}

void vlm_thread_pool_run (VlmThreadPool *p, VlmParallelFunc fn, gpointer arg)
{
    if (!p || p->n == 1) {
        fn (0, 1, arg);
        return;
    }
    g_mutex_lock (&p->lock);
    p->fn = fn;
    p->arg = arg;
    g_atomic_int_set (&p->pending, p->n - 1);
    g_atomic_int_inc (&p->generation);
    g_cond_broadcast (&p->wake);
    g_mutex_unlock (&p->lock);
    fn (0, p->n, arg);
    for (int i = 0; i < SPINS && g_atomic_int_get (&p->pending) > 0; i++)
        relax ();
    g_mutex_lock (&p->lock);
    while (g_atomic_int_get (&p->pending) > 0)
        g_cond_wait (&p->done, &p->lock);
    g_mutex_unlock (&p->lock);
}

void vlm_split (int n, int ith, int nth, int align, int *begin, int *end)
{
    int chunks = (n + align - 1) / align;
    int per = chunks / nth, extra = chunks % nth;
    int first = ith * per + MIN (ith, extra);
    int count = per + (ith < extra);
    *begin = MIN (first * align, n);
    *end = MIN ((first + count) * align, n);
}
