/*
 * http.c - buffers, stop handles and the libcurl plumbing shared by every transfer (see http.h).
 */
#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gwtoken.h"
#include "xalloc.h"

const char *
wk_strerror(int rc)
{
	switch (rc) {
	case WK_OK:
		return "ok";
	case WK_ESTOPPED:
		return "stopped";
	case WK_ETRANSPORT:
		return "transport error";
	case WK_ESTATUS:
		return "unexpected HTTP status";
	case WK_EPROTO:
		return "malformed reply";
	case WK_ENOAPI:
		return "no such API on the gateway";
	default:
		return "unknown error";
	}
}

uint64_t
wk_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Buffers ------------------------------------------------------------------------------------ */

static void
buf_reserve(struct wk_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;

	if (need <= b->cap)
		return;
	if (b->cap * 2 > need)
		need = b->cap * 2;
	if (need < 256)
		need = 256;
	b->p = xrealloc(b->p, need);
	b->cap = need;
}

void
wk_buf_append(struct wk_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
wk_buf_puts(struct wk_buf *b, const char *s)
{
	wk_buf_append(b, s, strlen(s));
}

void
wk_buf_printf(struct wk_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
wk_buf_reset(struct wk_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void
wk_buf_free(struct wk_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- Stop handles ------------------------------------------------------------------------------- */

void
wk_stop_init(struct wk_stop *s)
{
	pthread_mutex_init(&s->mu, NULL);
	atomic_init(&s->fired, 0);
	s->multi = NULL;
}

void
wk_stop_destroy(struct wk_stop *s)
{
	pthread_mutex_destroy(&s->mu);
}

void
wk_stop_fire(struct wk_stop *s)
{
	atomic_store(&s->fired, 1);
	pthread_mutex_lock(&s->mu);
	if (s->multi)
		curl_multi_wakeup(s->multi);
	pthread_mutex_unlock(&s->mu);
}

int
wk_stop_fired(struct wk_stop *s)
{
	return s && atomic_load(&s->fired);
}

/* ---- Transfers ---------------------------------------------------------------------------------- */

int
wk_http_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
wk_http_global_cleanup(void)
{
	curl_global_cleanup();
}

CURL *
wk_http_easy(const char *url)
{
	CURL *c = curl_easy_init();

	if (!c)
		xalloc_oom(0);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "litegate-worker/0.1");
	return c;
}

CURLcode
wk_http_perform(CURL *easy, struct wk_stop *stop)
{
	CURLM *multi = curl_multi_init();
	CURLcode rc = CURLE_RECV_ERROR; /* if the multi handle itself fails */
	int running = 1, stopped = 0;
	CURLMsg *m;
	int left;

	if (!multi)
		xalloc_oom(0);
	curl_multi_add_handle(multi, easy);
	if (stop) {
		pthread_mutex_lock(&stop->mu);
		stopped = atomic_load(&stop->fired);
		if (!stopped)
			stop->multi = multi;
		pthread_mutex_unlock(&stop->mu);
	}
	while (!stopped) {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		while ((m = curl_multi_info_read(multi, &left)))
			if (m->msg == CURLMSG_DONE && m->easy_handle == easy)
				rc = m->data.result;
		if (!running)
			break;
		/* The timeout only bounds how long a missed wakeup could go unnoticed. */
		if (curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
		stopped = wk_stop_fired(stop);
	}
	if (stop) {
		pthread_mutex_lock(&stop->mu);
		stop->multi = NULL;
		pthread_mutex_unlock(&stop->mu);
	}
	if (stopped)
		rc = CURLE_ABORTED_BY_CALLBACK;
	curl_multi_remove_handle(multi, easy);
	curl_multi_cleanup(multi);
	return rc;
}

static size_t
reply_write(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct wk_reply *r = ctx;
	size_t n = size * nmemb;

	if (r->body.len + n > WK_REPLY_MAX)
		return 0; /* fails the transfer: no API reply of ours is this large */
	wk_buf_append(&r->body, p, n);
	return n;
}

int
wk_http_request(const char *method, const char *url, const char *body, long timeout_ms,
		struct wk_stop *stop, struct wk_reply *out)
{
	struct curl_slist *hdrs = NULL;
	CURL *c = wk_http_easy(url);
	CURLcode cc;

	memset(out, 0, sizeof(*out));
	wk_gwtoken_apply(c);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (!strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
	}
	hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip for small bodies */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, reply_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	if (timeout_ms)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	cc = wk_http_perform(c, stop);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return WK_ESTOPPED;
	if (cc != CURLE_OK) {
		out->status = 0;
		return WK_ETRANSPORT;
	}
	return WK_OK;
}

int
wk_sleep_ms(unsigned ms, struct wk_stop *stop)
{
	uint64_t end = wk_mono_ns() + (uint64_t)ms * 1000000u;

	for (;;) {
		uint64_t now = wk_mono_ns();
		struct timespec ts;
		uint64_t step;

		if (wk_stop_fired(stop))
			return 1;
		if (now >= end)
			return 0;
		step = end - now < 20000000u ? end - now : 20000000u;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)step;
		nanosleep(&ts, NULL);
	}
}
