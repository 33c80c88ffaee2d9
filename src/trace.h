/* trace.h - an optional hook that sees every intermediate activation, so
 * tests can compare each stage with reference tensors (llm.c style). */
#ifndef VLM_TRACE_H
#define VLM_TRACE_H

typedef void (*VlmTraceFunc) (const char *stage, const float *data, int rows,
                              int cols, void *user_data);

typedef struct {
    VlmTraceFunc func;
    void *user_data;
} VlmTrace;

static inline int vlm_tracing (const VlmTrace *t)
{
    return t && t->func;
}

static inline void vlm_trace (const VlmTrace *t, const char *stage,
                              const float *data, int rows, int cols)
{
    if (vlm_tracing (t))
        t->func (stage, data, rows, cols, t->user_data);
}

#endif
