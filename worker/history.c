/*
 * history.c - reading a session's topic back (see history.h).
 */
#include "history.h"

#include <string.h>

#include "log.h"
#include "xalloc.h"

/* The gateway's default limits.history_max: one page of a read. */
#define PAGE 1000
#define CALL_TIMEOUT_MS 10000

char *
wk_prompt_text(json_t *data)
{
	json_t *t = json_object_get(data, "text");
	char *s;

	if (json_is_string(t))
		return xstrndup(json_string_value(t), json_string_length(t));
	if (json_is_string(data))
		return xstrndup(json_string_value(data), json_string_length(data));
	s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
	return s ? s : xstrdup("");
}

/* ---- Context -------------------------------------------------------------------------------------- */

void
wk_ctx_init(struct wk_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->msgs = json_array();
}

static void
push(struct wk_ctx *c, const char *role, const char *content, size_t len)
{
	json_t *m = json_object();

	json_object_set_new(m, "role", json_string(role));
	json_object_set_new(m, "content", json_stringn(content, len));
	json_array_append_new(c->msgs, m);
}

static void
close_answer(struct wk_ctx *c)
{
	if (c->in_answer && c->answer.len)
		push(c, "assistant", c->answer.p, c->answer.len);
	wk_buf_reset(&c->answer);
	c->in_answer = 0;
}

void
wk_ctx_add(struct wk_ctx *c, const char *event, json_t *data)
{
	if (!strcmp(event, "prompt")) {
		char *text = wk_prompt_text(data);

		close_answer(c);
		push(c, "user", text, strlen(text));
		free(text);
	} else if (!strcmp(event, "token")) {
		c->in_answer = 1;
		if (json_is_string(data))
			wk_buf_append(&c->answer, json_string_value(data), json_string_length(data));
	} else if (!strcmp(event, "end")) {
		close_answer(c);
	}
}

static size_t
content_len(json_t *m)
{
	return json_string_length(json_object_get(m, "content"));
}

json_t *
wk_ctx_finish(struct wk_ctx *c, const char *prompt, size_t max_bytes)
{
	json_t *all, *out = json_array();
	size_t n, first, total;

	close_answer(c);
	push(c, "user", prompt, strlen(prompt));
	all = c->msgs;
	c->msgs = json_array();
	n = json_array_size(all);
	/* Walk back from the newest while the budget lasts; the prompt itself always goes. */
	total = content_len(json_array_get(all, n - 1));
	first = n - 1;
	while (first > 0 && total + content_len(json_array_get(all, first - 1)) <= max_bytes) {
		first--;
		total += content_len(json_array_get(all, first));
	}
	while (first < n - 1 &&
	       strcmp(json_string_value(json_object_get(json_array_get(all, first), "role")), "user"))
		first++;
	for (size_t i = first; i < n; i++)
		json_array_append(out, json_array_get(all, i));
	json_decref(all);
	return out;
}

void
wk_ctx_free(struct wk_ctx *c)
{
	json_decref(c->msgs);
	wk_buf_free(&c->answer);
	memset(c, 0, sizeof(*c));
}

/* ---- Readers -------------------------------------------------------------------------------------- */

/* One page of history from @p from. @param[out] page the parsed reply (owned), on WK_OK only. */
static int
read_page(const char *gateway, const char *topic, uint64_t from, unsigned limit,
	  struct wk_stop *stop, json_t **page)
{
	struct wk_buf url = { 0 };
	struct wk_reply r;
	json_t *j;
	int rc;

	wk_buf_printf(&url, "%s/v1/topics/%s/messages?from=%llu&limit=%u", gateway, topic,
		      (unsigned long long)from, limit);
	rc = wk_http_request("GET", url.p, NULL, CALL_TIMEOUT_MS, stop, &r);
	wk_buf_free(&url);
	if (rc)
		goto out;
	if (r.status == 404) {
		rc = WK_ENOAPI;
		goto out;
	}
	if (r.status != 200) {
		LOG_WARN("history %s: HTTP %ld: %.300s", topic, r.status, r.body.p ? r.body.p : "");
		rc = WK_ESTATUS;
		goto out;
	}
	j = r.body.p ? json_loadb(r.body.p, r.body.len, 0, NULL) : NULL;
	if (!json_is_array(json_object_get(j, "messages")) ||
	    !json_is_integer(json_object_get(j, "next")) ||
	    !json_is_integer(json_object_get(j, "next_offset"))) {
		json_decref(j);
		rc = WK_EPROTO;
		goto out;
	}
	*page = j;
out:
	wk_buf_free(&r.body);
	return rc;
}

