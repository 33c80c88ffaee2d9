/* session.h - the per-thread describing state, and a traced describe call
 * for the fidelity tests. Internal to libvlm. */
#ifndef VLM_SESSION_H
#define VLM_SESSION_H

#include "language_decoder.h"
#include "ops.h"
#include "threadpool.h"
#include "trace.h"
#include "vlm.h"

struct _VlmSession {
    VlmModel *model;
    guint n_threads;
    VlmThreadPool *pool;
    gint cancelled;        /* atomic */
    VlmKvCache cache;
};

/* vlm_session_describe, with every intermediate activation shown to trace. */
VlmResult *vlm_session_describe_traced (VlmSession *s, const VlmImage *image,
                                        const VlmDescribeParams *params,
                                        const VlmTrace *trace, GError **error);

#endif
