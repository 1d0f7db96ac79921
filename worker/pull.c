/*
 * pull.c - the pull API client, as issue 4 specifies it (see pull.h). Nothing else in the worker
 * builds these URLs or parses these bodies.
 */
#include "pull.h"

#include <string.h>

#include "log.h"
#include "xalloc.h"

/* Long polls get this much on top of their wait before the transfer counts as hung. */
#define POP_SLACK_MS 10000
#define CALL_TIMEOUT_MS 10000

int
wk_pull_group_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 64 || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == ':' || c == '-'))
			return 0;
	}
	return 1;
}

/* POST/PUT a JSON object to /v1/groups/{group}{suffix}; the reply is left in @p r. */
static int
call(const char *gateway, const char *group, const char *method, const char *suffix, json_t *body,
     long timeout_ms, struct wk_stop *stop, struct wk_reply *r)
{
	struct wk_buf url = { 0 };
	char *text = json_dumps(body, JSON_COMPACT);
	int rc;

	if (!text)
		xalloc_oom(0);
	wk_buf_printf(&url, "%s/v1/groups/%s%s", gateway, group, suffix);
	rc = wk_http_request(method, url.p, text, timeout_ms, stop, r);
	free(text);
	wk_buf_free(&url);
	if (rc)
		return rc;
	if (r->status == 404 || r->status == 405)
		return WK_ENOAPI;
	if (r->status < 200 || r->status > 299)
		return WK_ESTATUS;
	return WK_OK;
}

int
wk_pull_group_put(const char *gateway, const char *group, const struct wk_group_def *def,
		  struct wk_stop *stop)
{
	json_t *body = json_object(), *events = json_array();
	struct wk_reply r;
	int rc;

	for (size_t i = 0; i < def->n_events; i++)
		json_array_append_new(events, json_string(def->events[i]));
	json_object_set_new(body, "parent", json_string(def->parent));
	json_object_set_new(body, "events", events);
	json_object_set_new(body, "max_inflight_per_topic", json_integer(def->max_inflight_per_topic));
	json_object_set_new(body, "invisible_ms", json_integer(def->invisible_ms));
	json_object_set_new(body, "max_deliveries", json_integer(def->max_deliveries));
	rc = call(gateway, group, "PUT", "", body, CALL_TIMEOUT_MS, stop, &r);
	if (rc == WK_ESTATUS)
		LOG_WARN("PUT /v1/groups/%s: HTTP %ld: %.300s", group, r.status, r.body.p ? r.body.p : "");
	json_decref(body);
	wk_buf_free(&r.body);
	return rc;
}

static char *
dup_str(json_t *v)
{
	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* One entry of the pop reply. @return 0 if it can be used or acked, -1 if not even a receipt. */
static int
parse_msg(json_t *o, struct wk_pull_msg *m)
{
	json_t *off = json_object_get(o, "offset"), *del = json_object_get(o, "delivery");

	memset(m, 0, sizeof(*m));
	if (!json_is_object(o) || !(m->receipt = dup_str(json_object_get(o, "receipt"))))
		return -1;
	m->topic = dup_str(json_object_get(o, "topic"));
	m->event = dup_str(json_object_get(o, "event"));
	m->data = json_object_get(o, "data");
	m->data = m->data ? json_incref(m->data) : json_null();
	m->delivery = json_is_integer(del) && json_integer_value(del) > 0
			      ? (unsigned)json_integer_value(del) : 1;
	if (!m->topic || !m->event || !json_is_integer(off) || json_integer_value(off) < 0)
		m->bad = 1;
	else
		m->offset = (uint64_t)json_integer_value(off);
	return 0;
}

int
wk_pull_pop(const char *gateway, const char *group, unsigned max, unsigned wait_ms,
	    struct wk_stop *stop, struct wk_pull_msg **out, size_t *n)
{
	json_t *body = json_object(), *reply = NULL, *arr;
	struct wk_pull_msg *msgs = NULL;
	struct wk_reply r;
	size_t k = 0;
	int rc;

	json_object_set_new(body, "max", json_integer(max));
	json_object_set_new(body, "wait_ms", json_integer(wait_ms));
	rc = call(gateway, group, "POST", "/pop", body, (long)wait_ms + POP_SLACK_MS, stop, &r);
	json_decref(body);
	if (rc) {
		if (rc == WK_ESTATUS)
			LOG_WARN("pop %s: HTTP %ld: %.300s", group, r.status, r.body.p ? r.body.p : "");
		goto out;
	}
	reply = r.body.p ? json_loadb(r.body.p, r.body.len, 0, NULL) : NULL;
	arr = json_object_get(reply, "messages");
	if (!json_is_array(arr)) {
		LOG_WARN("pop %s: no \"messages\" array in the reply: %.300s", group,
			 r.body.p ? r.body.p : "");
		rc = WK_EPROTO;
		goto out;
	}
	msgs = xcalloc(json_array_size(arr), sizeof(*msgs));
	for (size_t i = 0; i < json_array_size(arr); i++) {
		if (parse_msg(json_array_get(arr, i), &msgs[k]) == 0)
			k++;
		else
			LOG_WARN("pop %s: an entry without a receipt is ignored", group);
	}
	*out = msgs;
	*n = k;
out:
	json_decref(reply);
	wk_buf_free(&r.body);
	return rc;
}

void
wk_pull_msgs_free(struct wk_pull_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(msgs[i].topic);
		free(msgs[i].event);
		free(msgs[i].receipt);
		json_decref(msgs[i].data);
	}
	free(msgs);
}

static int
settle(const char *gateway, const char *group, const char *what, const char *const *receipts,
       size_t n, struct wk_stop *stop)
{
	json_t *body = json_object(), *arr = json_array();
	struct wk_reply r;
	int rc;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, json_string(receipts[i]));
	json_object_set_new(body, "receipts", arr);
	rc = call(gateway, group, "POST", what, body, CALL_TIMEOUT_MS, stop, &r);
	if (rc == WK_ESTATUS)
		LOG_WARN("%s %s: HTTP %ld: %.300s", what + 1, group, r.status, r.body.p ? r.body.p : "");
	json_decref(body);
	wk_buf_free(&r.body);
	return rc;
}

int
wk_pull_ack(const char *gateway, const char *group, const char *const *receipts, size_t n,
	    struct wk_stop *stop)
{
	return settle(gateway, group, "/ack", receipts, n, stop);
}

int
wk_pull_nack(const char *gateway, const char *group, const char *const *receipts, size_t n,
	     struct wk_stop *stop)
{
	return settle(gateway, group, "/nack", receipts, n, stop);
}