/* Visit the topic's messages in [from, until) (until = UINT64_MAX: to the end), in pages.
 * @p fn returns nonzero to stop early. */
static int
walk(const char *gateway, const char *topic, uint64_t from, uint64_t until, struct wk_stop *stop,
     int (*fn)(void *ctx, uint64_t off, const char *event, json_t *data), void *ctx)
{
	for (;;) {
		json_t *page = NULL, *msgs;
		uint64_t next, end;
		int rc, stopped = 0;

		if ((rc = read_page(gateway, topic, from, PAGE, stop, &page)))
			return rc;
		msgs = json_object_get(page, "messages");
		next = (uint64_t)json_integer_value(json_object_get(page, "next"));
		end = (uint64_t)json_integer_value(json_object_get(page, "next_offset"));
		for (size_t i = 0; i < json_array_size(msgs) && !stopped; i++) {
			json_t *m = json_array_get(msgs, i);
			json_t *off = json_object_get(m, "offset"), *ev = json_object_get(m, "event");

			if (!json_is_integer(off) || !json_is_string(ev))
				continue;
			if ((uint64_t)json_integer_value(off) >= until) {
				stopped = 1;
				break;
			}
			stopped = fn(ctx, (uint64_t)json_integer_value(off), json_string_value(ev),
				     json_object_get(m, "data"));
		}
		json_decref(page);
		if (stopped || json_array_size(msgs) == 0 || next >= end || next >= until)
			return WK_OK;
		from = next;
	}
}

struct progress_walk {
	uint64_t prompt_off;
	struct wk_progress p;
};

static int
progress_visit(void *ctx, uint64_t off, const char *event, json_t *data)
{
	struct progress_walk *w = ctx;
	json_t *po;

	(void)off;
	if (!strcmp(event, "token")) {
		w->p.tokens++;
	} else if (!strcmp(event, "end")) {
		po = json_object_get(data, "prompt_offset");
		if (json_is_integer(po) && (uint64_t)json_integer_value(po) != w->prompt_off) {
			/* An earlier turn finishing after our prompt arrived (prompts sent back to back):
			 * the tokens so far were its own. */
			w->p.tokens = 0;
			return 0;
		}
		return w->p.ended = 1;
	}
	return 0;
}

int
wk_history_progress(const char *gateway, const char *topic, uint64_t prompt_off,
		    struct wk_stop *stop, struct wk_progress *out)
{
	struct progress_walk w = { .prompt_off = prompt_off };
	int rc = walk(gateway, topic, prompt_off + 1, UINT64_MAX, stop, progress_visit, &w);

	if (rc == WK_ENOAPI)
		rc = WK_OK; /* no topic: nothing of the turn is there */
	if (rc == WK_OK)
		*out = w.p;
	return rc;
}

int
wk_history_get(const char *gateway, const char *topic, uint64_t off, struct wk_stop *stop,
	       char **event, json_t **data)
{
	json_t *page = NULL, *m, *o;
	int rc;

	if ((rc = read_page(gateway, topic, off, 1, stop, &page)))
		return rc;
	m = json_array_get(json_object_get(page, "messages"), 0);
	o = json_object_get(m, "offset");
	if (!m || !json_is_integer(o) || (uint64_t)json_integer_value(o) != off ||
	    !json_is_string(json_object_get(m, "event"))) {
		json_decref(page);
		return WK_ENOAPI;
	}
	*event = xstrdup(json_string_value(json_object_get(m, "event")));
	*data = json_object_get(m, "data") ? json_incref(json_object_get(m, "data")) : json_null();
	json_decref(page);
	return WK_OK;
}

static int
ctx_visit(void *ctx, uint64_t off, const char *event, json_t *data)
{
	(void)off;
	wk_ctx_add(ctx, event, data);
	return 0;
}

int
wk_history_context(const char *gateway, const char *topic, uint64_t prompt_off,
		   const char *prompt, size_t max_bytes, struct wk_stop *stop, json_t **out)
{
	struct wk_ctx c;
	int rc = WK_OK;

	wk_ctx_init(&c);
	if (prompt_off > 0)
		rc = walk(gateway, topic, 0, prompt_off, stop, ctx_visit, &c);
	if (rc == WK_ENOAPI)
		rc = WK_OK;
	if (rc == WK_OK)
		*out = wk_ctx_finish(&c, prompt, max_bytes);
	wk_ctx_free(&c);
	return rc;
}
