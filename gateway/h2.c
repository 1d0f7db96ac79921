/*
 * h2.c - writing on HTTP/2 streams (http_int.h: struct gw_h2out). Service thread.
 *
 * HTTP/1.1 replies leave in one lws_write (reply.c). An h2 stream cannot: its head is a HEADERS
 * frame (LWS_WRITE_HTTP_HEADERS) and its body DATA frames, and lws 4.1.6 leaves two rules of RFC 9113
 * to its user (roles/h2/ops-h2.c, http2.c):
 *  - it writes whatever one lws_write gets as ONE frame, so a DATA frame may not exceed the peer's
 *    SETTINGS_MAX_FRAME_SIZE, whose floor, 16384, every peer accepts (we do not read its value);
 *  - it does not hold DATA back when the peer's flow-control window is spent: each write must stay
 *    within lws_get_peer_write_allowance(), and WRITEABLE comes again once a WINDOW_UPDATE arrives.
 * So what a stream cannot send yet waits in its gw_h2out, and goes at the next WRITEABLE.
 *
 * Replies are never written from LWS_CALLBACK_HTTP on h2, only queued: once END_STREAM is out,
 * lws ends the stream when the callback returns, and a client still sending its body would then
 * send DATA for a stream lws no longer knows, which lws 4.1.6 answers with GOAWAY for the whole
 * connection (every other stream on it too). From WRITEABLE, lws_http_transaction_completed()
 * keeps a stream whose body is unread until the body is in (LRS_DISCARD_BODY), then ends it.
 *
 * Such a stream (a request refused before its body was in: 413, 400, 401...) would otherwise cost
 * for as long as its client likes: lws reads and drops the rest of the body, re-opening the
 * client's window as it goes, up to the Content-Length, and a client that stops sending without
 * ending or resetting the stream holds one of the connection's streams until lws's body timeout.
 * lws cannot send RST_STREAM(NO_ERROR), the RFC 9113 8.1 way to tell a client to stop. So the
 * stream gets H2_LINGER_S: a client that saw its complete response has stopped or reset by then
 * (curl does), and its body's last frames in flight are still read. Then the stream is closed. A
 * client still sending after that loses its connection (lws 4.1.6 answers DATA for a stream it
 * closed with GOAWAY): the price of a refused body sent on regardless (HTTP/1.1 closes the
 * connection at once). A body without Content-Length waits there too once answered, as lws never
 * sees it end (the frame tap does: http.c), and goes the same way.
 */
#include "http_int.h"

#include <string.h>

#define H2_FRAME_MAX 16384        /* SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113 6.5.2) */
#define H2_WRITE_MAX (256 * 1024) /* bytes per WRITEABLE: other streams get their turn */
#define H2_LINGER_S 1.0           /* a stream answered before its body was in: see above */

int
gw_is_h2(struct lws *wsi)
{
	/* lws 4.1.6 core-net/wsi.c: the network wsi of a stream (mux_substream) is its parent, while
	 * an HTTP/1.1 connection is its own. */
	return lws_get_network_wsi(wsi) != wsi;
}

static void
out_reset(struct gw_h2out *o)
{
	gw_buf_reset(&o->buf);
	o->off = 0;
	o->head = o->final = o->reply = 0;
}

void
gw_h2out_free(struct gw_h2out *o)
{
	if (o->loop && ev_is_active(&o->linger_w))
		ev_timer_stop(o->loop, &o->linger_w);
	gw_buf_free(&o->buf);
	out_reset(o);
}

int
gw_h2out_pending(const struct gw_h2out *o)
{
	return o->head || o->off < o->buf.len || o->final;
}

/* Make @p o ready to take bytes (pss memory is zeroed: the headroom must be set). */
static void
out_prepare(struct gw_h2out *o)
{
	if (!o->buf.mem && !o->buf.cap)
		gw_buf_init(&o->buf, LWS_PRE);
	if (!gw_h2out_pending(o))
		out_reset(o);
}

