/*
 * conn_h2.c - the HTTP/2 streams of a TLS connection, matched with what its frame tap recorded
 * (h2tap.h), for the gateway's request handlers (h2conn.h).
 *
 * conn_tls.c feeds every byte lws reads on an h2 connection to the connection's tap. What is left
 * is to know which tap stream a stream wsi is: lws 4.1.6 has no public accessor for a stream's id.
 * It creates a stream wsi when it parses the frame header of a HEADERS frame that opens a stream
 * (roles/h2/http2.c, lws_h2_parse_frame_header), in the order the client opened them (ids only
 * grow), and the tap opens its stream records at the same frame headers, so the n-th stream wsi of
 * a connection is the tap's n-th stream. LWS_CALLBACK_WSI_CREATE announces every new wsi, but
 * before lws links a stream to its connection; so new wsis are queued here and matched later
 * (`drain`): before the loop next waits (an ev_prepare watcher), at the next WSI_CREATE, before any
 * look-up, and when any wsi is destroyed. A stream wsi's opaque user data then points at its
 * `struct h2ref` (REF_H2STREAM, where a connection's points at its struct conn).
 *
 * The client's END_STREAM and RST_STREAM become events (conn_tls.c starts the connection's `arm`
 * timer when the tap has some): conn_h2_events() hands a body's end to http.c outside any lws
 * callback, and closes a reset stream a grace second later.
 */
#include "conn_int.h"

#include <stddef.h>
#include <string.h>

#include "h2conn.h"
#include "log.h"
#include "xalloc.h"

struct h2ref {
	enum conn_ref ref;         /* REF_H2STREAM */
	struct conn *c;            /* its connection; NULL once that is gone */
	struct gw_h2stream *s;     /* the tap's record; NULL once the connection is gone */
	struct lws *wsi;
	ev_timer reset_w;          /* the client reset the stream: it is closed when this fires */
};

#define RESET_GRACE_S 1.0

static struct {
	struct lws **created;      /* WSI_CREATE'd, not matched yet, in creation order */
	size_t n, cap;
	ev_prepare prepare;
	int started;
} H;

static const char *const lws_names[GW_H2H_COUNT] = {
	[GW_H2H_LAST_EVENT_ID] = "last-event-id:",
	[GW_H2H_IDEMPOTENCY_KEY] = "idempotency-key:",
	[GW_H2H_EXPECTED_OFFSET] = "litegate-expected-offset:",
};

/*
 * A stream the client reset, a grace second later. lws 4.1.6 keeps such a stream, with no callback
 * (an EventSource the page closed would stream on). The second lets lws parse what came before the
 * reset: a DATA frame for a stream it no longer knows costs the whole connection a GOAWAY. (Not
 * lws_set_timeout() with a delay: lws logs an error for each on an SSE stream, which it makes
 * "immortal".)
 */
