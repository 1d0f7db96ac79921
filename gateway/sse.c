/*
 * sse.c - GET /v1/topics/{parent}/{id}/events: one Server-Sent Events stream per request.
 *
 * Service thread. Pull, not push: the engine's ready set only says "this topic grew"; each
 * WRITEABLE reads from the stream's own next offset, formats up to max_unsent_bytes of events into
 * one buffer and makes one lws_write. A slow reader therefore lags in the log, not in memory, and
 * a reader that is far behind replays in bounded chunks at its own pace. An idle stream holds no
 * buffer: formatting uses one shared scratch buffer, and lws keeps only what a socket refused.
 */
#include "http_int.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "groups.h"
#include "h2conn.h"
#include "log.h"
#include "progress.h"

#define SSE_READ_MAX 1024 /* messages per eng_read */

static struct gw_sse *
sse_of(struct gw_sub *sub)
{
	return (struct gw_sse *)((char *)sub - offsetof(struct gw_sse, sub));
}

/* "Last-Event-ID" is not a header lws 4.1 knows: read it as a custom header (h2conn.h: on HTTP/2
 * from the frame tap), before lws_http_mark_sse() detaches the header table. Returns 1 and sets *id
 * when present. */
static int
last_event_id(struct lws *wsi, uint64_t *id, int *bad)
{
	char v[64];
	int n = gw_hdr_custom_copy(wsi, v, sizeof(v), GW_H2H_LAST_EVENT_ID);

	*bad = 0;
	if (n <= 0)
		return 0; /* absent or empty: EventSource sends none after an id-less reset */
	if (gw_parse_u64(v, (size_t)n, id)) {
		*bad = 1;
		return 0;
	}
	return 1;
}

