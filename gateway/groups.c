/*
 * groups.c - consumer group definitions: parse and validate, persist in the engine's host metadata,
 * restore at startup, subscribe in the engine, and route the engine's ready entries to groups.
 * Service thread only (see groups.h).
 */
#include "groups.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bg.h"
#include "commits.h"
#include "log.h"
#include "route.h"
#include "xalloc.h"

#define GROUP_TOPICS_MAX 10000   /* explicit topics per group */
#define DEF_KEY_PREFIX "grp/"
#define MARK_KEY_FMT "gtp/%u/"

static void scan_start(struct gw_group *g, int tail_too);

/* ---- Names and small helpers --------------------------------------------------------------------- */

int
gw_group_name_ok(const char *s, size_t len)
{
	/* The engine's id rule, shorter: the dead-letter topic "_dlq.<group>" must stay an id. */
	return len >= 1 && len <= GW_GROUP_NAME_MAX && gw_name_id_ok(s, len);
}

struct gw_group *
gw_group_find(struct gw *gw, const char *name)
{
	for (struct gw_group *g = gw->groups ? gw->groups->list : NULL; g; g = g->next)
		if (!strcmp(g->name, name))
			return g;
	return NULL;
}

static struct gw_group *
find_by_sub(struct gw *gw, uint64_t sub)
{
	for (struct gw_group *g = gw->groups->list; g; g = g->next)
		if (GW_GROUP_SUB_BASE + g->id == sub)
			return g;
	return NULL;
}

static int
is_dlq_topic(const char *topic)
{
	const char *slash = strchr(topic, '/');

	return slash && !strncmp(slash + 1, GW_DLQ_PREFIX, strlen(GW_DLQ_PREFIX));
}

static int
has_topic(const struct gw_group *g, const char *topic)
{
	for (size_t i = 0; i < g->n_topics; i++)
		if (!strcmp(g->topics[i], topic))
			return 1;
	return 0;
}

int
gw_group_wants_topic(const struct gw_group *g, const char *topic)
{
	size_t plen = strlen(g->parent);

	if (has_topic(g, topic))
		return 1;
	/* A group never consumes dead letters through its parent subscription (its own would loop);
	 * a group that means to read them names the topic explicitly. */
	return plen && !strncmp(topic, g->parent, plen) && topic[plen] == '/' && !is_dlq_topic(topic);
}

/* ---- Definitions: parse, validate ---------------------------------------------------------------- */

/* A definition as parsed from a body or a stored record, before it is applied. */
struct def {
	char parent[ENG_PARENT_MAX + 1];
	char events[GW_GROUP_EVENTS_MAX][ENG_EVENT_MAX + 1];
	size_t n_events;
	char **topics;
	size_t n_topics;
	uint32_t max_inflight, invisible_ms, max_deliveries;
	int from_tail;
	double rate, burst;
	/* stored records only */
	uint32_t id;
	uint64_t created_ms, since_ms;
};

static void
def_free(struct def *d)
{
	for (size_t i = 0; i < d->n_topics; i++)
		free(d->topics[i]);
	free(d->topics);
	d->topics = NULL;
	d->n_topics = 0;
}

static int
get_u32(json_t *v, const char *name, uint32_t lo, uint32_t hi, uint32_t *out, struct gw_error *e)
{
	json_int_t i;

	if (!json_is_integer(v) || (i = json_integer_value(v)) < lo || i > hi) {
		gw_error_set(e, 400, "bad_request", "\"%s\" must be an integer from %u to %u", name, lo,
			     hi);
		return -1;
	}
	*out = (uint32_t)i;
	return 0;
}

int
gw_group_parse_topics(struct gw *gw, json_t *arr, const char *what, char ***out, size_t *n,
		      struct gw_error *e);

/* Validate a JSON array of lite topic names; appends copies to *out. */
int
gw_group_parse_topics(struct gw *gw, json_t *arr, const char *what, char ***out, size_t *n,
		      struct gw_error *e)
{
	size_t i;
	json_t *v;

	if (!json_is_array(arr)) {
		gw_error_set(e, 400, "bad_request", "\"%s\" must be an array of lite topics", what);
		return -1;
	}
	if (*n + json_array_size(arr) > GROUP_TOPICS_MAX) {
		gw_error_set(e, 400, "too_many_topics", "a group names at most %d topics",
			     GROUP_TOPICS_MAX);
		return -1;
	}
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);
		const char *slash = s ? strchr(s, '/') : NULL;

		if (!s || !gw_name_topic_ok(s, strlen(s))) {
			gw_error_set(e, 400, "bad_name", "\"%s\"[%zu] is not a lite topic \"<parent>/<id>\"",
				     what, i);
			return -1;
		}
		if (!gw_config_parent(gw->cfg, s, (size_t)(slash - s))) {
			gw_error_set(e, 400, "unknown_parent", "\"%s\"[%zu]: parent \"%.*s\" is not declared",
				     what, i, (int)(slash - s), s);
			return -1;
		}
		*out = xrealloc(*out, (*n + 1) * sizeof(**out));
		(*out)[(*n)++] = xstrdup(s);
	}
	return 0;
}

