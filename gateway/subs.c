/*
 * subs.c - the registry of streaming subscribers (SSE streams and WebSockets) and the hand-over
 * from the engine: completions, then the ready set, turned into WRITEABLE requests.
 *
 * Service thread only. The engine's writer thread never reaches this code: it only makes the
 * notify fd readable, and the loop calls gw_engine_notify() (main.c explains why an fd watcher).
 */
#include "gw.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "groups.h"
#include "log.h"
#include "xalloc.h"

uint64_t
gw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
gw_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
gw_error_set(struct gw_error *e, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;

	e->status = status;
	e->code = code;
	e->retry_after_s = 0;
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

void
gw_error_from_eng(int rc, struct gw_error *e)
{
	switch (rc) {
	case ENG_EBADNAME:
		gw_error_set(e, 400, "bad_name", "%s", eng_strerror(rc));
		break;
	case ENG_ENOPARENT:
		gw_error_set(e, 404, "unknown_parent", "%s", eng_strerror(rc));
		break;
	case ENG_ETOOBIG:
		gw_error_set(e, 413, "too_large", "%s", eng_strerror(rc));
		break;
	case ENG_ENOTFOUND:
		gw_error_set(e, 404, "not_found", "%s", eng_strerror(rc));
		break;
	case ENG_EINVAL:
		gw_error_set(e, 400, "bad_request", "%s", eng_strerror(rc));
		break;
	case ENG_EMISMATCH:
		gw_error_set(e, 409, "offset_mismatch", "%s", eng_strerror(rc));
		break;
	case ENG_EBUSY:
		gw_error_set(e, 429, "busy", "%s; retry later", eng_strerror(rc));
		break;
	case ENG_ECLOSING:
		gw_error_set(e, 503, "shutting_down", "%s", eng_strerror(rc));
		break;
	case ENG_EFULL:
	case ENOSPC:
		gw_error_set(e, 507, "storage_full", "%s", eng_strerror(rc));
		break;
	case ENG_EFAILED:
	case EIO:
		gw_error_set(e, 507, "storage_failed", "%s", eng_strerror(rc));
		break;
	default:
		gw_error_set(e, 500, "internal", "%s", eng_strerror(rc));
		break;
	}
}

/* ---- Registry ---------------------------------------------------------------------------------- */

static size_t
slot(const struct gw *gw, uint64_t id)
{
	/* Ids are sequential; a multiplicative hash spreads them over the power-of-two table. */
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> 20) & (gw->hcap - 1);
}

static void
grow(struct gw *gw)
{
	size_t old = gw->hcap;
	struct gw_sub **t = gw->htab;

	gw->hcap = old ? old * 2 : 1024;
	gw->htab = xcalloc(gw->hcap, sizeof(*gw->htab));
	for (size_t i = 0; i < old; i++) {
		struct gw_sub *s = t[i], *n;

		for (; s; s = n) {
			size_t k = slot(gw, s->id);

			n = s->hnext;
			s->hnext = gw->htab[k];
			gw->htab[k] = s;
		}
	}
	free(t);
}

void
gw_sub_register(struct gw *gw, struct gw_sub *sub, enum gw_sub_kind kind, struct lws *wsi)
{
	size_t k;

	if (gw->hcount + 1 > gw->hcap / 4 * 3)
		grow(gw);
	sub->id = ++gw->next_sub_id;
	sub->kind = kind;
	sub->wsi = wsi;
	k = slot(gw, sub->id);
	sub->hnext = gw->htab[k];
	gw->htab[k] = sub;
	gw->hcount++;
	sub->next = gw->streams.next;
	sub->prev = &gw->streams;
	gw->streams.next->prev = sub;
	gw->streams.next = sub;
	sub->registered = 1;
}

void
gw_sub_unregister(struct gw *gw, struct gw_sub *sub)
{
	struct gw_sub **pp;

	if (!sub->registered)
		return;
	for (pp = &gw->htab[slot(gw, sub->id)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == sub) {
			*pp = sub->hnext;
			break;
		}
	}
	gw->hcount--;
	sub->prev->next = sub->next;
	sub->next->prev = sub->prev;
	sub->prev = sub->next = NULL;
	sub->registered = 0;
	if (ev_is_active(&sub->expire_w))
		ev_timer_stop(gw->loop, &sub->expire_w); /* auth.c: gw_sub_expire_at() */
	if (ev_is_active(&sub->stall_w))
		ev_timer_stop(gw->loop, &sub->stall_w);
	if (gw->db)
		eng_unsub_all(gw->db, sub->id);
}