static void
on_peer(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gw_sse *sse = w->data;
	char c;
	ssize_t n;

	(void)revents;
	n = recv(w->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	/* EOF, an error, or bytes nobody asked for: end the stream at its next WRITEABLE. */
	ev_io_stop(loop, w);
	sse->sub.closing = 1;
	lws_callback_on_writable(sse->sub.wsi);
}

int
gw_sse_start(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const struct gw_route *r,
	     const struct gw_query *q)
{
	uint8_t hbuf[LWS_PRE + 2048], *start = hbuf + LWS_PRE, *p = start, *end = hbuf + sizeof(hbuf);
	struct gw_sse *sse = &pss->sse;
	struct gw_error e;
	eng_topic_info info;
	uint64_t from = 0, id, stored = 0;
	int rc, bad, exists, from_first = 0, has_stored = 0;
	char gap[64], group[GW_GROUP_NAME_MAX + 1];
	struct gw_progress *prog = NULL;

	/* Start point, first match wins: Last-Event-ID, ?last_event_id, ?from, first retained. */
	if (last_event_id(wsi, &id, &bad) || (!bad && q->has_last_event_id && (id = q->last_event_id, 1))) {
		if (id == UINT64_MAX) {
			gw_error_set(&e, 400, "bad_request", "Last-Event-ID out of range");
			return gw_http_fail(gw, wsi, &e, 0);
		}
		from = id + 1;
	} else if (bad) {
		gw_error_set(&e, 400, "bad_request", "Last-Event-ID must be an offset (a decimal integer)");
		return gw_http_fail(gw, wsi, &e, 0);
	} else if (q->has_from && !q->from_tail) {
		from = q->from;
	} else if (!q->has_from) {
		from_first = 1;
	}
	/* ?group=g: with no start point of its own the stream resumes where g's last one stopped,
	 * and its position is stored for g as it goes (progress.h). */
	if ((rc = gw_progress_param(wsi, group, &e)) < 0 ||
	    (rc > 0 && gw_progress_begin(gw, group, r->topic, &prog, &stored, &has_stored, &e)))
		return gw_http_fail(gw, wsi, &e, 0);
	if (from_first && has_stored) {
		from_first = 0;
		from = stored;
	}
	rc = eng_topic_info_get(gw->db, r->topic, &info);
	if (rc && rc != ENG_ENOTFOUND) {
		gw_progress_end(prog);
		gw_error_from_eng(rc, &e);
		return gw_http_fail(gw, wsi, &e, 0);
	}
	exists = rc == 0;
	if (!exists)
		memset(&info, 0, sizeof(info));
	if (from_first || q->from_tail)
		from = from_first ? info.first_offset : info.next_offset;

	memset(sse, 0, sizeof(*sse));
	memcpy(sse->topic, r->topic, sizeof(sse->topic));
	sse->next = from;
	sse->prog = prog;
	/* Subscribe before the first read, so nothing that lands in between goes unnoticed. */
	gw_sub_register(gw, &sse->sub, GW_SUB_SSE, wsi);
	if ((rc = eng_sub_topic(gw->db, sse->sub.id, sse->topic)) != 0) {
		gw_sub_unregister(gw, &sse->sub);
		gw_progress_end(sse->prog);
		sse->prog = NULL;
		gw_error_from_eng(rc, &e);
		return gw_http_fail(gw, wsi, &e, 0);
	}
	pss->kind = GW_HK_SSE;
	gw_sub_expire_at(gw, &sse->sub, pss->auth_exp); /* auth.c: the stream ends with its token */
	gw->m.sse_open++;
	gw->m.sse_total++;

	if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream",
					LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)"no-cache", 8, &p, end) ||
	    /* Tell reverse proxies (nginx) not to buffer the stream. */
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"x-accel-buffering:",
					(const unsigned char *)"no", 2, &p, end) ||
	    gw_reply_cors(gw, wsi, &p, end))
		return -1;
	if (exists && from < info.first_offset) {
		int n = snprintf(gap, sizeof(gap), "%llu-%llu", (unsigned long long)from,
				 (unsigned long long)info.first_offset);

		if (lws_add_http_header_by_name(wsi, (const unsigned char *)"litegate-gap:",
						(const unsigned char *)gap, n, &p, end))
			return -1;
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	/* Clears lws's timeouts: the stream may be idle for hours. */
	lws_http_mark_sse(wsi);
	if (gw_is_h2(wsi)) {
		/* An HTTP/2 stream shares its socket with others: its end is lws's stream close
		 * (CLOSED_HTTP), never the socket's read side. */
		gw_sub_want_write(gw, &sse->sub);
		return 0;
	}
	/*
	 * lws 4.1.6 does not read an h1 socket in the SSE state (the fixes are in 4.3/4.4), so once
	 * the client closes, its level-triggered POLLIN fires on every loop turn: a busy loop until
	 * a write fails. Watch the read side too: EOF (or any byte: a client has nothing to say on
	 * an SSE stream) ends the stream within a loop turn. (Taking POLLIN away from lws with
	 * lws_rx_flow_control() instead makes 4.1.6 re-arm the fd on every turn: worse.)
	 */
	ev_io_init(&sse->peer_w, on_peer, lws_get_socket_fd(wsi), EV_READ);
	sse->peer_w.data = sse;
	ev_io_start(gw->loop, &sse->peer_w);
	gw_sub_want_write(gw, &sse->sub);
	return 0;
}

/* ---- Formatting ---------------------------------------------------------------------------------- */

static void
put_event(struct gw_buf *b, const eng_msg_view *m)
{
	const char *d = m->data, *nl;
	size_t left = m->len;

	gw_buf_puts(b, "id: ");
	gw_buf_u64(b, m->offset);
	gw_buf_puts(b, "\nevent: ");
	gw_buf_puts(b, m->event);
	/* Stored data is compact JSON, one line; a payload with line breaks gets one data: per line. */
	do {
		nl = memchr(d, '\n', left);
		if (!nl)
			nl = memchr(d, '\r', left);
		gw_buf_puts(b, "\ndata: ");
		gw_buf_append(b, d, nl ? (size_t)(nl - d) : left);
		if (nl) {
			left -= (size_t)(nl - d) + 1;
			d = nl + 1;
		}
	} while (nl);
	gw_buf_puts(b, "\n\n");
}