/* Parse a definition. @p stored: a record written by us (has id, created, since). */
static int
def_parse(struct gw *gw, json_t *root, int stored, struct def *d, struct gw_error *e)
{
	static const char *const known[] = { "parent", "events", "topics", "max_inflight_per_topic",
					     "invisible_ms", "max_deliveries", "rate", "from",
					     "id", "created", "since", NULL };
	const char *key;
	json_t *v;

	memset(d, 0, sizeof(*d));
	d->max_inflight = 1;
	d->invisible_ms = 30000;
	d->max_deliveries = 5;
	if (!json_is_object(root)) {
		gw_error_set(e, 400, "bad_json", "the body must be a JSON object");
		return -1;
	}
	json_object_foreach(root, key, v) {
		size_t k;

		for (k = 0; known[k] && strcmp(known[k], key); k++)
			;
		if (!known[k] || (k >= 8 && !stored)) {
			gw_error_set(e, 400, "bad_request", "unknown member \"%s\"", key);
			goto fail;
		}
		switch (k) {
		case 0: {
			const char *s = json_string_value(v);

			if (json_is_null(v))
				break;
			if (!s || !gw_name_parent_ok(s, strlen(s))) {
				gw_error_set(e, 400, "bad_name", "\"parent\" must be a parent name");
				goto fail;
			}
			if (!gw_config_parent(gw->cfg, s, strlen(s))) {
				gw_error_set(e, 400, "unknown_parent", "parent \"%s\" is not declared", s);
				goto fail;
			}
			strcpy(d->parent, s);
			break;
		}
		case 1: {
			size_t i;
			json_t *ev;

			if (!json_is_array(v) || json_array_size(v) > GW_GROUP_EVENTS_MAX) {
				gw_error_set(e, 400, "bad_request",
					     "\"events\" must be an array of at most %d event names",
					     GW_GROUP_EVENTS_MAX);
				goto fail;
			}
			json_array_foreach(v, i, ev) {
				const char *s = json_string_value(ev);

				if (!s || !gw_name_event_ok(s, strlen(s))) {
					gw_error_set(e, 400, "bad_event", "\"events\"[%zu] is not an event name", i);
					goto fail;
				}
				strcpy(d->events[d->n_events++], s);
			}
			break;
		}
		case 2:
			if (gw_group_parse_topics(gw, v, "topics", &d->topics, &d->n_topics, e))
				goto fail;
			break;
		case 3:
			if (get_u32(v, key, 1, 1000, &d->max_inflight, e))
				goto fail;
			break;
		case 4:
			if (get_u32(v, key, 10, 12 * 3600 * 1000, &d->invisible_ms, e))
				goto fail;
			break;
		case 5:
			if (get_u32(v, key, 1, 1000, &d->max_deliveries, e))
				goto fail;
			break;
		case 6: {
			json_t *ps = json_object_get(v, "per_second"), *b = json_object_get(v, "burst");

			if (json_is_null(v))
				break;
			if (!json_is_object(v) || !json_is_number(ps) || json_number_value(ps) <= 0 ||
			    json_number_value(ps) > 1e9 || (b && (!json_is_number(b) ||
								  json_number_value(b) < 1 ||
								  json_number_value(b) > 1e9)) ||
			    json_object_size(v) != 1u + (b != NULL)) {
				gw_error_set(e, 400, "bad_request",
					     "\"rate\" must be {\"per_second\":N,\"burst\":M} with N > 0, M >= 1");
				goto fail;
			}
			d->rate = json_number_value(ps);
			d->burst = b ? json_number_value(b) : (d->rate < 1 ? 1 : d->rate);
			break;
		}
		case 7: {
			const char *s = json_string_value(v);

			if (!s || (strcmp(s, "first") && strcmp(s, "tail"))) {
				gw_error_set(e, 400, "bad_request", "\"from\" must be \"first\" or \"tail\"");
				goto fail;
			}
			d->from_tail = !strcmp(s, "tail");
			break;
		}
		case 8:
			d->id = (uint32_t)json_integer_value(v);
			break;
		case 9:
			d->created_ms = (uint64_t)json_integer_value(v);
			break;
		case 10:
			d->since_ms = (uint64_t)json_integer_value(v);
			break;
		}
	}
	if (d->n_events && !d->parent[0] && !d->n_topics && !stored) {
		/* Harmless, but almost certainly a mistake: say so. */
		gw_error_set(e, 400, "bad_request", "\"events\" filters a subscription: give \"parent\" or \"topics\"");
		goto fail;
	}
	return 0;
fail:
	def_free(d);
	return -1;
}

