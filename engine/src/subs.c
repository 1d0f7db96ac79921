/*
 * subs.c - the subscription set and the ready set (engine.h). Host threads subscribe and take
 * ready entries; the writer offers grown topics after each commit. All under db->s_mu.
 */
#define _GNU_SOURCE
#include "engine_int.h"

static int tsubs_eq(const hnode *n, const void *key)
{
	return strcmp(((const topic_subs *)n)->name, key) == 0;
}

static int subtopics_eq(const hnode *n, const void *key)
{
	return ((const sub_topics *)n)->sub == *(const uint64_t *)key;
}

typedef struct ready_key {
	uint64_t sub;
	const char *topic;
} ready_key;

static int ready_eq(const hnode *n, const void *key)
{
	const ready_node *r = (const ready_node *)n;
	const ready_key *k = key;
	return r->sub == k->sub && strcmp(r->topic, k->topic) == 0;
}

static uint64_t ready_hash(uint64_t sub, const char *name)
{
	return hmap_hash(name, strlen(name), sub * 0x9E3779B97F4A7C15ull);
}

/* Add (sub, topic) to the ready set, or refresh its offset (an entry keeps the first message that
 * made it ready: @p first and its priority). A deletion (@p first == @p next_offset: no message)
 * replaces whatever the entry said, and the first message after a deletion replaces the deletion:
 * offsets start again at 0, so the entry must name the recreated topic's first message, not the
 * old one's. Caller holds s_mu. */
static void ready_add(eng_db *db, uint64_t sub, const char *topic_name, uint64_t next_offset,
		      uint64_t first, int first_prio)
{
	ready_key k = {sub, topic_name};
	uint64_t h = ready_hash(sub, topic_name);
	ready_node *r = (ready_node *)hmap_find(&db->ready_map, h, ready_eq, &k);
	if (r) {
		if (first >= next_offset || r->first_offset >= r->next_offset) {
			r->next_offset = next_offset;
			r->first_offset = first;
			r->first_priority = first_prio;
		} else if (next_offset > r->next_offset) {
			r->next_offset = next_offset;
		}
		return;
	}
	uint32_t cap = db->cfg.ready_max ? db->cfg.ready_max : 65536;
	uint32_t flags = 0;
	if (db->ready_n >= cap) {
		/* Full: one overflow marker per subscriber tells it to re-check all its topics. */
		topic_name = "";
		flags = ENG_READY_OVERFLOW;
		k.topic = "";
		h = ready_hash(sub, "");
		if (hmap_find(&db->ready_map, h, ready_eq, &k))
			return;
	}
	r = xcalloc(1, sizeof *r);
	r->hn.hash = h;
	r->sub = sub;
	r->next_offset = next_offset;
	r->first_offset = flags ? 0 : first;
	r->first_priority = flags ? ENG_PRIORITY_NONE : first_prio;
	r->flags = flags;
	strcpy(r->topic, topic_name);
	hmap_insert(&db->ready_map, &r->hn);
	if (db->ready_tail)
		db->ready_tail->next = r;
	else
		db->ready_head = r;
	db->ready_tail = r;
	db->ready_n++;
}

static int event_matches(const parent_sub *ps, const topic *t)
{
	if (!ps->n_events || t->n_events > 8)
		return 1;
	for (size_t i = 0; i < t->n_events; i++)
		for (size_t j = 0; j < ps->n_events; j++)
			if (strcmp(t->events[i], ps->events[j]) == 0)
				return 1;
	return 0;
}

/* Tell every subscriber of @t that it grew. Returns how many entries were offered. */
size_t subs_notify_topic(eng_db *db, const topic *t, uint64_t next, uint64_t first, int first_prio)
{
	size_t n = 0;
	topic_subs *ts = (topic_subs *)hmap_find(&db->tsubs, tc_hash(t->name), tsubs_eq, t->name);
	if (ts)
		for (size_t i = 0; i < ts->n; i++, n++)
			ready_add(db, ts->subs[i], t->name, next, first, first_prio);
	for (parent_sub *ps = db->psubs; ps; ps = ps->next)
		if (ps->parent == t->parent->name || strcmp(ps->parent, t->parent->name) == 0)
			if (event_matches(ps, t)) {
				ready_add(db, ps->sub, t->name, next, first, first_prio);
				n++;
			}
	return n;
}

