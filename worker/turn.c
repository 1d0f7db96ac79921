/*
 * turn.c - one turn: model -> paced NDJSON publish with retries, and the cancel watch (see turn.h).
 *
 * All turn state is under t->mu and t->cv (CLOCK_MONOTONIC): the model threads append tokens, the
 * watcher sets `cancelled`, the shutdown sets `aborted`, and the publisher's read callback waits
 * on the condition variable for whichever comes first. That wait is the only pacing there is, so a
 * cancel reaches the stream the moment the watcher sees it.
 */
#include "turn.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "demo_model.h"
#include "gwtoken.h"
#include "history.h"
#include "log.h"
#include "sse.h"
#include "xalloc.h"

#define NS_PER_MS 1000000u
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* After a publish without a reply, appends the gateway queued before the connection dropped may
 * still be completing; let them land before counting what is in the topic. */
#define SETTLE_MS 150
#define WATCH_RETRY_MS 200
#define MAX_SSE_EVENT (4u << 20)

/*
 * Which member carries a line's idempotency key: "id", as issue 7 and docs/api.md name it. Gateways
 * built before that called it "key" and refuse "id" as unknown (today's takes both); the first such
 * refusal switches to the other name, once, for the whole process.
 */
static const char *const KEY_MEMBERS[2] = { "id", "key" };
static atomic_int key_member;

struct tok {
	char *s;           /* the piece (owned), NULL for a placeholder of an earlier delivery */
	size_t len;
	uint64_t ready_ns; /* not sent before this time (demo pacing) */
};

enum end_kind {
	END_NONE = 0,
	END_DONE,
	END_CANCELLED,
	END_ERROR,
};

struct wk_turn {
	const struct wk_turn_cfg *cfg;
	char *topic;
	uint64_t prompt_off;
	char *prompt;

	pthread_mutex_t mu;
	pthread_cond_t cv;          /* any change below */
	struct tok *tok;            /* tokens in index order */
	size_t n_tok, cap_tok;
	int gen_done;               /* the model will add no more tokens */
	enum end_kind gen_end;      /* how the model finished: END_DONE or END_ERROR */
	char *gen_error;            /* END_ERROR's message */
	int cancelled;              /* a cancel event for this turn was seen */
	uint64_t cancel_ns;
	int aborted;                /* wk_turn_abort */
	uint64_t abort_ns;
	enum end_kind end;          /* fixed when the end line is first built, the same on retries */
	size_t end_at;              /* the tokens that precede the end (fixed with it) */
	size_t acked;               /* tokens the gateway has (index < acked) */
	int end_acked;              /* the end message is in the topic */

	struct wk_stop io_stop;     /* history reads and backoffs: fired by abort */
	struct wk_stop up_stop;     /* the upstream stream: fired by cancel and abort */
	struct wk_stop watch_stop;  /* the watcher: fired when the turn is over */
	pthread_t up_thr, watch_thr;
	int up_started, watch_started;
	json_t *messages;           /* upstream: the chat context */
};

/* ---- Small helpers ------------------------------------------------------------------------------- */

static void
deadline_ts(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Wait on t->cv (t->mu held) until @p until_ns (0: at most a second, as a safety net). */
static void
turn_wait(struct wk_turn *t, uint64_t until_ns)
{
	struct timespec ts;
	uint64_t cap = wk_mono_ns() + 1000u * NS_PER_MS;

	deadline_ts(until_ns && until_ns < cap ? until_ns : cap, &ts);
	pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

/* A JSON string of @p p; bytes that are not valid UTF-8 become '?' rather than losing the line. */
static json_t *
str_json(const char *p, size_t len)
{
	json_t *s = json_stringn(p, len);
	char *copy;

	if (s)
		return s;
	copy = xstrndup(p, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)copy[i] >= 0x80 || copy[i] == '\0')
			copy[i] = '?';
	s = json_stringn(copy, len);
	free(copy);
	return s;
}

const char *
wk_turn_key_member(void)
{
	return KEY_MEMBERS[atomic_load(&key_member)];
}

void
wk_turn_line(struct wk_buf *out, const char *event, json_t *data, const char *id)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "event", json_string(event));
	json_object_set_new(o, "data", data);
	json_object_set_new(o, KEY_MEMBERS[atomic_load(&key_member)], json_string(id));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		xalloc_oom(0);
	wk_buf_puts(out, s);
	wk_buf_append(out, "\n", 1);
	free(s);
}