/* The record we store: the definition plus id, created and since. */
static char *
def_record(const struct gw_group *g)
{
	json_t *o = json_object(), *ev = json_array(), *tp = json_array();
	char *s;

	for (size_t i = 0; i < g->n_events; i++)
		json_array_append_new(ev, json_string(g->events[i]));
	for (size_t i = 0; i < g->n_topics; i++)
		json_array_append_new(tp, json_string(g->topics[i]));
	json_object_set_new(o, "parent", g->parent[0] ? json_string(g->parent) : json_null());
	json_object_set_new(o, "events", ev);
	json_object_set_new(o, "topics", tp);
	json_object_set_new(o, "max_inflight_per_topic", json_integer(g->max_inflight));
	json_object_set_new(o, "invisible_ms", json_integer(g->invisible_ms));
	json_object_set_new(o, "max_deliveries", json_integer(g->max_deliveries));
	json_object_set_new(o, "from", json_string(g->from_tail ? "tail" : "first"));
	if (g->rate > 0)
		json_object_set_new(o, "rate", json_pack("{s:f,s:f}", "per_second", g->rate, "burst",
							 g->burst));
	json_object_set_new(o, "id", json_integer(g->id));
	json_object_set_new(o, "created", json_integer((json_int_t)g->created_ms));
	json_object_set_new(o, "since", json_integer((json_int_t)g->since_ms));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		xalloc_oom(0);
	return s;
}

static int
persist(struct gw_group *g)
{
	char key[ENG_META_KEY_MAX + 1];
	char *rec = def_record(g);
	int rc;

	snprintf(key, sizeof(key), DEF_KEY_PREFIX "%s", g->name);
	rc = eng_meta_put(g->gw->db, key, rec, strlen(rec));
	free(rec);
	if (rc)
		LOG_ERR("group %s: storing its definition: %s", g->name, eng_strerror(rc));
	return rc;
}

/* ---- Engine subscriptions ------------------------------------------------------------------------ */

static uint64_t
sub_id(const struct gw_group *g)
{
	return GW_GROUP_SUB_BASE + g->id;
}

static int
subscribe_parent(struct gw_group *g)
{
	const char *ev[GW_GROUP_EVENTS_MAX];

	if (!g->parent[0])
		return 0;
	for (size_t i = 0; i < g->n_events; i++)
		ev[i] = g->events[i];
	return eng_sub_parent(g->gw->db, sub_id(g), g->parent, ev, g->n_events);
}

static int
subscribe_all(struct gw_group *g)
{
	int rc = subscribe_parent(g);

	for (size_t i = 0; !rc && i < g->n_topics; i++)
		rc = eng_sub_topic(g->gw->db, sub_id(g), g->topics[i]);
	return rc;
}

/* Explicit topics added with "from":"tail": unless the group has a position there already, its
 * position becomes the topic's end now, stored (so a restart keeps it) with one synced write. */
static int
start_at_tail(struct gw_group *g, char *const *topics, size_t n)
{
	eng_offset_entry *ents = xmalloc((n ? n : 1) * sizeof(*ents));
	size_t k = 0;
	int rc = 0;

	for (size_t i = 0; i < n && !rc; i++) {
		eng_topic_info info;
		uint64_t off;

		if (eng_offset_get(g->gw->db, g->name, topics[i], &off) == 0)
			continue;
		if ((rc = eng_topic_info_get(g->gw->db, topics[i], &info)) == ENG_ENOTFOUND) {
			rc = 0; /* nothing there yet: its first message is new */
			continue;
		}
		if (!rc)
			ents[k++] = (eng_offset_entry){ g->name, topics[i], info.next_offset };
	}
	if (!rc)
		rc = eng_offset_commit_batch(g->gw->db, ents, k);
	free(ents);
	return rc;
}

/* ---- Applying a definition ---------------------------------------------------------------------- */

static void
apply_def(struct gw_group *g, struct def *d)
{
	for (size_t i = 0; i < g->n_topics; i++)
		free(g->topics[i]);
	free(g->topics);
	if (strcmp(g->parent, d->parent) || g->from_tail != d->from_tail)
		g->since_ms = gw_now_ms();
	strcpy(g->parent, d->parent);
	memcpy(g->events, d->events, sizeof(g->events));
	g->n_events = d->n_events;
	g->topics = d->topics;
	g->n_topics = d->n_topics;
	d->topics = NULL;
	d->n_topics = 0;
	g->max_inflight = d->max_inflight;
	g->invisible_ms = d->invisible_ms;
	g->max_deliveries = d->max_deliveries;
	g->from_tail = d->from_tail;
	if (g->rate != d->rate || g->burst != d->burst) {
		g->rate = d->rate;
		g->burst = d->burst;
		g->tokens = d->burst;
		g->tokens_us = gw_mono_us();
	}
}