static void
on_reset_grace(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct h2ref *ref = (struct h2ref *)((char *)w - offsetof(struct h2ref, reset_w));

	(void)loop;
	(void)revents;
	lws_set_timeout(ref->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* Match every queued wsi that is a stream by now with its connection's next tap stream. */
static void
drain(void)
{
	size_t n = H.n;

	H.n = 0;
	for (size_t i = 0; i < n; i++) {
		struct lws *w = H.created[i], *nw = lws_get_network_wsi(w);
		struct gw_h2stream *s;
		struct h2ref *ref;
		struct conn *c;

		if (nw == w || !(c = conn_of(nw)) || !c->h2 || !(s = gw_h2tap_next_opened(c->h2)))
			continue; /* a connection, or a stream the tap does not follow */
		ref = xcalloc(1, sizeof(*ref));
		ref->ref = REF_H2STREAM;
		ref->c = c;
		ref->s = s;
		ref->wsi = w;
		ev_timer_init(&ref->reset_w, on_reset_grace, RESET_GRACE_S, 0);
		s->user = ref;
		lws_set_opaque_user_data(w, ref);
	}
}

static void
on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (H.n)
		drain();
}

void
conn_h2_wsi_created(struct lws *wsi)
{
	struct gw *gw = conn_gw();

	if (!H.started && gw) {
		ev_prepare_init(&H.prepare, on_prepare);
		ev_prepare_start(gw->loop, &H.prepare);
		ev_unref(gw->loop); /* it must not keep the loop alive at shutdown */
		H.started = 1;
	}
	drain(); /* every wsi created before this one is linked to its connection by now */
	if (H.n == H.cap) {
		H.cap = H.cap ? 2 * H.cap : 16;
		H.created = xrealloc(H.created, H.cap * sizeof(*H.created));
	}
	H.created[H.n++] = wsi;
}

/* The tap's record of stream @p wsi, or NULL (HTTP/1.1, or a stream the tap does not follow). */
static struct gw_h2stream *
stream_of(struct lws *wsi)
{
	struct h2ref *ref;

	if (H.n)
		drain();
	ref = lws_get_opaque_user_data(wsi);
	return ref && ref->ref == REF_H2STREAM ? ref->s : NULL;
}

void
conn_h2_ref_destroyed(void *opaque)
{
	struct h2ref *ref = opaque;

	ev_timer_stop(conn_gw()->loop, &ref->reset_w);
	if (ref->c && ref->s)
		gw_h2tap_forget(ref->c->h2, ref->s);
	free(ref);
}

void
conn_h2_free(void)
{
	/* (The prepare watcher went with the loop, destroyed before this.) */
	free(H.created);
	memset(&H, 0, sizeof(H));
}

void
conn_h2_settle(void)
{
	if (H.n)
		drain();
}

void
conn_h2_conn_gone(struct conn *c)
{
	if (!c->h2)
		return;
	/* Its streams' wsis may outlive it by a moment: their refs stay, pointing at nothing. */
	for (struct gw_h2stream *s = gw_h2tap_streams(c->h2); s; s = s->next) {
		struct h2ref *ref = s->user;

		if (ref) {
			ref->c = NULL;
			ref->s = NULL;
		}
	}
	gw_h2tap_free(c->h2);
	c->h2 = NULL;
}

void
conn_h2_events(struct gw *gw, struct conn *c)
{
	struct gw_h2stream *s;

	if (H.n)
		drain();
	while (c->h2 && (s = gw_h2tap_next_changed(c->h2))) {
		struct h2ref *ref = s->user;

		if (!ref)
			continue;
		if (s->reset)
			ev_timer_start(gw->loop, &ref->reset_w);
		else /* (http.c closes streams only asynchronously: @p c and its tap stay) */
			gw_http_h2_body_end(gw, ref->wsi);
	}
}

/* ---- h2conn.h -------------------------------------------------------------------------------------- */

int
gw_hdr_custom_copy(struct lws *wsi, char *dst, int len, enum gw_h2hdr h)
{
	const struct gw_h2stream *s;

	if (!gw_is_h2(wsi))
		return lws_hdr_custom_copy(wsi, dst, len, lws_names[h], (int)strlen(lws_names[h]));
	if (!(s = stream_of(wsi)) || !s->hdr[h] || s->hdr_len[h] >= (size_t)len)
		return -1;
	memcpy(dst, s->hdr[h], s->hdr_len[h] + 1);
	return (int)s->hdr_len[h];
}

int
gw_hdr_custom_length(struct lws *wsi, enum gw_h2hdr h)
{
	const struct gw_h2stream *s;

	if (!gw_is_h2(wsi))
		return lws_hdr_custom_length(wsi, lws_names[h], (int)strlen(lws_names[h]));
	if (!(s = stream_of(wsi)) || !s->hdr[h])
		return -1;
	return (int)s->hdr_len[h];
}

int
gw_h2_request_followed(struct lws *wsi)
{
	const struct gw_h2stream *s = stream_of(wsi);
	char method[16];

	if (!s)
		return 0;
	if (lws_hdr_copy(wsi, method, sizeof(method), WSI_TOKEN_HTTP_COLON_METHOD) < 0 ||
	    strcmp(method, s->method)) {
		LOG_ERR("h2: stream %u is a %s to the frame tap but a %s to lws: its recovered "
			  "headers are not used", s->sid, s->method, method);
		return -1;
	}
	return 1;
}

int
gw_h2_followed(struct lws *wsi)
{
	return stream_of(wsi) != NULL;
}

int
gw_h2_body_ended(struct lws *wsi, uint64_t received)
{
	const struct gw_h2stream *s = stream_of(wsi);

	return s && s->end_stream && s->data_bytes == received;
}