static void
put_reset(struct gw *gw, struct gw_buf *b, uint64_t from, uint64_t first, uint64_t next)
{
	/* An empty id: makes EventSource forget its last id, so a reconnect starts from the first
	 * retained message of the topic's new life instead of repeating the reset. */
	gw_buf_printf(b, "id:\nevent: reset\ndata: {\"from\":%llu,\"first_offset\":%llu,\"next_offset\":%llu}\n\n",
		      (unsigned long long)from, (unsigned long long)first, (unsigned long long)next);
	gw->m.resets++;
}

static void
put_gap(struct gw *gw, struct gw_buf *b, uint64_t from, uint64_t to)
{
	/* id: to-1 so a reconnect resumes at the first retained message, not at the gap again. */
	gw_buf_printf(b, "id: %llu\nevent: gap\ndata: {\"from\":%llu,\"to\":%llu}\n\n",
		      (unsigned long long)(to - 1), (unsigned long long)from, (unsigned long long)to);
	gw->m.gaps++;
}

/* Read what the stream has not sent yet into @p b, within the byte budget.
 * @return 1 if more remains, 0 if caught up, -1 on a storage error. */
static int
fill(struct gw *gw, struct gw_sse *sse, struct gw_buf *b, size_t budget)
{
	eng_read_result res;
	uint64_t now = gw_now_ms();
	int more = 0;

	for (int round = 0; round < 2; round++) {
		int rc;

		memset(&res, 0, sizeof(res));
		rc = eng_read(gw->db, sse->topic, sse->next, SSE_READ_MAX,
			      budget > b->len ? budget - b->len : 1, &res);
		if (rc == ENG_ENOTFOUND) {
			/* No topic (yet, or any more). A position past 0 belonged to an old life. */
			if (sse->next > 0) {
				put_reset(gw, b, sse->next, 0, 0);
				sse->next = 0;
			}
			return 0;
		}
		if (rc) {
			LOG_WARN("read %s at %llu: %s", sse->topic, (unsigned long long)sse->next,
				 eng_strerror(rc));
			return -1;
		}
		if (sse->next > res.next_offset) {
			/* Past the end: the topic expired or was deleted and re-created. Start over. */
			put_reset(gw, b, sse->next, res.first_offset, res.next_offset);
			sse->next = res.first_offset;
			eng_read_free(&res);
			continue;
		}
		if (res.below_retained && res.first_offset > sse->next)
			put_gap(gw, b, sse->next, res.first_offset);
		for (size_t i = 0; i < res.n; i++) {
			put_event(b, &res.msgs[i]);
			gw_hist_observe(&gw->m.delivery_latency,
					now > res.msgs[i].time_ms ? (double)(now - res.msgs[i].time_ms) / 1e3 : 0);
		}
		gw->m.delivered_msgs += res.n;
		if (res.n)
			sse->next = res.next;
		else if (res.below_retained)
			sse->next = res.first_offset;
		more = sse->next < res.next_offset;
		eng_read_free(&res);
		break;
	}
	return more;
}

