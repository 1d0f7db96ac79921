/*
 * gw.h - the gateway's shared state and the entry points its modules offer each other.
 *
 * Service thread only (the libwebsockets/libev loop thread), except where a comment says otherwise.
 * One struct gw exists per process; the lws protocols reach it through lws_protocols.user.
 */
#ifndef GW_GW_H
#define GW_GW_H

#include <ev.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include <engine.h>

#include "buf.h"
#include "config.h"
#include "metrics.h"

struct ev_loop;
struct gw_pub;
struct gw_groups;

enum gw_state {
	GW_RUNNING = 0,
	GW_DRAINING, /* SIGTERM seen: no new connections, new requests get 503, streams are ended */
	GW_STOPPED,  /* lws context destroyed; the engine is closing */
};

enum gw_sub_kind {
	GW_SUB_SSE = 1,
	GW_SUB_WS,
};

/*
 * A streaming connection registered with the engine's subscription set. Embedded in the SSE pss
 * (memory owned by lws) or in the WebSocket connection state; linked from gw_sub_register() until
 * gw_sub_unregister(), which the owner calls from its CLOSED callback at the latest.
 */
struct gw_sub {
	uint64_t id;               /* subscriber id given to eng_sub_topic (never 0) */
	enum gw_sub_kind kind;
	struct lws *wsi;           /* the connection; valid while registered */
	struct gw_sub *hnext;      /* hash chain in gw->htab */
	struct gw_sub *prev, *next;/* gw->streams: every live stream, for heartbeats and shutdown */
	unsigned hb_due : 1;       /* a heartbeat is owed at the next WRITEABLE */
	unsigned closing : 1;      /* shutting down: end the stream at the next WRITEABLE */
	unsigned stall_armed : 1;  /* a stall timeout is running (set when output waits) */
	unsigned registered : 1;
	unsigned expired : 1;      /* its token expired (auth.c): a last error, then the stream ends */
	unsigned stalled : 1;      /* HTTP/2: the stall clock ran out; the stream ends at its next
				    * WRITEABLE (subs.c) */
	ev_timer expire_w;         /* runs until the token's expiry while registered (auth.c) */
	ev_timer stall_w;          /* HTTP/2 only: the stall clock (lws 4.1.6 keeps none on an SSE
				    * stream), running while stall_armed (subs.c) */
};

struct gw {
	const struct gw_config *cfg;
	eng_db *db;                /* NULL after eng_close */
	struct lws_context *ctx;   /* NULL after lws_context_destroy */
	struct lws_vhost *vhost;
	struct ev_loop *loop;
	enum gw_state state;
	uint64_t next_sub_id;      /* subscriber ids: 1, 2, ... */
	struct gw_sub **htab;      /* subscriber id -> gw_sub (chained, power-of-two size) */
	size_t hcap, hcount;
	struct gw_sub streams;     /* list head (sentinel) of registered streams */
	size_t inflight;           /* publishes (HTTP requests, WebSocket ops) not yet answered */
	struct gw_pub *pubs;       /* open HTTP publish requests (publish.c), for shutdown */
	struct gw_groups *groups;  /* consumer groups (groups.h) */
	int cors_any;              /* "*" is among cors_origins */
	int notify_via_cancel;     /* no notify fd: the engine wakes us with lws_cancel_service() */
	struct gw_metrics m;
};

/* ---- Time ------------------------------------------------------------------------------------ */
uint64_t gw_now_ms(void);      /* wall clock, ms since the epoch (compares with eng_msg_view.time_ms) */
uint64_t gw_mono_us(void);     /* monotonic, for latencies */

/* ---- Errors ---------------------------------------------------------------------------------- */
/* An API error: HTTP status, stable code, message. */
struct gw_error {
	unsigned status;
	const char *code;
	char message[200];
	unsigned retry_after_s;    /* 429/503: the Retry-After to send (0: the default, 1 s) */
};