static struct gw_group *
group_new(struct gw *gw, const char *name, uint32_t id)
{
	struct gw_group *g = xcalloc(1, sizeof(*g));

	g->gw = gw;
	strcpy(g->name, name);
	g->id = id;
	g->waiters.next = g->waiters.prev = &g->waiters;
	g->tokens_us = gw_mono_us();
	if (id >= gw->groups->next_id)
		gw->groups->next_id = id + 1;
	return g;
}

static void
group_link(struct gw *gw, struct gw_group *g)
{
	g->next = gw->groups->list;
	gw->groups->list = g;
}

/* Look at every explicit topic (and, after an overflow, every known one): queue what has work. */
void
gw_group_recheck(struct gw_group *g)
{
	for (size_t i = 0; i < g->n_topics; i++)
		gw_gtopic_get(g, g->topics[i], 1);
	gw_group_serve(g);
}

struct mark_scan {
	struct gw_group *g;
	size_t prefix_len;
	char **keys;  /* collected for deletion (group delete) */
	size_t n;
	int collect;
};

static int
on_marker(void *ctx, const char *key, const void *val, size_t len)
{
	struct mark_scan *ms = ctx;
	const char *topic = key + ms->prefix_len;

	(void)val;
	(void)len;
	if (ms->collect) {
		ms->keys = xrealloc(ms->keys, (ms->n + 1) * sizeof(*ms->keys));
		ms->keys[ms->n++] = xstrdup(key);
		return 0;
	}
	if (gw_name_topic_ok(topic, strlen(topic)) && gw_group_wants_topic(ms->g, topic))
		gw_gtopic_get(ms->g, topic, 1);
	return 0;
}

/* Every marked topic of @p g (after a restart or a ready-set overflow). */
static void
scan_markers(struct gw_group *g, int collect, struct mark_scan *ms)
{
	char prefix[32];

	snprintf(prefix, sizeof(prefix), MARK_KEY_FMT, g->id);
	memset(ms, 0, sizeof(*ms));
	ms->g = g;
	ms->prefix_len = strlen(prefix);
	ms->collect = collect;
	eng_meta_scan(g->gw->db, prefix, on_marker, ms);
}

/* Collect every key under @p prefix (NULL: the group's markers) into ms->keys. */
static void
scan_markers_prefix(struct gw_group *g, const char *prefix, struct mark_scan *ms)
{
	if (!prefix) {
		scan_markers(g, 1, ms);
		return;
	}
	memset(ms, 0, sizeof(*ms));
	ms->g = g;
	ms->prefix_len = strlen(prefix);
	ms->collect = 1;
	eng_meta_scan(g->gw->db, prefix, on_marker, ms);
}

/* ---- The API ------------------------------------------------------------------------------------ */

int
gw_group_put(struct gw *gw, const char *name, const char *body, size_t len, struct gw_buf *out,
	     unsigned *status, struct gw_error *e)
{
	struct gw_group *g = gw_group_find(gw, name);
	json_error_t jerr;
	json_t *root;
	struct def d;
	int rc, created = !g, rediscover;

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		gw_error_set(e, 400, "bad_json", "%s", jerr.text);
		return -1;
	}
	rc = def_parse(gw, root, 0, &d, e);
	json_decref(root);
	if (rc)
		return -1;
	if (created) {
		g = group_new(gw, name, gw->groups->next_id);
		g->created_ms = g->since_ms = gw_now_ms();
	} else {
		eng_unsub_all(gw->db, sub_id(g));
	}
	rediscover = created || strcmp(g->parent, d.parent) || g->from_tail != d.from_tail ||
		     g->n_events != d.n_events ||
		     memcmp(g->events, d.events, d.n_events * sizeof(d.events[0]));
	apply_def(g, &d);
	if (g->from_tail && (rc = start_at_tail(g, g->topics, g->n_topics)) != 0) {
		gw_error_from_eng(rc, e);
		goto fail;
	}
	if ((rc = persist(g)) != 0 || (rc = subscribe_all(g)) != 0) {
		gw_error_from_eng(rc, e);
		goto fail;
	}
	if (created) {
		group_link(gw, g);
		gw->m.groups++;
	} else {
		/* Topics the new definition no longer covers lose their consumer state. */
		for (size_t i = 0; i < g->hcap; i++) {
			for (struct gw_gtopic *gt = g->htab[i], *nx; gt; gt = nx) {
				nx = gt->hnext;
				if (!gw_group_wants_topic(g, gt->name))
					gw_gtopic_drop(gt);
			}
		}
	}
	if (rediscover)
		scan_start(g, 0);
	gw_group_recheck(g);
	gw_group_describe(g, out);
	*status = created ? 201 : 200;
	LOG_INFO("group %s %s (parent %s, %zu topics)", g->name, created ? "created" : "updated",
		 g->parent[0] ? g->parent : "-", g->n_topics);
	return 0;