struct gw_sub *
gw_sub_find(struct gw *gw, uint64_t id)
{
	struct gw_sub *s;

	if (!gw->hcap)
		return NULL;
	for (s = gw->htab[slot(gw, id)]; s; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

/* After an HTTP/2 stream's stall, the time its END_STREAM gets to leave before lws drops it. */
#define H2_STALL_END_S 1.0

/*
 * An HTTP/2 stream's stall clock. lws 4.1.6 keeps no timeout on an SSE stream (lws_http_mark_sse
 * makes it "immortal", and every lws_set_timeout() on one logs an error), and its timeout would
 * drop the stream without END_STREAM, so the clock is ours.
 * When it runs out, the stream ends at its next WRITEABLE with END_STREAM (an empty DATA frame,
 * which no flow-control window holds back), so the client learns it is over. A peer that does not
 * even read the connection never gives that WRITEABLE: H2_STALL_END_S later, lws drops the stream
 * without a word. Either way only the stream goes, never the connection, and the close is counted
 * as a stall (gw_sse_close(): stall_armed stays set).
 */
static void
on_h2_stall(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gw_sub *sub = w->data;

	(void)revents;
	if (!sub->stalled) {
		sub->stalled = 1;
		gw_sse_stalled(sub); /* the only stream on HTTP/2: WebSocket is HTTP/1.1 only */
		ev_timer_set(w, H2_STALL_END_S, 0);
		ev_timer_start(loop, w);
		return;
	}
	lws_set_timeout(sub->wsi, PENDING_TIMEOUT_LAGGING, LWS_TO_KILL_ASYNC);
}

void
gw_sub_arm_stall(struct gw *gw, struct gw_sub *sub)
{
	if (sub->stall_armed)
		return;
	sub->stall_armed = 1;
	if (gw_is_h2(sub->wsi)) {
		ev_timer_init(&sub->stall_w, on_h2_stall, (double)gw->cfg->stall_timeout_s, 0);
		sub->stall_w.data = sub;
		ev_timer_start(gw->loop, &sub->stall_w);
		return;
	}
	lws_set_timeout(sub->wsi, PENDING_TIMEOUT_LAGGING, (int)gw->cfg->stall_timeout_s);
}

void
gw_sub_want_write(struct gw *gw, struct gw_sub *sub)
{
	lws_callback_on_writable(sub->wsi);
	/*
	 * Stall detection: once output is waiting, the peer has stall_timeout_s to let us write.
	 * The clock is armed once and only stopped by a WRITEABLE, so a stuck peer that keeps
	 * getting news is still dropped; a slow but moving one re-arms on every write.
	 */
	gw_sub_arm_stall(gw, sub);
}

void
gw_sub_wrote(struct gw *gw, struct gw_sub *sub)
{
	if (!sub->stall_armed || sub->stalled)
		return;
	sub->stall_armed = 0;
	if (gw_is_h2(sub->wsi))
		ev_timer_stop(gw->loop, &sub->stall_w);
	else
		lws_set_timeout(sub->wsi, NO_PENDING_TIMEOUT, 0);
}

void
gw_engine_notify(struct gw *gw)
{
	eng_ready r[64];
	size_t n;

	if (!gw->db)
		return;
	/* Completions first: they clear the notify fd, so news posted after this point re-arms it. */
	eng_poll_completions(gw->db);
	do {
		n = eng_ready_take(gw->db, r, sizeof(r) / sizeof(r[0]));
		for (size_t i = 0; i < n; i++) {
			struct gw_sub *sub;

			if (r[i].flags & ENG_READY_OVERFLOW)
				gw->m.ready_overflows++;
			if (gw_groups_owns(r[i].sub)) { /* a consumer group's subscription */
				gw_groups_on_ready(gw, &r[i]);
				continue;
			}
			sub = gw_sub_find(gw, r[i].sub);
			if (!sub || sub->closing)
				continue;
			if (sub->kind == GW_SUB_SSE)
				gw_sse_on_ready(gw, sub, &r[i]);
			else
				gw_ws_on_ready(gw, sub, &r[i]);
		}
	} while (n == sizeof(r) / sizeof(r[0]));
}

void
gw_streams_heartbeat(struct gw *gw)
{
	for (struct gw_sub *s = gw->streams.next; s != &gw->streams; s = s->next) {
		s->hb_due = 1;
		gw_sub_want_write(gw, s);
	}
}

void
gw_streams_close_all(struct gw *gw)
{
	for (struct gw_sub *s = gw->streams.next; s != &gw->streams; s = s->next) {
		s->closing = 1;
		lws_callback_on_writable(s->wsi);
	}
}