int eng_sub_topic(eng_db *db, uint64_t sub, const char *topic_name)
{
	const parent_def *p;
	int rc = db_topic_parent(db, topic_name, NULL, &p);
	if (rc)
		return rc;
	if (!sub)
		return ENG_EINVAL;
	pthread_mutex_lock(&db->s_mu);
	uint64_t h = tc_hash(topic_name);
	topic_subs *ts = (topic_subs *)hmap_find(&db->tsubs, h, tsubs_eq, topic_name);
	if (!ts) {
		size_t len = strlen(topic_name);
		ts = xcalloc(1, sizeof *ts + len + 1);
		memcpy(ts->name, topic_name, len + 1);
		ts->hn.hash = h;
		hmap_insert(&db->tsubs, &ts->hn);
	}
	for (size_t i = 0; i < ts->n; i++)
		if (ts->subs[i] == sub)
			goto out; /* already subscribed */
	if (ts->n == ts->cap) {
		ts->cap = ts->cap ? ts->cap * 2 : 2;
		ts->subs = xrealloc(ts->subs, ts->cap * sizeof *ts->subs);
	}
	ts->subs[ts->n++] = sub;
	uint64_t sh = hmap_hash(&sub, sizeof sub, 1);
	sub_topics *st = (sub_topics *)hmap_find(&db->subtopics, sh, subtopics_eq, &sub);
	if (!st) {
		st = xcalloc(1, sizeof *st);
		st->sub = sub;
		st->hn.hash = sh;
		hmap_insert(&db->subtopics, &st->hn);
	}
	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 2;
		st->names = xrealloc(st->names, st->cap * sizeof *st->names);
	}
	st->names[st->n++] = xstrdup(topic_name);
out:
	pthread_mutex_unlock(&db->s_mu);
	return 0;
}

int eng_sub_parent(eng_db *db, uint64_t sub, const char *parent, const char *const *events,
		   size_t n_events)
{
	size_t plen = strnlen(parent, ENG_PARENT_MAX + 1);
	if (names_parent_check(parent, plen))
		return ENG_EBADNAME;
	if (!db_find_parent(db, parent, plen))
		return ENG_ENOPARENT;
	if (!sub)
		return ENG_EINVAL;
	for (size_t i = 0; i < n_events; i++)
		if (eng_event_name_check(events[i], strnlen(events[i], ENG_EVENT_MAX + 1)))
			return ENG_EBADNAME;
	parent_sub *ps = xcalloc(1, sizeof *ps);
	ps->sub = sub;
	memcpy(ps->parent, parent, plen + 1);
	ps->n_events = n_events;
	ps->events = n_events ? xcalloc(n_events, sizeof *ps->events) : NULL;
	for (size_t i = 0; i < n_events; i++)
		strcpy(ps->events[i], events[i]);
	pthread_mutex_lock(&db->s_mu);
	/* Replace an earlier subscription of the same subscriber to the same parent. */
	for (parent_sub **pp = &db->psubs; *pp; pp = &(*pp)->next)
		if ((*pp)->sub == sub && strcmp((*pp)->parent, parent) == 0) {
			parent_sub *old = *pp;
			*pp = old->next;
			free(old->events);
			free(old);
			break;
		}
	ps->next = db->psubs;
	db->psubs = ps;
	pthread_mutex_unlock(&db->s_mu);
	return 0;
}

/* Remove @sub from topic @name's subscriber list. Caller holds s_mu. Returns 1 if it was there. */
static int tsubs_remove(eng_db *db, uint64_t sub, const char *name)
{
	topic_subs *ts = (topic_subs *)hmap_find(&db->tsubs, tc_hash(name), tsubs_eq, name);
	if (!ts)
		return 0;
	for (size_t i = 0; i < ts->n; i++)
		if (ts->subs[i] == sub) {
			ts->subs[i] = ts->subs[--ts->n];
			if (!ts->n) {
				hmap_remove(&db->tsubs, &ts->hn);
				free(ts->subs);
				free(ts);
			}
			return 1;
		}
	return 0;
}