static const char *
end_name(enum end_kind k)
{
	return k == END_CANCELLED ? "cancelled" : k == END_ERROR ? "error" : "done";
}

/* Add a token (t->mu held). */
static void
push_token(struct wk_turn *t, const char *s, size_t len, uint64_t ready_ns)
{
	if (t->n_tok == t->cap_tok) {
		t->cap_tok = t->cap_tok ? t->cap_tok * 2 : 64;
		t->tok = xrealloc(t->tok, t->cap_tok * sizeof(*t->tok));
	}
	t->tok[t->n_tok].s = s ? xstrndup(s, len) : NULL;
	t->tok[t->n_tok].len = len;
	t->tok[t->n_tok].ready_ns = ready_ns;
	t->n_tok++;
}

/* ---- Cancel watch ------------------------------------------------------------------------------- */

static void
turn_cancel(struct wk_turn *t)
{
	int first;

	pthread_mutex_lock(&t->mu);
	first = !t->cancelled;
	if (first) {
		t->cancelled = 1;
		t->cancel_ns = wk_mono_ns();
		pthread_cond_broadcast(&t->cv);
	}
	pthread_mutex_unlock(&t->mu);
	if (first) {
		LOG_INFO("%s@%" PRIu64 ": cancel seen, stopping", t->topic, t->prompt_off);
		wk_stop_fire(&t->up_stop);
	}
}

struct watch {
	struct wk_turn *t;
	CURL *c;
	struct wk_sse sse;
	uint64_t next; /* where to resume the stream after a drop */
	long status;
};

static int
on_watch_event(void *ctx, const struct wk_sse_event *ev)
{
	struct watch *w = ctx;
	struct wk_turn *t = w->t;
	char *end;
	unsigned long long id;

	if (ev->id[0]) {
		errno = 0;
		id = strtoull(ev->id, &end, 10);
		if (!errno && !*end)
			w->next = (uint64_t)id + 1;
	}
	if (!strcmp(ev->event, "reset")) {
		/* The topic was deleted or expired under us; its new life starts after nothing of ours. */
		w->next = t->prompt_off + 1;
		return 0;
	}
	if (!strcmp(ev->event, "cancel")) {
		json_t *d = json_loadb(ev->data, ev->data_len, 0, NULL);
		json_t *po = json_object_get(d, "prompt_offset");

		/* A cancel naming another turn (an earlier prompt's late Stop) is not ours. */
		if (!json_is_integer(po) || (uint64_t)json_integer_value(po) == t->prompt_off)
			turn_cancel(t);
		json_decref(d);
	}
	return 0;
}

static size_t
on_watch_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct watch *w = ctx;
	size_t n = size * nmemb;

	if (!w->status)
		curl_easy_getinfo(w->c, CURLINFO_RESPONSE_CODE, &w->status);
	if (w->status != 200)
		return n;
	if (wk_sse_feed(&w->sse, p, n, on_watch_event, w) < 0)
		return 0; /* an event too long: reconnect past what we read */
	return n;
}