/** @brief Map an engine return code (ENG_E* or errno) to an API error. */
void gw_error_from_eng(int rc, struct gw_error *e);
void gw_error_set(struct gw_error *e, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- Subscribers (subs.c) ---------------------------------------------------------------------- */
/** @brief Give @p sub a fresh id and link it (hash and stream list). */
void gw_sub_register(struct gw *gw, struct gw_sub *sub, enum gw_sub_kind kind, struct lws *wsi);
/** @brief Unlink @p sub and drop its engine subscriptions. Idempotent. */
void gw_sub_unregister(struct gw *gw, struct gw_sub *sub);
struct gw_sub *gw_sub_find(struct gw *gw, uint64_t id);
/** @brief Ask for a WRITEABLE on @p sub and arm its stall timeout if none runs. */
void gw_sub_want_write(struct gw *gw, struct gw_sub *sub);
/**
 * @brief Start @p sub's stall timeout if none runs, without asking for WRITEABLE (an HTTP/2
 *        stream waiting for the peer's window: the peer's WINDOW_UPDATE brings WRITEABLE).
 *        When it runs out the stream is dropped and counted in litegate_stalled_dropped_total:
 *        HTTP/1.1 closes the connection (lws's timeout); HTTP/2 ends the stream (subs.c).
 */
void gw_sub_arm_stall(struct gw *gw, struct gw_sub *sub);
/** @brief The peer took output (a WRITEABLE with room, or an HTTP/2 stream's queued bytes moved):
 *  the stall clock stops. No effect once an HTTP/2 stream has stalled. */
void gw_sub_wrote(struct gw *gw, struct gw_sub *sub);
/** @brief The engine's notify fd fired: run completions, then wake every ready subscriber. */
void gw_engine_notify(struct gw *gw);
/** @brief Heartbeat tick: every stream owes a heartbeat at its next WRITEABLE. */
void gw_streams_heartbeat(struct gw *gw);
/** @brief Shutdown: every stream ends at its next WRITEABLE. */
void gw_streams_close_all(struct gw *gw);

/** @brief Shutdown: every HTTP publish still reading its body stops and answers 503 (publish.c). */
void gw_pubs_shutdown(struct gw *gw);

/* Per-transport reactions to a ready entry (sse.c, ws.c). */
void gw_sse_on_ready(struct gw *gw, struct gw_sub *sub, const eng_ready *r);
void gw_ws_on_ready(struct gw *gw, struct gw_sub *sub, const eng_ready *r);
/** @brief An HTTP/2 SSE stream's stall clock ran out (subs.c): drop what waits for the peer's
 *  window and end the stream at its next WRITEABLE (sse.c). */
void gw_sse_stalled(struct gw_sub *sub);

/* ---- HTTP replies (reply.c) -------------------------------------------------------------------- */
/* Headers for one response are built in front of its body in a single LWS_PRE-prefixed buffer, so
 * status, headers and body leave in one lws_write (lws-performance.md lesson 3). */
#define GW_REPLY_CLOSE 1u   /* add "connection: close"; the caller closes after writing */

/**
 * @brief Build a whole response (HTTP/1.1: status line and headers; HTTP/2: an HPACK block, which
 *        lws makes for a stream) then its body, into @p out; out->mark is where the body starts.
 * @param extra NULL, or a NULL-terminated list of name/value pairs, names with their colon:
 *        { "allow:", "GET, OPTIONS", NULL }.
 * @return 0, or -1 if lws could not add a header.
 */
int gw_reply_build(struct gw *gw, struct lws *wsi, struct gw_buf *out, unsigned status,
		   const char *ctype, const void *body, size_t len, const char *const *extra,
		   unsigned flags);
/** @brief A JSON error body {"error":{"code","message"}} plus optional extra members (raw JSON,
 *  starting with ','), built as a whole response. 429 and 503 get "retry-after: 1" unless
 *  @p extra_headers is given. */
int gw_reply_error(struct gw *gw, struct lws *wsi, struct gw_buf *out, const struct gw_error *e,
		   const char *extra_members, const char *const *extra_headers, unsigned flags);
/** @brief Write a built response in one lws_write (HTTP/1.1 only). @return 0 or -1 (close). */
int gw_reply_write(struct lws *wsi, struct gw_buf *out);
/**
 * @brief Send a built response on a "gw-http" request and finish its transaction: on HTTP/1.1 one
 *        lws_write, then keep-alive (or a close with GW_REPLY_CLOSE); on an HTTP/2 stream the
 *        response is queued and leaves at the next WRITEABLE (h2.c), GW_REPLY_CLOSE ignored.
 * @return the value the lws callback should return. On HTTP/1.1 the pss may be gone after it.
 */
int gw_reply_send(struct lws *wsi, struct gw_buf *out, unsigned flags);
/** @brief Whether @p wsi is an HTTP/2 stream rather than an HTTP/1.1 connection (h2.c). */
int gw_is_h2(struct lws *wsi);
/** @brief Add the CORS headers for this request's Origin, if it is allowed. */
int gw_reply_cors(struct gw *gw, struct lws *wsi, unsigned char **p, unsigned char *end);

/* ---- Protocol callbacks (http.c, ws.c) -------------------------------------------------------- */
int gw_http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len);
int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len);

/** @brief conn.c found an unmasked client frame on @p wsi (a WebSocket): close it with 1002. */
void gw_ws_unmasked(struct lws *wsi);

/* Per-session sizes for the protocol table (main.c). */
size_t gw_http_pss_size(void);
size_t gw_ws_pss_size(void);

#endif /* GW_GW_H */