/* Drop ready entries of @sub (all of them if @topic_name is NULL). Caller holds s_mu. */
static void ready_drop(eng_db *db, uint64_t sub, const char *topic_name)
{
	ready_node **pp = &db->ready_head, *prev = NULL;
	while (*pp) {
		ready_node *r = *pp;
		if (r->sub == sub && (!topic_name || strcmp(r->topic, topic_name) == 0)) {
			*pp = r->next;
			if (db->ready_tail == r)
				db->ready_tail = prev;
			hmap_remove(&db->ready_map, &r->hn);
			db->ready_n--;
			free(r);
		} else {
			prev = r;
			pp = &r->next;
		}
	}
}

int eng_unsub(eng_db *db, uint64_t sub, const char *name)
{
	int found = 0;
	pthread_mutex_lock(&db->s_mu);
	if (strchr(name, '/')) {
		found = tsubs_remove(db, sub, name);
		uint64_t sh = hmap_hash(&sub, sizeof sub, 1);
		sub_topics *st = (sub_topics *)hmap_find(&db->subtopics, sh, subtopics_eq, &sub);
		for (size_t i = 0; st && i < st->n; i++)
			if (strcmp(st->names[i], name) == 0) {
				free(st->names[i]);
				st->names[i] = st->names[--st->n];
				break;
			}
		if (found && db->ready_n)
			ready_drop(db, sub, name);
	} else {
		for (parent_sub **pp = &db->psubs; *pp; pp = &(*pp)->next)
			if ((*pp)->sub == sub && strcmp((*pp)->parent, name) == 0) {
				parent_sub *old = *pp;
				*pp = old->next;
				free(old->events);
				free(old);
				found = 1;
				break;
			}
	}
	pthread_mutex_unlock(&db->s_mu);
	return found ? 0 : ENG_ENOTFOUND;
}

void eng_unsub_all(eng_db *db, uint64_t sub)
{
	pthread_mutex_lock(&db->s_mu);
	uint64_t sh = hmap_hash(&sub, sizeof sub, 1);
	sub_topics *st = (sub_topics *)hmap_find(&db->subtopics, sh, subtopics_eq, &sub);
	if (st) {
		for (size_t i = 0; i < st->n; i++) {
			tsubs_remove(db, sub, st->names[i]);
			free(st->names[i]);
		}
		hmap_remove(&db->subtopics, &st->hn);
		free(st->names);
		free(st);
	}
	for (parent_sub **pp = &db->psubs; *pp;) {
		parent_sub *ps = *pp;
		if (ps->sub == sub) {
			*pp = ps->next;
			free(ps->events);
			free(ps);
		} else {
			pp = &ps->next;
		}
	}
	if (db->ready_n)
		ready_drop(db, sub, NULL);
	pthread_mutex_unlock(&db->s_mu);
}

size_t eng_ready_take(eng_db *db, eng_ready *out, size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&db->s_mu);
	while (n < max && db->ready_head) {
		ready_node *r = db->ready_head;
		db->ready_head = r->next;
		if (!db->ready_head)
			db->ready_tail = NULL;
		hmap_remove(&db->ready_map, &r->hn);
		db->ready_n--;
		out[n].sub = r->sub;
		out[n].flags = r->flags;
		out[n].next_offset = r->next_offset;
		out[n].first_offset = r->first_offset;
		out[n].first_priority = r->first_priority;
		strcpy(out[n].topic, r->topic);
		n++;
		free(r);
	}
	pthread_mutex_unlock(&db->s_mu);
	return n;
}

void subs_free_all(eng_db *db)
{
	HMAP_FOREACH_SAFE(&db->tsubs, n, tmp)
	{
		topic_subs *ts = (topic_subs *)n;
		free(ts->subs);
		free(ts);
	}
	hmap_free(&db->tsubs);
	HMAP_FOREACH_SAFE(&db->subtopics, n, tmp)
	{
		sub_topics *st = (sub_topics *)n;
		for (size_t i = 0; i < st->n; i++)
			free(st->names[i]);
		free(st->names);
		free(st);
	}
	hmap_free(&db->subtopics);
	for (parent_sub *ps = db->psubs, *nx; ps; ps = nx) {
		nx = ps->next;
		free(ps->events);
		free(ps);
	}
	for (ready_node *r = db->ready_head, *nx; r; r = nx) {
		nx = r->next;
		free(r);
	}
	hmap_free(&db->ready_map);
}