/* Stream data: one lws_write on HTTP/1.1; on HTTP/2 within the peer's window (h2.c). */
static int
put_stream(struct lws *wsi, struct gw_http_pss *pss, struct gw_buf *b)
{
	if (gw_is_h2(wsi))
		return gw_h2_data(wsi, &pss->h2, gw_buf_data(b), b->len, 0) < 0 ? -1 : 0;
	return lws_write(wsi, gw_buf_data(b), b->len, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}

/*
 * End the stream. HTTP/1.1: close the connection. HTTP/2: END_STREAM first (an empty DATA frame),
 * for lws 4.1.6 closes a stream without telling the peer (no END_STREAM, no RST_STREAM), which
 * would leave the client waiting on it forever.
 */
static int
end_stream(struct lws *wsi)
{
	unsigned char none[LWS_PRE];

	if (gw_is_h2(wsi))
		lws_write(wsi, none + LWS_PRE, 0, LWS_WRITE_HTTP_FINAL);
	return -1;
}

int
gw_sse_writeable(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_sse *sse = &pss->sse;
	struct gw_buf *b;
	size_t budget = gw->cfg->max_unsent_bytes;
	int more = 0;

	/* Shutting down, or (HTTP/2) stalled: EventSource reconnects with its last id. */
	if (sse->sub.closing || sse->sub.stalled || !gw->db)
		return end_stream(wsi);
	if (gw_is_h2(wsi)) {
		lws_fileofs_t allow = lws_get_peer_write_allowance(wsi);

		/* The peer's window is spent: read nothing now. Its WINDOW_UPDATE brings WRITEABLE
		 * back; the stall clock keeps running meanwhile, so a peer that never opens its
		 * window goes (subs.c). */
		if (allow <= 0) {
			gw_sub_arm_stall(gw, &sse->sub);
			return 0;
		}
		if ((size_t)allow < budget)
			budget = (size_t)allow;
	}
	gw_sub_wrote(gw, &sse->sub);
	b = gw_scratch();
	if (sse->sub.expired) {
		/* The token expired (auth.c): say so in a last event, end the stream at the next turn. */
		gw_buf_puts(b, "event: error\ndata: {\"code\":\"token_expired\",\"message\":\"the token "
			       "expired; reconnect with a new one\"}\n\n");
		sse->sub.closing = 1;
		if (put_stream(wsi, pss, b))
			return -1;
		gw_sub_want_write(gw, &sse->sub);
		return 0;
	}
	if (!sse->started) {
		gw_buf_printf(b, "retry: %u\n\n", gw->cfg->sse_retry_ms);
		sse->started = 1;
	}
	more = fill(gw, sse, b, budget);
	if (more < 0)
		return -1;
	if (!b->len && sse->sub.hb_due)
		gw_buf_puts(b, ":\n\n");
	sse->sub.hb_due = 0;
	if (b->len) {
		if (put_stream(wsi, pss, b))
			return -1;
		gw->m.delivered_bytes += b->len;
	}
	gw_progress_note(sse->prog, sse->next); /* also on heartbeats: an idle stream's last position */
	if (more)
		gw_sub_want_write(gw, &sse->sub);
	return 0;
}

void
gw_sse_on_ready(struct gw *gw, struct gw_sub *sub, const eng_ready *r)
{
	struct gw_sse *sse = sse_of(sub);

	/* A next_offset below ours means the topic was re-created: the read path sends the reset. */
	if ((r->flags & ENG_READY_OVERFLOW) || r->next_offset != sse->next)
		gw_sub_want_write(gw, sub);
}

void
gw_sse_stalled(struct gw_sub *sub)
{
	struct gw_sse *sse = sse_of(sub);
	struct gw_http_pss *pss = (struct gw_http_pss *)((char *)sse - offsetof(struct gw_http_pss, sse));

	/* What waits for the window would never leave: drop it, so the next WRITEABLE reaches
	 * gw_sse_writeable(), which ends the stream. A client sees a cut event at worst, which an
	 * EventSource discards, and reconnects with its last complete id. */
	gw_h2out_free(&pss->h2);
	lws_callback_on_writable(sub->wsi);
}

void
gw_sse_close(struct gw *gw, struct gw_http_pss *pss)
{
	struct gw_sse *sse = &pss->sse;

	if (!sse->sub.registered)
		return;
	if (ev_is_active(&sse->peer_w))
		ev_io_stop(gw->loop, &sse->peer_w);
	if (sse->sub.stall_armed && !sse->sub.closing)
		gw->m.stalled_dropped++;
	gw_sub_unregister(gw, &sse->sub);
	gw_progress_end(sse->prog);
	sse->prog = NULL;
	gw->m.sse_open--;
}
