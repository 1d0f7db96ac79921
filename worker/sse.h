/*
 * sse.h - an incremental Server-Sent Events parser (the WHATWG event-stream grammar), fed whatever
 * bytes a transfer delivers. Used for the gateway's topic stream (cancel watch) and for the
 * upstream model's `data:` deltas.
 *
 * Pure code over (buf, len), no I/O; one parser per stream, one thread at a time.
 */
#ifndef WK_SSE_H
#define WK_SSE_H

#include <stddef.h>

#include "http.h"

/* One dispatched event. Every pointer is borrowed: valid only during the callback. */
struct wk_sse_event {
	const char *event; /* the event: field, "message" when the block had none */
	const char *data;  /* data: lines joined with '\n', NUL-terminated */
	size_t data_len;
	const char *id;    /* the last id: field seen on the stream ("" before any) */
};

/** @return 0 to go on, nonzero to stop (wk_sse_feed returns that value). */
typedef int (*wk_sse_fn)(void *ctx, const struct wk_sse_event *ev);

struct wk_sse {
	struct wk_buf line;  /* the unfinished line */
	struct wk_buf data;  /* data of the event being built */
	struct wk_buf event; /* its event name ("" = message) */
	struct wk_buf id;    /* last event id */
	int has_data;        /* a data: field came in this block */
	int after_cr;        /* the last byte was '\r': a following '\n' belongs to it */
	size_t max_line;     /* longer lines (and data) are an error */
};

/** @brief Start a parser that refuses lines or events longer than @p max_line bytes. */
void wk_sse_init(struct wk_sse *s, size_t max_line);
void wk_sse_free(struct wk_sse *s);

/**
 * @brief Feed the next bytes of the stream; calls @p fn for each event completed by them.
 * @return 0, the callback's nonzero value (parsing stops there), or -1 if a line is too long.
 */
int wk_sse_feed(struct wk_sse *s, const char *p, size_t n, wk_sse_fn fn, void *ctx);

#endif /* WK_SSE_H */