static void *
watch_main(void *arg)
{
	struct wk_turn *t = arg;
	struct watch w;
	struct wk_buf url = { 0 };

	memset(&w, 0, sizeof(w));
	w.t = t;
	w.next = t->prompt_off + 1;
	while (!wk_stop_fired(&t->watch_stop)) {
		struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: text/event-stream");
		CURLcode cc;

		wk_buf_reset(&url);
		wk_buf_printf(&url, "%s/v1/topics/%s/events?from=%" PRIu64, t->cfg->gateway, t->topic,
			      w.next);
		wk_sse_init(&w.sse, MAX_SSE_EVENT);
		w.status = 0;
		w.c = wk_http_easy(url.p);
		wk_gwtoken_apply(w.c);
		curl_easy_setopt(w.c, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(w.c, CURLOPT_WRITEFUNCTION, on_watch_body);
		curl_easy_setopt(w.c, CURLOPT_WRITEDATA, &w);
		cc = wk_http_perform(w.c, &t->watch_stop);
		curl_easy_cleanup(w.c);
		curl_slist_free_all(hdrs);
		wk_sse_free(&w.sse);
		if (wk_stop_fired(&t->watch_stop))
			break;
		LOG_DEBUG("%s@%" PRIu64 ": cancel watch ended (%s, HTTP %ld), reconnecting", t->topic,
			  t->prompt_off, curl_easy_strerror(cc), w.status);
		wk_sleep_ms(w.status && w.status != 200 ? 5 * WATCH_RETRY_MS : WATCH_RETRY_MS,
			    &t->watch_stop);
	}
	wk_buf_free(&url);
	return NULL;
}

/* ---- Upstream model ----------------------------------------------------------------------------- */

static int
on_delta(void *ctx, const char *piece, size_t len)
{
	struct wk_turn *t = ctx;
	int stop;

	pthread_mutex_lock(&t->mu);
	push_token(t, piece, len, 0);
	pthread_cond_broadcast(&t->cv);
	stop = t->cancelled || t->aborted;
	pthread_mutex_unlock(&t->mu);
	return stop;
}

static void *
up_main(void *arg)
{
	struct wk_turn *t = arg;
	char err[512];
	int rc = wk_upstream_stream(&t->cfg->upstream, t->messages, on_delta, t, &t->up_stop, err,
				    sizeof(err));

	if (rc && rc != WK_ESTOPPED)
		LOG_WARN("%s@%" PRIu64 ": %s", t->topic, t->prompt_off, err);
	pthread_mutex_lock(&t->mu);
	t->gen_done = 1;
	if (rc && rc != WK_ESTOPPED) {
		t->gen_end = END_ERROR;
		t->gen_error = xstrdup(err);
	} else {
		t->gen_end = END_DONE;
	}
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* ---- Publishing --------------------------------------------------------------------------------- */

/* One streamed POST. */
struct pubreq {
	struct wk_turn *t;
	size_t start;        /* first token index of this request */
	size_t next;         /* next token index to hand curl */
	int end_sent;        /* the end line went into this request */
	int eof;             /* the read callback has ended the body */
	uint64_t eof_ns;
	int member;          /* KEY_MEMBERS index the first line of this request used, -1 before */
	struct wk_buf line;  /* the line being handed to curl */
	size_t line_pos;
	struct wk_buf reply;
};

/* The next line of the body into r->line (t->mu not held). @return 0, or -1 for the body's end. */
static int
next_line(struct pubreq *r)
{
	struct wk_turn *t = r->t;
	char id[48];

	if (r->end_sent)
		return -1;
	if (r->member < 0)
		r->member = atomic_load(&key_member);
	pthread_mutex_lock(&t->mu);
	for (;;) {
		uint64_t now = wk_mono_ns();

		if (t->aborted && t->end == END_NONE)
			break;
		if (t->end == END_NONE && t->cancelled) {
			/* Stop here: tokens generated but not yet sent are dropped. */
			t->end = END_CANCELLED;
			t->end_at = r->next;
		}
		if (r->next < (t->end == END_NONE ? t->n_tok : t->end_at)) {
			struct tok *k = &t->tok[r->next];

			if (now < k->ready_ns && t->end == END_NONE) {
				turn_wait(t, k->ready_ns);
				continue;
			}
			snprintf(id, sizeof(id), "%" PRIu64 "-%zu", t->prompt_off, r->next);
			wk_turn_line(&r->line, "token", str_json(k->s ? k->s : "", k->len), id);
			r->next++;
			pthread_mutex_unlock(&t->mu);
			return 0;
		}
		if (t->end == END_NONE && t->gen_done) {
			t->end = t->gen_end;
			t->end_at = t->n_tok;
		}
		if (t->end != END_NONE) {
			json_t *d = json_object();

			json_object_set_new(d, "reason", json_string(end_name(t->end)));
			/* Names the turn it closes, as a cancel does: back-to-back prompts interleave. */
			json_object_set_new(d, "prompt_offset", json_integer((json_int_t)t->prompt_off));
			if (t->end == END_ERROR && t->gen_error)
				json_object_set_new(d, "message", str_json(t->gen_error, strlen(t->gen_error)));
			snprintf(id, sizeof(id), "%" PRIu64 "-end", t->prompt_off);
			wk_turn_line(&r->line, "end", d, id);
			r->end_sent = 1;
			pthread_mutex_unlock(&t->mu);
			return 0;
		}
		turn_wait(t, 0);
	}
	pthread_mutex_unlock(&t->mu);
	return -1;
}

static size_t
pub_read(char *dst, size_t size, size_t nitems, void *ctx)
{
	struct pubreq *r = ctx;
	size_t cap = size * nitems, n;

	if (r->line_pos == r->line.len) {
		if (r->eof)
			return 0;
		wk_buf_reset(&r->line);
		r->line_pos = 0;
		if (next_line(r)) {
			r->eof = 1;
			r->eof_ns = wk_mono_ns();
			return 0;
		}
	}
	n = r->line.len - r->line_pos < cap ? r->line.len - r->line_pos : cap;
	memcpy(dst, r->line.p + r->line_pos, n);
	r->line_pos += n;
	return n;
}

static size_t
pub_write(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct pubreq *r = ctx;
	size_t n = size * nmemb;

	if (r->reply.len + n <= 65536)
		wk_buf_append(&r->reply, p, n);
	return n;
}

/* Called by curl at least once a second: give up on a reply that does not come. */
static int
pub_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct pubreq *r = ctx;
	uint64_t limit = (uint64_t)r->t->cfg->reply_timeout_ms * NS_PER_MS;
	uint64_t now = wk_mono_ns(), abort_ns;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (r->eof && now - r->eof_ns > limit)
		return 1;
	pthread_mutex_lock(&r->t->mu);
	abort_ns = r->t->aborted ? r->t->abort_ns : 0;
	pthread_mutex_unlock(&r->t->mu);
	return abort_ns && now - abort_ns > limit; /* stuck in a send after a shutdown */
}

/* Does the reply refuse @p member as unknown? (docs/api.md: "Unknown ... members are refused") */
static int
refuses_member(const struct pubreq *r, const char *member)
{
	char needle[40];

	snprintf(needle, sizeof(needle), "unknown member \\\"%s\\\"", member);
	return r->reply.p && strstr(r->reply.p, needle);
}

/* The "count" of an error reply: how many lines of the request are durably in before the error
 * (docs/api.md). @return it, or -1 when the reply has none. */
static long long
reply_count(const struct pubreq *r)
{
	json_t *j = r->reply.p ? json_loadb(r->reply.p, r->reply.len, 0, NULL) : NULL;
	json_t *c = json_object_get(j, "count");
	long long n = json_is_integer(c) ? (long long)json_integer_value(c) : -1;

	json_decref(j);
	return n;
}

enum attempt {
	ATT_OK,         /* every line sent is in */
	ATT_RETRY,      /* unknown how far it got: reconcile with the topic, then retry */
	ATT_AGAIN,      /* nothing appended; retry at once (the id member changed) */
	ATT_FAILED,     /* refused for good */
	ATT_NOTHING,    /* the body ended before any line (abort) */
};

/* What one request achieved. */
struct outcome {
	size_t sent;      /* token lines handed to curl */
	int end_sent;     /* and the end line after them */
	long long in;     /* lines known to be in the topic: all on 200, an error reply's "count",
			     -1 when no reply said */
};

static enum attempt
publish_once(struct wk_turn *t, size_t start, struct outcome *out)
{
	struct curl_slist *hdrs = NULL;
	struct wk_buf url = { 0 };
	struct pubreq r;
	enum attempt res;
	long status = 0;
	CURLcode cc;
	CURL *c;

	memset(&r, 0, sizeof(r));
	r.t = t;
	r.member = -1;
	r.start = r.next = start;
	wk_buf_printf(&url, "%s/v1/topics/%s/messages", t->cfg->gateway, t->topic);
	c = wk_http_easy(url.p);
	wk_gwtoken_apply(c);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/x-ndjson");
	hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	/* A stream of unknown length is chunked HTTP/1.1: over HTTP/2 (an https gateway with
	 * tls.http2 on) it would have no Content-Length, which the gateway refuses (411). */
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, pub_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &r);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pub_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, pub_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &r);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	cc = wk_http_perform(c, NULL);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	wk_buf_free(&url);

	out->sent = r.next - start;
	out->end_sent = r.end_sent;
	out->in = -1;
	if (!out->sent && !r.end_sent) {
		res = ATT_NOTHING;
	} else if (cc != CURLE_OK) {
		LOG_WARN("%s@%" PRIu64 ": publish from token %zu: %s", t->topic, t->prompt_off, start,
			 cc == CURLE_ABORTED_BY_CALLBACK ? "no reply in time" : curl_easy_strerror(cc));
		res = ATT_RETRY;
	} else if (status == 200) {
		out->in = (long long)out->sent + r.end_sent;
		res = ATT_OK;
	} else if (status == 400 && r.member >= 0 && refuses_member(&r, KEY_MEMBERS[r.member])) {
		/* Nothing was appended: every line has a key, so the first line was refused. Another
		 * turn may have found this out first; only the first one switches and says so. */
		int expected = r.member;

		if (atomic_compare_exchange_strong(&key_member, &expected, 1 - r.member))
			LOG_WARN("the gateway refuses the \"%s\" member; sending the idempotency key as "
				 "\"%s\"", KEY_MEMBERS[r.member], KEY_MEMBERS[1 - r.member]);
		res = ATT_AGAIN;
	} else if (status >= 400 && status < 500 && status != 408 && status != 409 && status != 429) {
		LOG_ERR("%s@%" PRIu64 ": publish refused: HTTP %ld: %.300s", t->topic, t->prompt_off,
			status, r.reply.p ? r.reply.p : "");
		res = ATT_FAILED;
	} else {
		LOG_WARN("%s@%" PRIu64 ": publish from token %zu: HTTP %ld: %.300s", t->topic,
			 t->prompt_off, start, status, r.reply.p ? r.reply.p : "");
		out->in = reply_count(&r);
		res = ATT_RETRY;
	}
	wk_buf_free(&r.line);
	wk_buf_free(&r.reply);
	return res;
}

