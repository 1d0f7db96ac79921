/*
 * http_int.h - what http.c (routing), publish.c (POST bodies) and sse.c (event streams) share:
 * the per-request state of the "gw-http" protocol. Service thread only.
 */
#ifndef GW_HTTP_INT_H
#define GW_HTTP_INT_H

#include <ev.h>

#include "gw.h"
#include "route.h"

struct gw_pub; /* publish.c */
struct gw_del; /* http.c: a DELETE waiting for the helper thread */
struct gw_pull_req; /* pull.c: a consumer-group request */
struct gw_progress; /* progress.c: a stream's position stored for a group */

/* An SSE stream. Lives inside the pss, whose memory lws owns until CLOSED_HTTP returns. */
struct gw_sse {
	struct gw_sub sub;             /* registry link; sub.wsi is the stream */
	ev_io peer_w;                  /* the socket's read side: EOF means the client went away */
	char topic[ENG_TOPIC_MAX + 1];
	uint64_t next;                 /* next offset to send */
	struct gw_progress *prog;      /* ?group=g: the position stored for g (progress.h), or NULL */
	unsigned started : 1;          /* "retry:" has been sent */
};

/*
 * What an HTTP/2 stream could not send yet (h2.c): a queued response (its HEADERS block, buf.mark
 * bytes, then its body) or a stream's data. Unused on HTTP/1.1. Lives in the pss.
 */
struct gw_h2out {
	struct gw_buf buf;             /* LWS_PRE in front; [off, len) waits */
	size_t off;
	uint64_t sent;                 /* bytes handed to lws so far (progress, for the stall clock) */
	unsigned head : 1;             /* buf starts with a HEADERS block not sent yet */
	unsigned final : 1;            /* END_STREAM goes with the last byte (or alone) */
	unsigned reply : 1;            /* a whole response: the transaction ends once it is out */
	ev_timer linger_w;             /* a response is out but the request body is not: the end of
				        * the stream's grace (h2.c) */
	struct ev_loop *loop;          /* linger_w's, once armed */
};

enum gw_hkind {
	GW_HK_NONE = 0,
	GW_HK_PUB, /* a publish request: pss->pub */
	GW_HK_SSE, /* an event stream: pss->sse */
	GW_HK_DEL, /* a DELETE running on the helper thread: pss->del */
	GW_HK_PULL,/* a /v1/groups request (pull.c): pss->pull */
};

struct gw_http_pss {
	enum gw_hkind kind;
	struct gw_pub *pub;
	struct gw_del *del;
	struct gw_pull_req *pull;
	struct gw_sse sse;
	int64_t auth_exp;              /* the request's token exp (auth.c), 0 without one: ends an SSE */
	uint64_t body_deadline_us;     /* a Content-Length body must be in by then (gw_mono_us); 0 = none */
	struct gw_h2out h2;            /* HTTP/2 streams only (h2.c) */
	uint64_t h2_body_in;           /* h2_open_body: body bytes lws delivered so far */
	unsigned h2_open_body : 1;     /* an h2 publish without Content-Length: its end comes from the tap */
	unsigned h2_body_ended : 1;    /* ... and was handled (lws never reports it) */
};

/* The protocol's user pointer is the gateway. */
static inline struct gw *
gw_from_wsi(struct lws *wsi)
{
	return (struct gw *)lws_get_protocol(wsi)->user;
}

/* publish.c */
int gw_pub_start(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const struct gw_route *r,
		 const struct gw_query *q);
int gw_pub_body(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const char *in, size_t len);
int gw_pub_body_done(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss);
int gw_pub_writeable(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss);
void gw_pub_detach(struct gw *gw, struct gw_http_pss *pss);

/* sse.c */
int gw_sse_start(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const struct gw_route *r,
		 const struct gw_query *q);
int gw_sse_writeable(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss);
void gw_sse_close(struct gw *gw, struct gw_http_pss *pss);

/* pull.c: /v1/groups (consumer groups) */
int gw_pull_match(const char *path, size_t len);
int gw_pull_start(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, enum gw_method m,
		  const char *path, size_t pathlen);
int gw_pull_body(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const char *in, size_t len);
int gw_pull_body_done(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss);
int gw_pull_writeable(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss);
/** @brief HTTP/2: the queued response's last DATA frame was handed to lws (h2.c). A pop's
 *  messages count as delivered from here, as they do once written on HTTP/1.1. */
void gw_pull_sent(struct gw *gw, struct gw_http_pss *pss);
void gw_pull_detach(struct gw *gw, struct gw_http_pss *pss);

/* h2.c: writing on HTTP/2 streams of this protocol. Each returns -1 on an error (close). */
/** @brief Queue a built response (reply.c; head = out->mark bytes) on stream @p wsi; it leaves at
 *  the next WRITEABLE. @return 0. */
int gw_h2_reply(struct lws *wsi, const struct gw_buf *out);
/** @brief Send @p len bytes of stream data (END_STREAM after them when @p final): what the peer's
 *  window or the frame size does not take now waits in @p o. @return 0 all sent, 1 some waits. */
int gw_h2_data(struct lws *wsi, struct gw_h2out *o, const void *data, size_t len, int final);
/** @brief Send what waits in @p o. @return 0 all sent, 1 some still waits, -1 error. */
int gw_h2_push(struct lws *wsi, struct gw_h2out *o);
/** @brief Whether anything waits in @p o. */
int gw_h2out_pending(const struct gw_h2out *o);
/** @brief Drop what waits in @p o, free its buffer and stop its linger timer (at the stream's end,
 *  or when what waits will never leave). */
void gw_h2out_free(struct gw_h2out *o);
/**
 * @brief At the top of the protocol's WRITEABLE on an h2 stream: send what waits.
 * @return 1 when nothing waits (the caller goes on), else the callback's return value: 0 (still
 *         waiting, or a response was finished and the stream lives on until its body is read or
 *         a grace period ends) or -1 (close the stream).
 */
int gw_h2_writeable(struct lws *wsi, struct gw_http_pss *pss);

/* http.c: write a whole error response now and finish or close the transaction.
 * @return the value the lws callback should return. */
int gw_http_fail(struct gw *gw, struct lws *wsi, const struct gw_error *e, unsigned flags);

/* Shared scratch buffer (LWS_PRE headroom) for formatting one write; service thread only. */
struct gw_buf *gw_scratch(void);

/* Format a stored payload as a JSON value: as is when it is valid JSON, else as a JSON string
 * (or null when not UTF-8), so history and WebSocket frames stay valid JSON whoever wrote it. */
void gw_put_payload(struct gw_buf *b, const void *data, size_t len);

#endif /* GW_HTTP_INT_H */