fail:
	if (created) {
		eng_unsub_all(gw->db, sub_id(g));
		gw_group_free_state(g);
		free(g);
	}
	/* An update that failed half-way keeps its new definition in memory; the stored one is
	 * what a restart brings back. Say so rather than pretend nothing changed. */
	return -1;
}

static void
put_str_array(struct gw_buf *b, char (*items)[ENG_EVENT_MAX + 1], size_t n)
{
	gw_buf_putc(b, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			gw_buf_putc(b, ',');
		gw_buf_json_str(b, items[i], strlen(items[i]));
	}
	gw_buf_putc(b, ']');
}

void
gw_group_describe(const struct gw_group *g, struct gw_buf *out)
{
	gw_buf_puts(out, "{\"group\":");
	gw_buf_json_str(out, g->name, strlen(g->name));
	gw_buf_puts(out, ",\"parent\":");
	if (g->parent[0])
		gw_buf_json_str(out, g->parent, strlen(g->parent));
	else
		gw_buf_puts(out, "null");
	gw_buf_puts(out, ",\"events\":");
	put_str_array(out, (char (*)[ENG_EVENT_MAX + 1])g->events, g->n_events);
	gw_buf_puts(out, ",\"topics\":[");
	for (size_t i = 0; i < g->n_topics; i++) {
		if (i)
			gw_buf_putc(out, ',');
		gw_buf_json_str(out, g->topics[i], strlen(g->topics[i]));
	}
	gw_buf_printf(out,
		      "],\"max_inflight_per_topic\":%u,\"invisible_ms\":%u,\"max_deliveries\":%u,"
		      "\"from\":\"%s\",\"rate\":",
		      g->max_inflight, g->invisible_ms, g->max_deliveries,
		      g->from_tail ? "tail" : "first");
	if (g->rate > 0)
		gw_buf_printf(out, "{\"per_second\":%.17g,\"burst\":%.17g}", g->rate, g->burst);
	else
		gw_buf_puts(out, "null");
	gw_buf_printf(out,
		      ",\"created\":%llu,\"state\":{\"active_topics\":%zu,\"ready_topics\":%zu,"
		      "\"inflight\":%llu,\"waiting_pops\":%zu}}",
		      (unsigned long long)g->created_ms, g->hcount, g->n_ready,
		      (unsigned long long)g->inflight, g->n_waiters);
}

void
gw_groups_list(struct gw *gw, struct gw_buf *out)
{
	gw_buf_puts(out, "{\"groups\":[");
	for (struct gw_group *g = gw->groups->list; g; g = g->next) {
		gw_group_describe(g, out);
		if (g->next)
			gw_buf_putc(out, ',');
	}
	gw_buf_puts(out, "]}\n");
}

