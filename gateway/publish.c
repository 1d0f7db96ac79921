/*
 * publish.c - POST /v1/topics/{parent}/{id}/messages: reads the body (Content-Length or chunked),
 * turns it into messages, queues them on the engine, and answers once they are durable.
 *
 * Service thread. A request's state lives in a heap object, not in the pss, because engine
 * completions can arrive after the client has gone: the connection detaches (wsi = NULL) and the
 * last completion frees it. The reply is built only from completions, so "200" always means durable.
 *
 * NDJSON is appended as it arrives: every LWS_CALLBACK_HTTP_BODY turns its complete lines into one
 * engine append, so a worker streaming tokens through one long chunked request has each token
 * visible to subscribers one group commit after it arrived, not when the request ends.
 *
 * Exactly-once publishing (issue 7) is the engine's: producer keys (the Idempotency-Key header,
 * a message's "id") go with the append, and a known key is answered from what was stored. An
 * expected offset (header, query, or a message's "expected_offset") makes an append conditional.
 * A message with one starts its own append, and nothing after it is queued until that append
 * completes: a mismatch must end the request at that message with nothing after it appended.
 */
#include "http_int.h"

#include <string.h>
#include <strings.h>

#include "chunked.h"
#include "conn.h"
#include "h2conn.h"
#include "pubrate.h"
#include "log.h"
#include "pubparse.h"
#include "xalloc.h"

enum ctype {
	CT_JSON,
	CT_NDJSON,
	CT_TEXT,
};

/* Flushes (the lines of one read, or a whole body) in flight per request before we stop reading
 * its body (rx flow control). */
#define PUB_PENDING_HIGH 32
#define PUB_PENDING_LOW 8
/*
 * NDJSON lines with ids go to the engine at most this many per append. The engine checks a
 * request's keys against each other pairwise (engine/src/writer.c, stage_append), so a 1,000-line
 * read appended whole cost the writer thread half a million key comparisons; in pieces of 16 the
 * check stays cheap. (A JSON batch must stay one atomic append, so it is not split.)
 */
#define PUB_KEYED_RUN_MAX 16

struct gw_pub {
	struct gw *gw;
	struct lws *wsi;               /* NULL once the connection or transaction ended */
	struct gw_pub *prev, *next;    /* gw->pubs */
	char topic[ENG_TOPIC_MAX + 1];
	enum ctype ctype;
	unsigned chunked : 1;          /* Transfer-Encoding: chunked (decoded by gw_chunked) */
	unsigned body_done : 1;        /* the whole body has been read */
	unsigned failed : 1;           /* err is set: read no more, answer when appends settle */
	unsigned reply_ready : 1;      /* reply is built and waits for WRITEABLE */
	unsigned replied : 1;
	unsigned flow_off : 1;         /* we paused reading the body */
	unsigned is_batch : 1;         /* a JSON array or NDJSON: duplicates are listed per message */
	unsigned cond_wait : 1;        /* a conditional append is in flight: queue nothing after it */
	unsigned mismatch : 1;         /* it failed: mismatch_next is the topic's next offset */
	unsigned keyed : 1;            /* some message carried an id */
	unsigned err_held : 1;         /* err came while cond_wait: it is about a later message */
	struct gw_chunked ch;
	uint64_t content_length;       /* when not chunked */
	uint64_t body_bytes;           /* decoded body bytes so far */
	struct gw_buf body;            /* JSON/text: the body; NDJSON: the unfinished last line */
	struct gw_batch batch;         /* NDJSON lines parsed, not yet queued */
	unsigned pending;              /* appends queued whose completion has not run */
	unsigned pending_flushes;      /* of the flushes they came from (rx flow control) */
	uint64_t count;                /* messages durably appended */
	uint64_t first, last;          /* offsets of the first and last of them */
	uint64_t bytes;                /* their payload bytes */
	uint64_t dups;                 /* of them, found by key (stored before) instead of appended */
	uint8_t client[16];            /* who per-client publish limits charge (has_client) */
	unsigned has_client : 1;
	uint64_t *dup_idx;             /* their positions in the request (0-based), as completed */
	size_t n_dup_idx, cap_dup_idx;
	uint64_t n_msgs;               /* messages parsed so far: the position of the next one */
	uint64_t queued;               /* messages handed to the engine so far */
	int has_expected;              /* Litegate-Expected-Offset / ?expected_offset= */
	uint64_t expected;             /* (for the request's first message) */
	int has_priority;              /* ?priority=P: for every message that names none */
	uint8_t priority;
	uint64_t mismatch_next;
	char request_key[ENG_KEY_MAX + 1]; /* Idempotency-Key, "" when none */
	struct gw_error err;           /* the first failure (err.status 0 = none) */
	struct gw_buf reply;           /* the whole response, LWS_PRE in front */
	uint64_t t0_us;                /* when the headers arrived */
};