/* Ask the topic how far the turn got. @return 0, or -1 if aborted before an answer came. */
static int
reconcile(struct wk_turn *t, unsigned *backoff_ms)
{
	for (;;) {
		struct wk_progress p;
		int rc = wk_history_progress(t->cfg->gateway, t->topic, t->prompt_off, &t->io_stop, &p);

		if (rc == WK_OK) {
			pthread_mutex_lock(&t->mu);
			t->acked = p.tokens;
			t->end_acked = p.ended;
			pthread_mutex_unlock(&t->mu);
			return 0;
		}
		if (rc == WK_ESTOPPED || wk_sleep_ms(*backoff_ms, &t->io_stop))
			return -1;
		LOG_WARN("%s@%" PRIu64 ": reading the topic back: %s; retrying", t->topic,
			 t->prompt_off, wk_strerror(rc));
		*backoff_ms = *backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff_ms * 2;
	}
}

/* Is there a line to send from t->acked on? (t->mu held) */
static int
has_work(struct wk_turn *t)
{
	return t->cancelled || t->end != END_NONE || t->gen_done ||
	       (t->acked < t->n_tok && t->tok[t->acked].ready_ns <= wk_mono_ns());
}

/* Publish until the end message is in, the turn is aborted, or the gateway refuses for good. */
static enum wk_turn_result
publish_all(struct wk_turn *t)
{
	unsigned backoff = BACKOFF_MIN_MS;

	for (;;) {
		struct outcome oc;
		size_t start;
		enum attempt a;

		pthread_mutex_lock(&t->mu);
		/* Open a request only when a line is ready: an idle stream would hold a gateway slot. */
		while (!t->end_acked && !t->aborted && !has_work(t))
			turn_wait(t, t->acked < t->n_tok ? t->tok[t->acked].ready_ns : 0);
		if (t->end_acked) {
			pthread_mutex_unlock(&t->mu);
			return WK_TURN_ENDED;
		}
		if (t->aborted && t->end == END_NONE) {
			pthread_mutex_unlock(&t->mu);
			return WK_TURN_ABORTED;
		}
		start = t->acked;
		pthread_mutex_unlock(&t->mu);

		a = publish_once(t, start, &oc);
		switch (a) {
		case ATT_OK:
			backoff = BACKOFF_MIN_MS;
			pthread_mutex_lock(&t->mu);
			t->acked = start + oc.sent;
			t->end_acked = oc.end_sent;
			pthread_mutex_unlock(&t->mu);
			break;
		case ATT_AGAIN:
		case ATT_NOTHING:
			break;
		case ATT_FAILED:
			return WK_TURN_FAILED;
		case ATT_RETRY:
			if (wk_sleep_ms(backoff > SETTLE_MS ? backoff : SETTLE_MS, &t->io_stop))
				return WK_TURN_ABORTED;
			if (oc.in >= 0) {
				/* The error reply says how many of our lines are in. */
				pthread_mutex_lock(&t->mu);
				t->acked = start + ((size_t)oc.in < oc.sent ? (size_t)oc.in : oc.sent);
				t->end_acked = oc.end_sent && (size_t)oc.in > oc.sent;
				pthread_mutex_unlock(&t->mu);
				LOG_INFO("%s@%" PRIu64 ": the gateway has %zu tokens%s; resuming", t->topic,
					 t->prompt_off, t->acked, t->end_acked ? " and the end" : "");
			} else {
				/* No reply: the topic says how far we got. A line counted short is sent
				 * again under the same key, which the gateway's dedup answers from what
				 * it stored. */
				if (reconcile(t, &backoff))
					return WK_TURN_ABORTED;
				LOG_INFO("%s@%" PRIu64 ": the topic has %zu tokens%s; resuming", t->topic,
					 t->prompt_off, t->acked, t->end_acked ? " and the end" : "");
			}
			backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
			break;
		}
	}
}