int
gw_h2_push(struct lws *wsi, struct gw_h2out *o)
{
	unsigned char *d = gw_buf_data(&o->buf);
	size_t budget = H2_WRITE_MAX;

	if (o->head) {
		/* A body-less response ends the stream with its HEADERS frame. */
		int end = o->final && o->buf.len == o->buf.mark;

		if (lws_write(wsi, d, o->buf.mark, LWS_WRITE_HTTP_HEADERS |
			      (end ? LWS_WRITE_H2_STREAM_END : 0)) < 0)
			return -1;
		o->head = 0;
		o->off = o->buf.mark;
		o->sent += o->buf.mark;
		if (end)
			o->final = 0;
	}
	while (o->off < o->buf.len || o->final) {
		lws_fileofs_t allow = lws_get_peer_write_allowance(wsi);
		size_t n = o->buf.len - o->off;
		int last;

		if (allow <= 0 && n)
			break; /* window spent: lws calls WRITEABLE again after the peer's WINDOW_UPDATE */
		if (n > H2_FRAME_MAX)
			n = H2_FRAME_MAX;
		if (n > budget)
			n = budget;
		if (allow > 0 && (lws_fileofs_t)n > allow)
			n = (size_t)allow;
		last = o->off + n == o->buf.len;
		/* lws writes the 9-byte frame header in front of the payload: the bytes before it were
		 * sent already (or are the headroom). */
		if (lws_write(wsi, d + o->off, n, last && o->final ? LWS_WRITE_HTTP_FINAL
								 : LWS_WRITE_HTTP) < 0)
			return -1;
		o->off += n;
		o->sent += n;
		budget -= n;
		if (last) {
			o->final = 0;
			break;
		}
		if (!budget)
			break;
	}
	if (gw_h2out_pending(o)) {
		/* With the window spent, asking now would only spin: lws 4.1.6 grants a stream its
		 * WRITEABLE whatever its credit, and wakes every stream when a WINDOW_UPDATE comes. */
		if (lws_get_peer_write_allowance(wsi) > 0)
			lws_callback_on_writable(wsi);
		return 1;
	}
	out_reset(o);
	if (o->buf.cap > 2 * H2_WRITE_MAX)
		gw_buf_free(&o->buf); /* an idle stream holds no big buffer */
	return 0;
}

int
gw_h2_data(struct lws *wsi, struct gw_h2out *o, const void *data, size_t len, int final)
{
	out_prepare(o);
	gw_buf_append(&o->buf, data, len);
	o->final = final ? 1 : 0;
	return gw_h2_push(wsi, o);
}

int
gw_h2_reply(struct lws *wsi, const struct gw_buf *out)
{
	struct gw_http_pss *pss = lws_wsi_user(wsi);
	struct gw_h2out *o = &pss->h2;

	out_prepare(o);
	gw_buf_append(&o->buf, gw_buf_data(out), out->len);
	o->buf.mark = out->mark;
	o->head = o->final = o->reply = 1;
	lws_callback_on_writable(wsi);
	return 0;
}

static void
on_linger_end(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	/* The body is still not over (else lws would have ended the stream and stopped this). */
	lws_set_timeout((struct lws *)w->data, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/* The response is out but the request body is not: the stream ends with the body or after
 * H2_LINGER_S, whichever comes first (see the top of this file). */
static void
linger(struct lws *wsi, struct gw_h2out *o)
{
	o->loop = gw_from_wsi(wsi)->loop;
	if (ev_is_active(&o->linger_w))
		return;
	ev_timer_init(&o->linger_w, on_linger_end, H2_LINGER_S, 0);
	o->linger_w.data = wsi;
	ev_timer_start(o->loop, &o->linger_w);
}

int
gw_h2_writeable(struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_h2out *o = &pss->h2;
	uint64_t sent = o->sent;
	int reply = o->reply, rc;

	if (!gw_h2out_pending(o))
		return 1;
	rc = gw_h2_push(wsi, o);
	if (rc >= 0 && o->sent != sent && pss->kind == GW_HK_SSE) {
		/* The peer opened its window: a slow reader, not a stalled one (subs.c). */
		gw_sub_wrote(gw_from_wsi(wsi), &pss->sse.sub);
		if (rc)
			gw_sub_arm_stall(gw_from_wsi(wsi), &pss->sse.sub);
	}
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	if (!reply)
		return 1; /* stream data is out: the stream's own WRITEABLE may go on */
	/* The response is out (END_STREAM), its last DATA frame handed to lws. */
	if (pss->kind == GW_HK_PULL)
		gw_pull_sent(gw_from_wsi(wsi), pss);
	/* The stream ends now, or waits in LRS_DISCARD_BODY until its body is in or its grace is
	 * over (linger()). Two kinds wait there: a request answered before its body was in, and one
	 * whose body had no Content-Length (h2_open_body: lws takes it for 100 MB long and never
	 * sees it end, though the frame tap saw its END_STREAM). */
	if (lws_http_transaction_completed(wsi))
		return -1;
	linger(wsi, o);
	return 0;
}
