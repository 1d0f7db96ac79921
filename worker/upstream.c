/*
 * upstream.c - OpenAI-compatible streaming chat completions (see upstream.h).
 */
#include "upstream.h"

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "sse.h"
#include "xalloc.h"

/* A chunk of the stream is small; anything past this is not a chat completion stream. */
#define MAX_EVENT (4u << 20)
#define MAX_ERROR_BODY 2048

struct up {
	CURL *c;
	struct wk_sse sse;
	wk_delta_fn fn;
	void *ctx;
	long status;          /* once headers are in */
	struct wk_buf errbody; /* a non-200 body, capped */
	int done;             /* [DONE] seen */
	int proto;            /* a malformed chunk or an error object: stop */
	int stopped_by_fn;    /* the callback asked to stop */
	char *err;
	size_t errsz;
};

char *
wk_upstream_endpoint(const char *url)
{
	size_t n = strlen(url);
	struct wk_buf b = { 0 };

	while (n && url[n - 1] == '/')
		n--;
	wk_buf_append(&b, url, n);
	if (n >= 17 && !memcmp(url + n - 17, "/chat/completions", 17))
		return b.p;
	if (n >= 3 && !memcmp(url + n - 3, "/v1", 3))
		wk_buf_puts(&b, "/chat/completions");
	else
		wk_buf_puts(&b, "/v1/chat/completions");
	return b.p;
}

static int
on_event(void *ctx, const struct wk_sse_event *ev)
{
	struct up *u = ctx;
	json_t *j, *content, *e;
	json_error_t je;

	if (!strcmp(ev->data, "[DONE]")) {
		u->done = 1;
		return 1;
	}
	if (!(j = json_loadb(ev->data, ev->data_len, 0, &je))) {
		snprintf(u->err, u->errsz, "undecodable chunk from upstream: %s", je.text);
		u->proto = 1;
		return 1;
	}
	if ((e = json_object_get(j, "error"))) {
		json_t *msg = json_object_get(e, "message");

		snprintf(u->err, u->errsz, "upstream error: %s",
			 json_is_string(msg) ? json_string_value(msg) : json_is_string(e) ? json_string_value(e) : "?");
		u->proto = 1;
		json_decref(j);
		return 1;
	}
	content = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0),
						  "delta"),
				  "content");
	if (json_is_string(content) && json_string_length(content) &&
	    u->fn(u->ctx, json_string_value(content), json_string_length(content))) {
		u->stopped_by_fn = 1;
		json_decref(j);
		return 1;
	}
	json_decref(j);
	return 0;
}

static size_t
on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
	struct up *u = ctx;
	size_t n = size * nmemb;

	if (!u->status)
		curl_easy_getinfo(u->c, CURLINFO_RESPONSE_CODE, &u->status);
	if (u->status != 200) {
		size_t room = MAX_ERROR_BODY > u->errbody.len ? MAX_ERROR_BODY - u->errbody.len : 0;

		wk_buf_append(&u->errbody, p, n < room ? n : room);
		return n;
	}
	if (wk_sse_feed(&u->sse, p, n, on_event, u) != 0) {
		if (!u->done && !u->proto && !u->stopped_by_fn) {
			snprintf(u->err, u->errsz, "upstream sent an event over %u bytes", MAX_EVENT);
			u->proto = 1;
		}
		return 0; /* ends the transfer; done/proto/stopped say why */
	}
	return n;
}

int
wk_upstream_stream(const struct wk_upstream_cfg *cfg, json_t *messages, wk_delta_fn fn,
		   void *ctx, struct wk_stop *stop, char *err, size_t errsz)
{
	char *endpoint = wk_upstream_endpoint(cfg->url), *body;
	struct curl_slist *hdrs = NULL;
	json_t *req = json_object();
	struct up u;
	CURLcode cc;
	int rc;

	memset(&u, 0, sizeof(u));
	u.fn = fn;
	u.ctx = ctx;
	u.err = err;
	u.errsz = errsz;
	err[0] = '\0';
	wk_sse_init(&u.sse, MAX_EVENT);
	if (cfg->model)
		json_object_set_new(req, "model", json_string(cfg->model));
	json_object_set(req, "messages", messages);
	json_object_set_new(req, "stream", json_true());
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!body)
		xalloc_oom(0);

	u.c = wk_http_easy(endpoint);
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: text/event-stream");
	hdrs = curl_slist_append(hdrs, "Expect:");
	if (cfg->api_key) {
		struct wk_buf auth = { 0 };

		wk_buf_printf(&auth, "Authorization: Bearer %s", cfg->api_key);
		hdrs = curl_slist_append(hdrs, auth.p);
		wk_buf_free(&auth);
	}
	curl_easy_setopt(u.c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(u.c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(u.c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(u.c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(u.c, CURLOPT_WRITEDATA, &u);
	/* A model may think for a while before its first token, but not in total silence forever. */
	curl_easy_setopt(u.c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(u.c, CURLOPT_LOW_SPEED_TIME, 300L);
	cc = wk_http_perform(u.c, stop);
	if (!u.status)
		curl_easy_getinfo(u.c, CURLINFO_RESPONSE_CODE, &u.status);

	if (cc == CURLE_ABORTED_BY_CALLBACK || wk_stop_fired(stop)) {
		rc = WK_ESTOPPED;
	} else if (u.done || u.stopped_by_fn) {
		rc = WK_OK;
	} else if (u.proto) {
		rc = WK_EPROTO;
	} else if (u.status && u.status != 200) {
		snprintf(err, errsz, "upstream HTTP %ld: %.*s", u.status, (int)u.errbody.len,
			 u.errbody.p ? u.errbody.p : "");
		rc = WK_ESTATUS;
	} else if (cc != CURLE_OK) {
		snprintf(err, errsz, "upstream: %s", curl_easy_strerror(cc));
		rc = WK_ETRANSPORT;
	} else {
		LOG_WARN("%s: the stream ended without [DONE]; taking it as the end", endpoint);
		rc = WK_OK;
	}
	curl_easy_cleanup(u.c);
	curl_slist_free_all(hdrs);
	wk_sse_free(&u.sse);
	wk_buf_free(&u.errbody);
	free(body);
	free(endpoint);
	return rc;
}