/* ---- The turn ----------------------------------------------------------------------------------- */

struct wk_turn *
wk_turn_new(const struct wk_turn_cfg *cfg, const char *topic, uint64_t prompt_off,
	    const char *prompt)
{
	struct wk_turn *t = xcalloc(1, sizeof(*t));
	pthread_condattr_t ca;

	t->cfg = cfg;
	t->topic = xstrdup(topic);
	t->prompt_off = prompt_off;
	t->prompt = xstrdup(prompt);
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	wk_stop_init(&t->io_stop);
	wk_stop_init(&t->up_stop);
	wk_stop_init(&t->watch_stop);
	return t;
}

void
wk_turn_abort(struct wk_turn *t)
{
	pthread_mutex_lock(&t->mu);
	if (!t->aborted) {
		t->aborted = 1;
		t->abort_ns = wk_mono_ns();
	}
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
	wk_stop_fire(&t->up_stop);
	wk_stop_fire(&t->io_stop);
}

const char *
wk_turn_reason(const struct wk_turn *t)
{
	return t->end_acked ? end_name(t->end) : NULL;
}

/* The demo model: every token is known now; pacing is their ready times. */
static void
start_demo(struct wk_turn *t, size_t resume_at)
{
	struct wk_demo_answer a;
	double tps = t->cfg->tokens_per_second;
	uint64_t period = tps > 0 ? (uint64_t)(1e9 / tps) : 0;
	uint64_t base;

	wk_demo_generate(t->prompt, strlen(t->prompt), t->cfg->seed, &a);
	if (resume_at > a.n_tokens)
		resume_at = a.n_tokens;
	/* Token resume_at is due now, the first one of a fresh turn one period from now. */
	base = wk_mono_ns() + (resume_at ? 0 : period) - resume_at * period;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < a.n_tokens; i++) {
		size_t len;
		const char *s = wk_demo_token(&a, i, &len);

		push_token(t, s, len, base + i * period);
	}
	t->gen_done = 1;
	t->gen_end = END_DONE;
	pthread_mutex_unlock(&t->mu);
	wk_demo_answer_free(&a);
}