int
gw_group_delete(struct gw *gw, struct gw_group *g, struct gw_error *e)
{
	char key[ENG_META_KEY_MAX + 1];
	struct mark_scan ms;
	int rc;

	/* The definition goes first: if anything after it fails, the group is gone all the same
	 * and what is left (markers, offsets) is unreachable garbage, not a half-deleted group. */
	snprintf(key, sizeof(key), DEF_KEY_PREFIX "%s", g->name);
	if ((rc = eng_meta_delete(gw->db, key)) != 0) {
		gw_error_from_eng(rc, e);
		return -1;
	}
	eng_unsub_all(gw->db, sub_id(g));
	for (struct gw_group **pp = &gw->groups->list; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	g->deleted = 1;
	gw->m.groups--;
	/* Parked pops learn that the group is gone. */
	while (g->waiters.next != &g->waiters) {
		struct gw_waiter *w = g->waiters.next;

		gw_group_unpark(w);
		w->g = NULL;
		w->filled(w);
	}
	gw_group_free_state(g);
	/* Commits and records still queued for the group would bring its offsets back after the
	 * delete: let them land first (stop and start drains the pool; deletes are rare). */
	gw_commits_stop();
	if ((rc = gw_commits_start(gw, GW_COMMIT_THREADS)) != 0)
		LOG_ERR("cannot restart the offset commit threads: %s", strerror(rc));
	for (int pass = 0; pass < 4; pass++) {
		/* Its markers, then its gap records (consume.c), delivery-count records and journal
		 * (dcounts.c). */
		static const char *const fmts[] = { NULL, "gta/%u/", "gdc/%u/", "gdj/%u/" };
		char prefix[32];

		if (pass)
			snprintf(prefix, sizeof(prefix), fmts[pass], g->id);
		scan_markers_prefix(g, pass ? prefix : NULL, &ms);
		for (size_t i = 0; i < ms.n; i++) {
			eng_meta_delete(gw->db, ms.keys[i]);
			free(ms.keys[i]);
		}
		free(ms.keys);
	}
	if ((rc = eng_offset_delete_group(gw->db, g->name)) != 0)
		LOG_WARN("group %s: deleting its offsets: %s", g->name, eng_strerror(rc));
	g->next = gw->groups->graveyard;
	gw->groups->graveyard = g;
	LOG_INFO("group %s deleted", g->name);
	return 0;
}

int
gw_group_subscriptions(struct gw *gw, struct gw_group *g, const char *body, size_t len,
		       struct gw_buf *out, struct gw_error *e)
{
	json_error_t jerr;
	json_t *root, *add, *rem, *from;
	char **adds = NULL, **rems = NULL;
	size_t n_add = 0, n_rem = 0, added = 0, removed = 0;
	const char *key;
	json_t *v;
	int rc = -1, tail = g->from_tail, erc;

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		gw_error_set(e, 400, "bad_json", "%s", jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		gw_error_set(e, 400, "bad_json", "the body must be a JSON object");
		goto out;
	}
	json_object_foreach(root, key, v) {
		if (strcmp(key, "add") && strcmp(key, "remove") && strcmp(key, "from")) {
			gw_error_set(e, 400, "bad_request", "unknown member \"%s\"", key);
			goto out;
		}
	}
	add = json_object_get(root, "add");
	rem = json_object_get(root, "remove");
	from = json_object_get(root, "from");
	if (from) {
		const char *s = json_string_value(from);

		if (!s || (strcmp(s, "first") && strcmp(s, "tail"))) {
			gw_error_set(e, 400, "bad_request", "\"from\" must be \"first\" or \"tail\"");
			goto out;
		}
		tail = !strcmp(s, "tail");
	}
	if ((add && gw_group_parse_topics(gw, add, "add", &adds, &n_add, e)) ||
	    (rem && gw_group_parse_topics(gw, rem, "remove", &rems, &n_rem, e)))
		goto out;
	for (size_t i = 0; i < n_rem; i++) {
		for (size_t j = 0; j < g->n_topics; j++) {
			if (strcmp(g->topics[j], rems[i]))
				continue;
			free(g->topics[j]);
			g->topics[j] = g->topics[--g->n_topics];
			eng_unsub(gw->db, sub_id(g), rems[i]);
			removed++;
			break;
		}
	}
	if (tail) {
		/* The positions of every topic this adds, with one synced write. */
		char **fresh = xcalloc(n_add ? n_add : 1, sizeof(*fresh));
		size_t n_fresh = 0;

		for (size_t i = 0; i < n_add && g->n_topics + n_fresh < GROUP_TOPICS_MAX; i++)
			if (!has_topic(g, adds[i]))
				fresh[n_fresh++] = adds[i];
		erc = start_at_tail(g, fresh, n_fresh);
		free(fresh);
		if (erc) {
			gw_error_from_eng(erc, e);
			goto stored;
		}
	}
	for (size_t i = 0; i < n_add; i++) {
		if (has_topic(g, adds[i]))
			continue;
		if (g->n_topics >= GROUP_TOPICS_MAX) {
			gw_error_set(e, 400, "too_many_topics", "a group names at most %d topics",
				     GROUP_TOPICS_MAX);
			goto stored;
		}
		if ((erc = eng_sub_topic(gw->db, sub_id(g), adds[i])) != 0) {
			gw_error_from_eng(erc, e);
			goto stored;
		}
		g->topics = xrealloc(g->topics, (g->n_topics + 1) * sizeof(*g->topics));
		g->topics[g->n_topics++] = xstrdup(adds[i]);
		added++;
	}
	rc = 0;
stored:
	if ((added || removed) && (erc = persist(g)) != 0 && !rc) {
		gw_error_from_eng(erc, e);
		rc = -1;
	}
	for (size_t i = 0; i < n_rem; i++) {
		struct gw_gtopic *gt = gw_gtopic_get(g, rems[i], 0);

		if (gt && !gw_group_wants_topic(g, gt->name))
			gw_gtopic_drop(gt);
	}
	gw_group_recheck(g);
	if (!rc) {
		gw_buf_printf(out, "{\"added\":%zu,\"removed\":%zu,\"group\":", added, removed);
		gw_group_describe(g, out);
		gw_buf_puts(out, "}\n");
	}
out:
	for (size_t i = 0; i < n_add; i++)
		free(adds[i]);
	for (size_t i = 0; i < n_rem; i++)
		free(rems[i]);
	free(adds);
	free(rems);
	json_decref(root);
	return rc;
}

/* ---- The topic scan (groups.h) ------------------------------------------------------------------ */

#define SCAN_PAGE 256

/* One page of one group's scan: submitted again for the next page until the parent is done. */
struct scan_job {
	struct gw_job job;               /* first: bg.c hands this pointer back */
	struct gw *gw;
	eng_db *db;
	uint32_t id, gen;                /* the group's id and scan generation when it started */
	char group[GW_GROUP_NAME_MAX + 1];
	char parent[ENG_PARENT_MAX + 1];
	int from_tail;
	uint64_t since_ms;
	char after[ENG_TOPIC_MAX + 1];   /* the last name seen ("" at the start) */
	int rc;
	size_t n_page;                   /* names the page listed */
	size_t n;                        /* of which have work for the group: names[0..n) */
	char names[SCAN_PAGE][ENG_TOPIC_MAX + 1];
};

static int
on_scan_topic(void *ctx, const char *topic, uint64_t created_ms)
{
	struct scan_job *sj = ctx;

	(void)created_ms;
	if (sj->n_page < SCAN_PAGE && strlen(topic) <= ENG_TOPIC_MAX)
		strcpy(sj->names[sj->n_page++], topic);
	return 0;
}

/* Helper thread: one page of names, then keep those with something below their end. */
static void
scan_work(struct gw_job *job)
{
	struct scan_job *sj = (struct scan_job *)job;
	size_t listed;

	sj->n_page = sj->n = 0;
	sj->rc = eng_topic_scan(sj->db, sj->parent, sj->after, SCAN_PAGE, on_scan_topic, sj);
	listed = sj->n_page;
	if (listed)
		strcpy(sj->after, sj->names[listed - 1]);
	for (size_t i = 0; i < listed && !sj->rc; i++) {
		eng_topic_info info;
		uint64_t pos;

		if (is_dlq_topic(sj->names[i]) || eng_topic_info_get(sj->db, sj->names[i], &info))
			continue;
		if (eng_offset_get(sj->db, sj->group, sj->names[i], &pos) != 0) {
			/* No position: from its first retained message, or for "from":"tail", only
			 * what was stored after the subscription began. */
			if (sj->from_tail && info.last_write_ms < sj->since_ms)
				continue;
			pos = info.first_offset;
		}
		if (pos < info.next_offset && sj->n != i)
			strcpy(sj->names[sj->n], sj->names[i]);
		if (pos < info.next_offset)
			sj->n++;
	}
}

static void
scan_end(struct gw_group *g)
{
	g->scanning = 0;
	if (g->scan_found)
		LOG_INFO("group %s: %zu existing topics of %s to read", g->name, g->scan_found,
			 g->parent);
}

/* Service thread: take the page's topics as topics with news, then ask for the next page. */
static void
scan_done(struct gw_job *job)
{
	struct scan_job *sj = (struct scan_job *)job;
	struct gw *gw = sj->gw;
	struct gw_group *g = gw->groups ? find_by_sub(gw, GW_GROUP_SUB_BASE + sj->id) : NULL;

	if (!g || g->deleted || g->scan_gen != sj->gen || strcmp(g->parent, sj->parent) ||
	    gw->state != GW_RUNNING || gw->groups->closing) {
		if (g && g->scan_gen == sj->gen)
			g->scanning = 0;
		free(sj);
		return;
	}
	if (sj->rc) {
		LOG_WARN("group %s: listing the topics of %s: %s", g->name, sj->parent,
			 eng_strerror(sj->rc));
		scan_end(g);
		free(sj);
		return;
	}
	for (size_t i = 0; i < sj->n; i++)
		if (gw_group_wants_topic(g, sj->names[i]) && gw_gtopic_get(g, sj->names[i], 2))
			g->scan_found++;
	gw_group_serve(g);
	if (sj->n_page < SCAN_PAGE) {
		scan_end(g);
		free(sj);
		return;
	}
	gw_bg_submit(&sj->job); /* the next page, after what other jobs are queued */
}

/*
 * Find the existing topics of @p g's parent that have work for it (a new scan replaces a running
 * one). "from":"tail" with no restart in between (@p tail_too 0) has nothing to find: the
 * subscription began now.
 */
static void
scan_start(struct gw_group *g, int tail_too)
{
	struct scan_job *sj;

	if (!g->parent[0] || (g->from_tail && !tail_too))
		return;
	sj = xcalloc(1, sizeof(*sj));
	sj->job.work = scan_work;
	sj->job.done = scan_done;
	sj->gw = g->gw;
	sj->db = g->gw->db;
	sj->id = g->id;
	sj->gen = ++g->scan_gen;
	strcpy(sj->group, g->name);
	strcpy(sj->parent, g->parent);
	sj->from_tail = g->from_tail;
	sj->since_ms = g->since_ms;
	g->scanning = 1;
	g->scan_found = 0;
	gw_bg_submit(&sj->job);
}

/* ---- The engine's ready set ---------------------------------------------------------------------- */

void
gw_groups_on_ready(struct gw *gw, const eng_ready *r)
{
	struct gw_group *g;
	struct gw_gtopic *gt;

	if (!gw->groups)
		return;
	if (!(g = find_by_sub(gw, r->sub)))
		return;
	if (r->flags & ENG_READY_OVERFLOW) {
		/*
		 * The engine's ready set was full and dropped which topics grew. Re-check what we
		 * can name now (known states, explicit topics, marked topics) and scan the parent
		 * for the rest (its pages come back over the next loop turns).
		 */
		struct mark_scan ms;

		LOG_WARN("group %s: the engine's ready set overflowed; re-checking its topics", g->name);
		for (size_t i = 0; i < g->hcap; i++)
			for (gt = g->htab[i]; gt; gt = gt->hnext)
				gt->end = UINT64_MAX; /* unknown: the next read finds the real end */
		scan_markers(g, 0, &ms);
		scan_start(g, 1);
		gw_group_recheck(g);
		return;
	}
	if (!gw_group_wants_topic(g, r->topic))
		return;
	if (!gw_gtopic_news(g, r))
		return;
	gw_group_serve(g);
}

/* ---- Restore ------------------------------------------------------------------------------------ */

static int
on_def(void *ctx, const char *key, const void *val, size_t len)
{
	struct gw *gw = ctx;
	const char *name = key + strlen(DEF_KEY_PREFIX);
	json_error_t jerr;
	struct gw_error e;
	struct gw_group *g;
	json_t *root;
	struct def d;
	int rc;

	root = json_loadb(val, len, 0, &jerr);
	if (!root || !gw_group_name_ok(name, strlen(name)) || def_parse(gw, root, 1, &d, &e)) {
		LOG_ERR("group record %s cannot be restored (%s); ignored", key,
			root ? e.message : jerr.text);
		json_decref(root);
		return 0;
	}
	json_decref(root);
	g = group_new(gw, name, d.id);
	g->created_ms = d.created_ms;
	apply_def(g, &d);
	g->since_ms = d.since_ms;
	if ((rc = subscribe_all(g)) != 0) {
		LOG_ERR("group %s: subscribing: %s", name, eng_strerror(rc));
		eng_unsub_all(gw->db, sub_id(g));
		gw_group_free_state(g);
		free(g);
		return 0;
	}
	group_link(gw, g);
	gw->m.groups++;
	return 0;
}

static void
on_scan_start(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct gw *gw = t->data;

	(void)loop;
	(void)revents;
	for (struct gw_group *g = gw->groups->list; g; g = g->next)
		scan_start(g, 1);
}

int
gw_groups_open(struct gw *gw)
{
	struct gw_groups *gs = xcalloc(1, sizeof(*gs));
	int rc;

	gw->groups = gs;
	gs->next_id = 1;
	if (getrandom(gs->key, sizeof(gs->key), 0) != (ssize_t)sizeof(gs->key)) {
		LOG_ERR("getrandom: %s", strerror(errno));
		return -1;
	}
	gw_consume_init(gw);
	if ((rc = gw_commits_start(gw, GW_COMMIT_THREADS)) != 0) {
		LOG_ERR("cannot start the offset commit threads: %s", strerror(rc));
		return -1;
	}
	if ((rc = eng_meta_scan(gw->db, DEF_KEY_PREFIX, on_def, gw)) != 0) {
		LOG_ERR("reading consumer groups: %s", eng_strerror(rc));
		return -1;
	}
	gw_journal_fold(gw); /* before any topic state reads its delivery counts */
	/* Topics a group never handed anything out of (no marker) that have work: its topic scan
	 * lists them, from the loop's first turn (the helper thread starts after this). */
	ev_timer_init(&gs->scan_w, on_scan_start, 0, 0);
	gs->scan_w.data = gw;
	ev_timer_start(gw->loop, &gs->scan_w);
	for (struct gw_group *g = gs->list; g; g = g->next) {
		struct mark_scan ms;

		scan_markers(g, 0, &ms);
		gw_group_recheck(g);
		LOG_INFO("group %s restored: %zu topics with work (more may come from its topic scan)",
			 g->name, g->n_ready);
	}
	return 0;
}

void
gw_groups_drain(struct gw *gw)
{
	if (!gw->groups)
		return;
	for (struct gw_group *g = gw->groups->list; g; g = g->next) {
		while (g->waiters.next != &g->waiters) {
			struct gw_waiter *w = g->waiters.next;

			gw_group_unpark(w);
			w->filled(w);
		}
	}
}

void
gw_groups_free(struct gw *gw)
{
	struct gw_groups *gs = gw->groups;

	if (!gs)
		return;
	for (struct gw_group *g = gs->list, *nx; g; g = nx) {
		nx = g->next;
		gw_group_free_state(g);
		free(g);
	}
	gw_consume_free(gw);
	for (struct gw_group *g = gs->graveyard, *nx; g; g = nx) {
		nx = g->next;
		free(g);
	}
	free(gs);
	gw->groups = NULL;
}