static void
pub_unlink(struct gw_pub *pub)
{
	struct gw *gw = pub->gw;

	if (pub->prev)
		pub->prev->next = pub->next;
	else if (gw->pubs == pub)
		gw->pubs = pub->next;
	if (pub->next)
		pub->next->prev = pub->prev;
	pub->prev = pub->next = NULL;
}

static void
pub_free(struct gw_pub *pub)
{
	pub_unlink(pub);
	gw_buf_free(&pub->body);
	gw_buf_free(&pub->reply);
	gw_batch_free(&pub->batch);
	free(pub->dup_idx);
	free(pub);
}

/* One engine append of a request: which of its messages it carries. */
struct pub_append {
	struct gw_pub *pub;
	uint64_t base;     /* position of its first message in the request */
	size_t n;          /* messages in it */
	int ends_flush;    /* the last append of its flush (keyed NDJSON splits a flush) */
	int conditional;   /* it carried an expected offset (a barrier for what follows) */
	uint64_t expected;
};

static void flush_batch(struct gw_pub *pub);

/* Record the first failure. Lines parsed before it still go in: the reply reports them. */
static void
fail_pub(struct gw_pub *pub, unsigned status, const char *code, const char *msg)
{
	if (pub->err.status)
		return;
	if (pub->batch.n)
		flush_batch(pub);
	if (pub->err.status)
		return; /* the flush itself failed: that error is the first */
	gw_error_set(&pub->err, status, code, "%s", msg);
	pub->failed = 1;
	pub->err_held = pub->cond_wait;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The reply's members after "{" (or after the error object): what the request stored. A request
 * whose every message was found by its key says "duplicate":true; a batch (JSON array or NDJSON)
 * lists the positions of the messages found by key in "duplicates".
 */
static void
put_outcome(struct gw_pub *pub, struct gw_buf *b)
{
	if (!pub->count) {
		gw_buf_printf(b, "\"topic\":\"%s\",\"first_offset\":null,\"last_offset\":null,\"count\":0",
			      pub->topic);
	} else {
		gw_buf_printf(b, "\"topic\":\"%s\",\"first_offset\":%llu,\"last_offset\":%llu,\"count\":%llu",
			      pub->topic, (unsigned long long)pub->first, (unsigned long long)pub->last,
			      (unsigned long long)pub->count);
		if (pub->dups && pub->dups == pub->count)
			gw_buf_puts(b, ",\"duplicate\":true");
		if (pub->is_batch && pub->n_dup_idx) {
			qsort(pub->dup_idx, pub->n_dup_idx, sizeof(*pub->dup_idx), cmp_u64);
			gw_buf_puts(b, ",\"duplicates\":[");
			for (size_t i = 0; i < pub->n_dup_idx; i++) {
				if (i)
					gw_buf_putc(b, ',');
				gw_buf_u64(b, pub->dup_idx[i]);
			}
			gw_buf_putc(b, ']');
		}
	}
	if (pub->mismatch)
		gw_buf_printf(b, ",\"next_offset\":%llu", (unsigned long long)pub->mismatch_next);
}

/* Build the response once nothing is in flight and the body is over (or abandoned). */
static void
maybe_reply(struct gw_pub *pub)
{
	struct gw *gw = pub->gw;
	struct gw_buf body;
	unsigned flags = 0;
	int rc;

	if (!pub->wsi || pub->replied || pub->reply_ready || pub->pending ||
	    !(pub->body_done || pub->failed))
		return;
	/*
	 * lws 4.1.6 believes a chunked (or length-less) body is 100 MB long and would swallow the next
	 * request as body; a failed body leaves unread bytes behind. Either way the connection cannot
	 * be reused, so the reply says "connection: close" and we close after writing it.
	 */
	if (pub->chunked || !pub->body_done)
		flags |= GW_REPLY_CLOSE;
	gw_buf_init(&body, 0);
	if (pub->err.status) {
		gw_buf_putc(&body, ',');
		put_outcome(pub, &body);
		gw_buf_putc(&body, '\0');
		rc = gw_reply_error(gw, pub->wsi, &pub->reply, &pub->err,
				    (const char *)gw_buf_data(&body), NULL, flags);
	} else {
		gw_buf_putc(&body, '{');
		put_outcome(pub, &body);
		gw_buf_puts(&body, "}\n");
		rc = gw_reply_build(gw, pub->wsi, &pub->reply, 200, "application/json",
				    gw_buf_data(&body), body.len, NULL, flags);
	}
	gw_buf_free(&body);
	if (rc) {
		/* Could not even build headers: drop the connection rather than hang the client. */
		lws_set_timeout(pub->wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
		return;
	}
	gw->m.publish_requests++;
	gw_hist_observe(&gw->m.publish_latency, (double)(gw_mono_us() - pub->t0_us) / 1e6);
	pub->reply_ready = 1;
	lws_callback_on_writable(pub->wsi);
}

static void
note_dup(struct gw_pub *pub, uint64_t pos)
{
	if (pub->n_dup_idx == pub->cap_dup_idx) {
		pub->cap_dup_idx = pub->cap_dup_idx ? pub->cap_dup_idx * 2 : 16;
		pub->dup_idx = xrealloc(pub->dup_idx, pub->cap_dup_idx * sizeof(*pub->dup_idx));
	}
	pub->dup_idx[pub->n_dup_idx++] = pos;
}

static void queue_batch(struct gw_pub *pub);

static void
on_appended(void *ctx, const eng_append_result *res)
{
	struct pub_append *a = ctx;
	struct gw_pub *pub = a->pub;
	struct gw *gw = pub->gw;

	pub->pending--;
	if (a->ends_flush)
		pub->pending_flushes--;
	if (res->rc == 0 && res->count) {
		uint64_t lo = res->first_offset, hi = res->first_offset + res->count - 1;
		uint64_t dups = res->duplicate ? res->count : res->n_dups;
		/* A known request key repeats the first request's offsets and count (contiguous);
		 * offsets[] and dup[] describe this request's a->n messages only. */
		int by_request_key = res->duplicate && pub->request_key[0];
		size_t n = res->count < a->n ? res->count : a->n;

		/* With message keys, duplicates keep their earlier offsets: not contiguous. */
		if (res->offsets && !by_request_key) {
			lo = hi = res->offsets[0];
			for (size_t i = 1; i < n; i++) {
				lo = res->offsets[i] < lo ? res->offsets[i] : lo;
				hi = res->offsets[i] > hi ? res->offsets[i] : hi;
			}
		}
		for (size_t i = 0; dups && i < (by_request_key ? res->count : n); i++)
			if (res->duplicate || (res->dup && res->dup[i]))
				note_dup(pub, a->base + i);
		if (!pub->count || lo < pub->first)
			pub->first = lo;
		if (!pub->count || hi > pub->last)
			pub->last = hi;
		pub->count += res->count;
		pub->dups += dups;
		gw->m.published_msgs += res->count - dups;
	} else if (res->rc == ENG_EMISMATCH) {
		char msg[160];

		/* The request ends here: what was parsed after this message is not appended, and an
		 * error met after it (a later line) is not the one to report. */
		gw_batch_reset(&pub->batch);
		if (pub->err_held) {
			pub->err.status = 0;
			pub->failed = 0;
		}
		snprintf(msg, sizeof(msg),
			 "expected offset %llu, but the topic's next offset is %llu: nothing appended%s",
			 (unsigned long long)a->expected, (unsigned long long)res->next_offset,
			 a->base ? " from this message on" : "");
		fail_pub(pub, 409, "offset_mismatch", msg);
		if (pub->err.status == 409) {
			pub->mismatch = 1;
			pub->mismatch_next = res->next_offset;
		}
	} else if (res->rc) {
		struct gw_error e;

		gw_error_from_eng(res->rc, &e);
		fail_pub(pub, e.status, e.code, e.message);
	}
	if (a->conditional)
		pub->cond_wait = 0;
	free(a);
	if (!pub->wsi) {
		if (!pub->pending)
			pub_free(pub);
		return;
	}
	/* The barrier is down: queue what arrived behind it (parsed before any failure). */
	if (!pub->cond_wait && pub->batch.n)
		queue_batch(pub);
	if (pub->flow_off && !(pub->cond_wait && pub->batch.n) &&
	    (pub->pending_flushes <= PUB_PENDING_LOW || pub->failed)) {
		pub->flow_off = 0;
		lws_rx_flow_control(pub->wsi, 1);
	}
	maybe_reply(pub);
}

/* Queue messages [from, to) of the batch as one atomic append (*out). @return 0 or an engine code. */
static int
queue_run(struct gw_pub *pub, const eng_msg_in *views, size_t from, size_t to,
	  struct pub_append **out)
{
	struct gw *gw = pub->gw;
	const struct gw_msg *m0 = &pub->batch.msgs[from];
	struct pub_append *a = xcalloc(1, sizeof(*a));
	eng_append_opts opts;
	int rc;

	a->pub = pub;
	a->base = pub->queued;
	a->n = to - from;
	a->conditional = m0->has_expected;
	a->expected = m0->expected;
	memset(&opts, 0, sizeof(opts));
	opts.has_expected = m0->has_expected;
	opts.expected_offset = m0->expected;
	opts.request_key = pub->request_key[0] ? pub->request_key : NULL;
	rc = eng_append_ex(gw->db, pub->topic, views + from, to - from, &opts, on_appended, a);
	if (rc) {
		free(a);
		return rc;
	}
	for (size_t i = from; i < to; i++)
		gw->m.published_bytes += views[i].len;
	pub->queued += to - from;
	pub->pending++;
	if (a->conditional)
		pub->cond_wait = 1;
	*out = a;
	return 0;
}

/* Drop the batch's first @p k messages (queued); the arena is reset once the batch is empty. */
static void
batch_drop(struct gw_batch *b, size_t k)
{
	if (k >= b->n) {
		gw_batch_reset(b);
		return;
	}
	memmove(b->msgs, b->msgs + k, (b->n - k) * sizeof(*b->msgs));
	b->n -= k;
}

/*
 * Queue the parsed messages: one atomic append per run, a new run starting at every message with
 * an expected offset. After a conditional run nothing is queued until it completes (cond_wait);
 * the rest waits in the batch and the body is not read meanwhile.
 */
static void
queue_batch(struct gw_pub *pub)
{
	struct gw_batch *b = &pub->batch;
	struct pub_append *last = NULL;
	eng_msg_in *views;
	struct gw_error e;
	size_t from = 0, run_max = pub->ctype == CT_NDJSON && pub->keyed ? PUB_KEYED_RUN_MAX : SIZE_MAX;
	int rc = 0;

	if (!b->n || pub->cond_wait)
		return;
	{
		/* Producer traffic shaping (pubrate.h): over a limit, this part is refused whole. */
		uint64_t bytes = 0;

		for (size_t i = 0; i < b->n; i++)
			bytes += b->msgs[i].len;
		if (gw_limits_publish(pub->gw, pub->has_client ? pub->client : NULL, pub->topic,
				      b->n, bytes, &e)) {
			gw_batch_reset(b);
			fail_pub(pub, e.status, e.code, e.message);
			pub->err.retry_after_s = e.retry_after_s;
			return;
		}
	}
	views = xmalloc(b->n * sizeof(*views));
	gw_batch_views(b, views);
	while (from < b->n && !pub->cond_wait) {
		size_t to = from + 1;

		while (to < b->n && !b->msgs[to].has_expected && to - from < run_max)
			to++;
		if ((rc = queue_run(pub, views, from, to, &last)) != 0)
			break;
		from = to;
	}
	free(views);
	if (last) {
		/* Flow control counts flushes, so splitting one (keyed NDJSON) does not stall reads. */
		last->ends_flush = 1;
		pub->pending_flushes++;
	}
	if (rc) {
		gw_batch_reset(b); /* before fail_pub(), which flushes a non-empty batch */
		gw_error_from_eng(rc, &e);
		fail_pub(pub, e.status, e.code, e.message);
		return;
	}
	batch_drop(b, from);
	if ((pub->pending_flushes >= PUB_PENDING_HIGH || (pub->cond_wait && b->n)) && !pub->flow_off &&
	    pub->wsi && !pub->body_done) {
		/* The engine is behind this stream, or a condition must be settled first: stop
		 * reading it until appends settle. */
		pub->flow_off = 1;
		lws_rx_flow_control(pub->wsi, 0);
	}
}

/* Queue what was parsed, unless the request failed (then it is dropped). */
static void
flush_batch(struct gw_pub *pub)
{
	if (pub->failed) {
		gw_batch_reset(&pub->batch);
		return;
	}
	queue_batch(pub);
}

/*
 * The messages just parsed, [n0, batch.n): number them, give the request's first message the
 * header's expected offset, those without a priority the request's (?priority=), and in a JSON batch allow one only on the first message (the rest
 * follow it contiguously). @return 0, or -1 with the request failed and those messages dropped.
 */
static int
adopt_msgs(struct gw_pub *pub, size_t n0, size_t mark, int json)
{
	struct gw_batch *b = &pub->batch;
	const char *bad = NULL;

	for (size_t i = n0; i < b->n && !bad; i++) {
		struct gw_msg *m = &b->msgs[i];

		if (json && i > n0 && m->has_expected)
			bad = "in a batch only the first message may carry expected_offset (the rest "
			      "follow it contiguously)";
		else if (pub->n_msgs + (i - n0) == 0 && pub->has_expected && m->has_expected &&
			 m->expected != pub->expected)
			bad = "the first message's expected_offset differs from the request's";
		else if (pub->n_msgs + (i - n0) == 0 && pub->has_expected) {
			m->has_expected = 1;
			m->expected = pub->expected;
		}
		if (m->key[0])
			pub->keyed = 1;
		if (!m->has_priority && pub->has_priority) {
			m->has_priority = 1;
			m->priority = pub->priority;
		}
	}
	if (bad) {
		b->n = n0;
		b->arena.len = mark;
		fail_pub(pub, 400, "bad_message", bad);
		return -1;
	}
	pub->n_msgs += b->n - n0;
	return 0;
}

/* One complete NDJSON line. */
static int
take_line(struct gw_pub *pub, const char *p, size_t n)
{
	size_t n0 = pub->batch.n, mark = pub->batch.arena.len;
	struct gw_perr pe;

	if (gw_pub_parse_line(p, n, &pub->batch, &pe)) {
		fail_pub(pub, 400, pe.code, pe.message);
		return -1;
	}
	if (adopt_msgs(pub, n0, mark, 0))
		return -1;
	if (pub->batch.n >= pub->gw->cfg->max_batch)
		flush_batch(pub);
	return 0;
}

/* Decoded body bytes, from the chunk decoder or straight from a Content-Length body. */
static int
body_bytes(void *ctx, const char *p, size_t n)
{
	struct gw_pub *pub = ctx;
	const struct gw_config *cfg = pub->gw->cfg;

	if (pub->failed)
		return 1;
	pub->body_bytes += n;
	if (pub->ctype != CT_NDJSON) {
		if (pub->body.len + n > cfg->max_body_bytes) {
			fail_pub(pub, 413, "too_large", "body larger than limits.max_body_bytes");
			return 1;
		}
		gw_buf_append(&pub->body, p, n);
		return 0;
	}
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (pub->body.len + take > cfg->max_line_bytes) {
			fail_pub(pub, 413, "too_large", "NDJSON line longer than limits.max_line_bytes");
			return 1;
		}
		if (!nl) {
			gw_buf_append(&pub->body, p, take);
			return 0;
		}
		if (pub->body.len) {
			gw_buf_append(&pub->body, p, take);
			if (take_line(pub, (const char *)gw_buf_data(&pub->body), pub->body.len))
				return 1;
			gw_buf_reset(&pub->body);
		} else if (take_line(pub, p, take)) {
			return 1;
		}
		p += take + 1;
		n -= take + 1;
	}
	return 0;
}

/* The body is complete: parse what was buffered and queue the rest. */
static void
finish_body(struct gw_pub *pub)
{
	const char *p = (const char *)gw_buf_data(&pub->body);
	struct gw_perr pe;

	pub->body_done = 1;
	if (pub->failed)
		return;
	switch (pub->ctype) {
	case CT_NDJSON:
		/* A last line without '\n' still counts. */
		if (pub->body.len && take_line(pub, p, pub->body.len))
			return;
		gw_buf_reset(&pub->body);
		flush_batch(pub);
		if (!pub->count && !pub->pending && !pub->failed)
			fail_pub(pub, 400, "bad_message", "empty body: no messages");
		break;
	case CT_JSON:
		for (size_t i = 0; i < pub->body.len; i++) {
			if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')
				continue;
			pub->is_batch = p[i] == '[';
			break;
		}
		if (gw_pub_parse_json(p ? p : "", pub->body.len, pub->gw->cfg->max_batch, &pub->batch,
				      &pe))
			fail_pub(pub, pe.code[0] == 't' ? 413 : 400, pe.code, pe.message);
		else if (!adopt_msgs(pub, 0, 0, 1))
			flush_batch(pub);
		break;
	case CT_TEXT:
		if (gw_pub_parse_text(p ? p : "", pub->body.len, &pub->batch, &pe))
			fail_pub(pub, 400, pe.code, pe.message);
		else if (!adopt_msgs(pub, 0, 0, 0))
			flush_batch(pub);
		break;
	}
}

/* ---- Request start ------------------------------------------------------------------------------ */

static int
parse_ctype(struct lws *wsi, enum ctype *out)
{
	char v[128], *semi;
	int n = lws_hdr_copy(wsi, v, sizeof(v), WSI_TOKEN_HTTP_CONTENT_TYPE);
	size_t len;

	if (n <= 0)
		return -1;
	if ((semi = strchr(v, ';')))
		*semi = '\0';
	len = strlen(v);
	while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		v[--len] = '\0';
	if (!strcasecmp(v, "application/json"))
		*out = CT_JSON;
	else if (!strcasecmp(v, "application/x-ndjson") || !strcasecmp(v, "application/ndjson"))
		*out = CT_NDJSON;
	else if (!strcasecmp(v, "text/plain"))
		*out = CT_TEXT;
	else
		return -1;
	return 0;
}

int
gw_pub_start(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const struct gw_route *r,
	     const struct gw_query *q)
{
	const struct gw_config *cfg = gw->cfg;
	char te[64], cl[32], expect[32], eo[32];
	int has_te, has_cl, has_eo;
	uint64_t eo_val = 0;
	struct gw_error e;
	struct gw_pub *pub;
	enum ctype ct;

	if (parse_ctype(wsi, &ct)) {
		gw_error_set(&e, 415, "unsupported_media_type",
			     "Content-Type must be application/json, application/x-ndjson or text/plain");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	has_te = lws_hdr_copy(wsi, te, sizeof(te), WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
	has_cl = lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
	if (has_te && strcasecmp(te, "chunked")) {
		gw_error_set(&e, 400, "bad_request", "only Transfer-Encoding: chunked is supported");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	if (has_te && has_cl) {
		/* Both framings at once is how requests get smuggled: refuse (RFC 9112 6.3). */
		gw_error_set(&e, 400, "bad_request", "Content-Length and Transfer-Encoding together");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	if (!has_cl && gw_is_h2(wsi) && !gw_h2_followed(wsi)) {
		/*
		 * HTTP/2 has no chunked framing: a body ends with the stream's END_STREAM, which lws
		 * 4.1.6 does not report when no Content-Length was given (it waits for a 100 MB body).
		 * The frame tap reports it (http.c); a stream it does not follow could never be
		 * answered: refuse it at once.
		 */
		gw_error_set(&e, 411, "length_required",
			     "this HTTP/2 stream's end cannot be seen: send a Content-Length");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	if (!has_te && !has_cl && !gw_is_h2(wsi)) {
		gw_error_set(&e, 400, "bad_request",
			     "a publish needs a body: Content-Length or Transfer-Encoding: chunked");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	/* A conditional publish: Litegate-Expected-Offset: N, or ?expected_offset=N (one value). */
	has_eo = gw_hdr_custom_length(wsi, GW_H2H_EXPECTED_OFFSET) >= 0;
	if (has_eo && (gw_hdr_custom_copy(wsi, eo, sizeof(eo), GW_H2H_EXPECTED_OFFSET) < 0 ||
		       gw_parse_u64(eo, strlen(eo), &eo_val))) {
		gw_error_set(&e, 400, "bad_request",
			     "Litegate-Expected-Offset must be an offset (a non-negative integer)");
		return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
	}
	if (q->has_expected_offset) {
		if (has_eo && eo_val != q->expected_offset) {
			gw_error_set(&e, 400, "bad_request",
				     "Litegate-Expected-Offset and ?expected_offset= disagree");
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
		has_eo = 1;
		eo_val = q->expected_offset;
	}
	{
		char key[ENG_KEY_MAX + 2];
		int n = gw_hdr_custom_length(wsi, GW_H2H_IDEMPOTENCY_KEY);

		/* Present but too long for the buffer, or empty, is as malformed as a bad character. */
		if (n >= 0)
			n = n > 0 && n <= ENG_KEY_MAX
				    ? gw_hdr_custom_copy(wsi, key, sizeof(key), GW_H2H_IDEMPOTENCY_KEY)
				    : 0;
		if (n == 0 || (n > 0 && !gw_name_key_ok(key, (size_t)n))) {
			gw_error_set(&e, 400, "bad_request", "Idempotency-Key must be 1 to 128 of [A-Za-z0-9_.:-]");
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
		if (n > 0 && ct == CT_NDJSON) {
			/* A stream is appended in pieces; one request key cannot cover them all. */
			gw_error_set(&e, 400, "bad_request",
				     "Idempotency-Key is for application/json and text/plain; give NDJSON lines an \"id\"");
			return gw_http_fail(gw, wsi, &e, GW_REPLY_CLOSE);
		}
		pub = xcalloc(1, sizeof(*pub));
		if (n > 0)
			memcpy(pub->request_key, key, (size_t)n + 1);
	}
	pub->gw = gw;
	pub->wsi = wsi;
	pub->ctype = ct;
	pub->is_batch = ct == CT_NDJSON;
	pub->has_expected = has_eo;
	pub->expected = eo_val;
	pub->has_priority = q->has_priority;
	pub->priority = q->priority;
	pub->chunked = has_te;
	pub->t0_us = gw_mono_us();
	if (gw_limits_by_client(gw)) {
		gw_conn_client(gw, wsi, pub->client); /* headers are attached now, not later */
		pub->has_client = 1;
	}
	memcpy(pub->topic, r->topic, sizeof(pub->topic));
	gw_buf_init(&pub->body, 0);
	gw_buf_init(&pub->reply, LWS_PRE);
	gw_batch_init(&pub->batch);
	/* The largest chunk anyone needs is a body's or a line's limit: bigger is refused. */
	gw_chunked_init(&pub->ch, ct == CT_NDJSON ? cfg->max_line_bytes + 65536 : cfg->max_body_bytes);
	pub->next = gw->pubs;
	if (gw->pubs)
		gw->pubs->prev = pub;
	gw->pubs = pub;
	pss->kind = GW_HK_PUB;
	pss->pub = pub;
	gw->inflight++;
	if (has_cl) {
		if (gw_parse_u64(cl, strlen(cl), &pub->content_length)) {
			fail_pub(pub, 400, "bad_request", "malformed Content-Length");
		} else if (ct != CT_NDJSON && pub->content_length > cfg->max_body_bytes) {
			fail_pub(pub, 413, "too_large", "body larger than limits.max_body_bytes");
		}
		if (pub->failed) {
			maybe_reply(pub);
			return 0;
		}
	}
	/* curl and others wait for "100 Continue" before a large body; lws 4.1.6 never sends it.
	 * (HTTP/1.1 only: this is raw HTTP/1.1 text, and HTTP/2 clients do not wait for it.) */
	if (!gw_is_h2(wsi) && lws_hdr_copy(wsi, expect, sizeof(expect), WSI_TOKEN_HTTP_EXPECT) > 0 &&
	    !strcasecmp(expect, "100-continue")) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		unsigned char buf[LWS_PRE + sizeof(cont)];

		memcpy(buf + LWS_PRE, cont, sizeof(cont) - 1);
		if (lws_write(wsi, buf + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_HTTP_HEADERS) < 0)
			return -1;
	}
	return 0;
}

int
gw_pub_body(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, const char *in, size_t len)
{
	struct gw_pub *pub = pss->pub;
	size_t used = 0;
	int rc;

	(void)gw;
	(void)wsi;
	if (pub->failed || pub->body_done)
		return 0; /* abandoned or finished: whatever else arrives is ignored */
	if (!pub->chunked) {
		body_bytes(pub, in, len);
	} else {
		rc = gw_chunked_feed(&pub->ch, in, len, &used, body_bytes, pub);
		if (rc == GW_CHUNKED_ERROR) {
			char msg[128];

			snprintf(msg, sizeof(msg), "bad chunked body: %s", pub->ch.err);
			fail_pub(pub, pub->ch.err && strstr(pub->ch.err, "limit") ? 413 : 400,
				 pub->ch.err && strstr(pub->ch.err, "limit") ? "too_large" : "bad_request",
				 msg);
		} else if (rc == GW_CHUNKED_DONE) {
			finish_body(pub);
		}
	}
	if (!pub->body_done)
		flush_batch(pub); /* NDJSON: the lines that arrived in this read, as one append */
	maybe_reply(pub);
	return 0;
}

int
gw_pub_body_done(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_pub *pub = pss->pub;

	(void)gw;
	(void)wsi;
	/* A chunked body ends at its last chunk, which lws does not know about. */
	if (pub->chunked)
		return 0;
	if (pub->body_done) {
		/*
		 * Called again: the client pipelined another request behind this body before we could
		 * answer. lws 4.1.6 keeps such bytes in its body state and calls us again on every loop
		 * turn until the transaction completes (a busy loop while the engine syncs), and pausing
		 * rx there stalls the connection's writes too. So pipelining a publish closes the
		 * connection: what was appended stays appended, the client sees no reply and retries.
		 * (Browsers, curl and common HTTP libraries never pipeline.)
		 */
		LOG_DEBUG("request pipelined behind a publish: closing the connection");
		return -1;
	}
	finish_body(pub);
	maybe_reply(pub);
	return 0;
}

int
gw_pub_writeable(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss)
{
	struct gw_pub *pub = pss->pub;
	int close_after;

	if (!pub->reply_ready || pub->replied)
		return 0;
	pub->replied = 1;
	gw->inflight--;
	close_after = pub->chunked || !pub->body_done;
	return gw_reply_send(wsi, &pub->reply, close_after ? GW_REPLY_CLOSE : 0);
}

void
gw_pub_detach(struct gw *gw, struct gw_http_pss *pss)
{
	struct gw_pub *pub = pss->pub;

	pss->pub = NULL;
	if (!pub)
		return;
	if (!pub->replied)
		gw->inflight--;
	pub->wsi = NULL;
	pub_unlink(pub);
	if (!pub->pending)
		pub_free(pub);
}

void
gw_pubs_shutdown(struct gw *gw)
{
	for (struct gw_pub *pub = gw->pubs; pub; pub = pub->next) {
		if (pub->body_done || pub->failed || !pub->wsi)
			continue;
		/* What arrived so far is queued; the rest of the body is refused. */
		flush_batch(pub);
		fail_pub(pub, 503, "shutting_down", "the gateway is shutting down; the body was cut short");
		if (pub->flow_off) {
			pub->flow_off = 0;
			lws_rx_flow_control(pub->wsi, 1);
		}
		maybe_reply(pub);
	}
}