/* The upstream model. @return 0, or -1 if aborted while reading the context. */
static int
start_upstream(struct wk_turn *t, size_t resume_at)
{
	unsigned backoff = BACKOFF_MIN_MS;
	int rc;

	if (resume_at) {
		/* An earlier delivery streamed part of an answer we cannot reproduce: close the turn. */
		pthread_mutex_lock(&t->mu);
		for (size_t i = 0; i < resume_at; i++)
			push_token(t, NULL, 0, 0);
		t->gen_done = 1;
		t->gen_end = END_ERROR;
		t->gen_error = xstrdup("interrupted: the worker answering this prompt stopped mid-answer");
		pthread_mutex_unlock(&t->mu);
		return 0;
	}
	while ((rc = wk_history_context(t->cfg->gateway, t->topic, t->prompt_off, t->prompt,
					t->cfg->context_bytes, &t->io_stop, &t->messages))) {
		if (rc == WK_ESTOPPED || wk_sleep_ms(backoff, &t->io_stop))
			return -1;
		LOG_WARN("%s@%" PRIu64 ": reading the conversation: %s; retrying", t->topic,
			 t->prompt_off, wk_strerror(rc));
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	if (pthread_create(&t->up_thr, NULL, up_main, t))
		xalloc_oom(0);
	t->up_started = 1;
	return 0;
}

enum wk_turn_result
wk_turn_run(struct wk_turn *t)
{
	enum wk_turn_result res = WK_TURN_ABORTED;
	uint64_t t0 = wk_mono_ns();
	unsigned backoff = BACKOFF_MIN_MS;
	size_t resume_at;

	/* Where does the turn stand? A redelivered prompt may be half answered, or answered. */
	if (reconcile(t, &backoff))
		goto out;
	if (t->end_acked) {
		LOG_INFO("%s@%" PRIu64 ": already answered", t->topic, t->prompt_off);
		res = WK_TURN_ENDED;
		goto out;
	}
	resume_at = t->acked;
	if (resume_at)
		LOG_INFO("%s@%" PRIu64 ": %zu tokens are already in the topic; resuming", t->topic,
			 t->prompt_off, resume_at);
	if (pthread_create(&t->watch_thr, NULL, watch_main, t))
		xalloc_oom(0);
	t->watch_started = 1;
	if (t->cfg->demo)
		start_demo(t, resume_at);
	else if (start_upstream(t, resume_at))
		goto out;
	res = publish_all(t);
out:
	wk_stop_fire(&t->watch_stop);
	wk_stop_fire(&t->up_stop);
	if (t->watch_started)
		pthread_join(t->watch_thr, NULL);
	if (t->up_started)
		pthread_join(t->up_thr, NULL);
	t->watch_started = t->up_started = 0;
	pthread_mutex_lock(&t->mu);
	if (res == WK_TURN_ENDED)
		LOG_INFO("%s@%" PRIu64 ": %s, %zu tokens in %.2f s", t->topic, t->prompt_off,
			 end_name(t->end == END_NONE ? END_DONE : t->end), t->acked,
			 (double)(wk_mono_ns() - t0) / 1e9);
	else if (res == WK_TURN_ABORTED)
		LOG_INFO("%s@%" PRIu64 ": stopped by shutdown after %zu tokens, no end", t->topic,
			 t->prompt_off, t->acked);
	pthread_mutex_unlock(&t->mu);
	return res;
}

void
wk_turn_free(struct wk_turn *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_tok; i++)
		free(t->tok[i].s);
	free(t->tok);
	free(t->gen_error);
	free(t->topic);
	free(t->prompt);
	json_decref(t->messages);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	wk_stop_destroy(&t->io_stop);
	wk_stop_destroy(&t->up_stop);
	wk_stop_destroy(&t->watch_stop);
	free(t);
}
