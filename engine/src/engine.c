/*
 * engine.c - the engine behind engine.h: the append queue and the writer thread (group commit),
 * the cache of active topics, the subscription and ready sets, reads, recovery and retention.
 *
 * Locks (never two at once, except q_mu alone in the writer's wait):
 *   q_mu  the append queue (host threads push, the writer takes everything at once)
 *   t_mu  the active-topic cache (the writer inserts and evicts; readers copy fields out)
 *   s_mu  subscriptions and the ready set (host threads and the writer)
 *   c_mu  finished requests waiting for eng_poll_completions()
 */
#define _GNU_SOURCE
#include "engine.h"

#include "cl.h"
#include "hmap.h"
#include "idx.h"
#include "names.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_MSG (1u << 20)
#define LIMIT_MAX_MSG (16u << 20)
#define DAY_MS (24ull * 3600 * 1000)
/* An open block goes to RocksDB when it holds this many entries, or when the sweep passes it: */
#define BLOCK_ENTRIES 64
/* once per cycle, which bounds how much of the log recovery re-dispatches after a crash. */
#define SWEEP_CYCLE_MS 5000

/* ---- Small helpers ------------------------------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *eng_strerror(int rc)
{
	switch (rc) {
	case ENG_OK: return "success";
	case ENG_EBADNAME: return "malformed topic, parent, event or key name";
	case ENG_ENOPARENT: return "the topic's parent is not declared";
	case ENG_ETOOBIG: return "message larger than its parent allows";
	case ENG_ENOTFOUND: return "not found";
	case ENG_ECORRUPT: return "corrupt record or index entry";
	case ENG_EFULL: return "storage full: appends refused until the engine is reopened";
	case ENG_EFAILED: return "storage failed: appends refused until the engine is reopened";
	case ENG_ECLOSING: return "the engine is closing";
	case ENG_EMISMATCH: return "expected offset does not match the topic's next offset";
	case ENG_EINVAL: return "invalid argument";
	case ENG_EBUSY: return "append queue full: retry later";
	default: return rc > 0 ? strerror(rc) : "unknown engine error";
	}
}

void eng_config_init(eng_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->durability = ENG_DURABLE_FSYNC;
}

/* ---- Types -------------------------------------------------------------------------------------- */

typedef struct parent_def {
	char name[ENG_PARENT_MAX + 1];
	size_t len;
	uint32_t max_msg;
	uint64_t ttl_ms, max_retained;
	uint8_t priority;
	uint64_t dedup_window_ms;
	uint32_t dedup_max;
} parent_def;

/* A producer key remembered in a topic's dedup index (writer only). */
typedef struct dd_node {
	hnode hn;
	struct dd_node *next;   /* insertion order: the oldest is forgotten first */
	uint64_t offset;        /* the message's offset, or a request's first offset */
	uint32_t count;         /* messages of the request (request keys) */
	uint64_t time_ms;
	uint8_t is_req, len;
	char key[];
} dd_node;

/* An active lite topic. Only the writer creates, changes the write-side fields of, and frees
 * one; readers look it up under t_mu and copy what they need. */
typedef struct topic {
	hnode hn;                  /* keyed by name */
	uint64_t tid;
	uint64_t next;             /* next offset to assign (writer only) */
	uint64_t visible;          /* offsets below are durable and indexed (t_mu) */
	uint64_t first;            /* first retained offset from the metadata (t_mu) */
	uint64_t created_ms, last_write_ms; /* (t_mu) */
	uint64_t last_used_mono;   /* for eviction (writer) */
	const parent_def *parent;
	/* The open block: index entries of offsets blk_first.. that are in the log but not yet in
	 * RocksDB. The writer appends and flushes it (under t_mu, as readers copy from it). */
	uint64_t blk_first;
	idx_entry *blk;
	size_t blk_n, blk_cap;
	/* Per-batch scratch (writer only). */
	struct topic *batch_next;
	int in_batch, fresh;
	/* The dedup index of producer keys, built from the log on the first keyed append. */
	int dd_loaded;
	hmap dd;
	dd_node *dd_head, *dd_tail;
	const char *events[8];     /* distinct event names appended in this batch */
	size_t n_events;           /* > 8 means "too many to list": match every filter */
	char name[];
} topic;

/* OP_REDECLARE: log a topic's create record again before retention deletes the segment that
 * holds it (expected = that segment's end), so the log alone can always name the topic. */
enum req_op { OP_APPEND, OP_REDECLARE, OP_DELETE, OP_EXPIRE, OP_BARRIER };

typedef struct msg_ref {
	uint32_t ev_off, ev_len, key_off, key_len, data_off;
	uint32_t len;
} msg_ref;

typedef struct req {
	struct req *next;
	enum req_op op;
	char topic[ENG_TOPIC_MAX + 1];
	const parent_def *parent;
	uint64_t expected;        /* ENG_NO_EXPECT, or for OP_EXPIRE the idle cut-off time */
	eng_append_fn done;
	void *ctx;
	eng_append_result res;
	size_t bytes;             /* counted against queue_max_bytes */
	/* Synchronous ops (delete, barrier) wait on the db's done_cv. */
	int waited, finished;
	size_t n;
	msg_ref *msgs;
	uint8_t *blob;
	char rkey[ENG_KEY_MAX + 1]; /* the request's key, "" if none */
	int keyed;                  /* any key at all: per-message results below are kept */
	uint64_t *offsets;          /* per message (when keyed) */
	uint8_t *dup;
} req;

typedef struct topic_subs {
	hnode hn;
	uint64_t *subs;
	size_t n, cap;
	char name[];
} topic_subs;

typedef struct parent_sub {
	struct parent_sub *next;
	uint64_t sub;
	char parent[ENG_PARENT_MAX + 1];
	size_t n_events;
	char (*events)[ENG_EVENT_MAX + 1];
} parent_sub;

typedef struct ready_node {
	hnode hn;                 /* keyed by (sub, topic) for deduplication */
	struct ready_node *next;  /* FIFO order */
	uint64_t sub, next_offset;
	uint32_t flags;
	char topic[ENG_TOPIC_MAX + 1];
} ready_node;

typedef struct sub_topics {     /* per subscriber: the topics it names, for eng_unsub_all */
	hnode hn;
	uint64_t sub;
	char **names;
	size_t n, cap;
} sub_topics;

struct eng_db {
	eng_config cfg;
	char *dir;
	parent_def *parents;
	size_t n_parents;
	cl_log *log;
	idx *ix;
	int efd;

	pthread_mutex_t q_mu;
	pthread_cond_t q_cv;      /* the writer waits for work */
	pthread_cond_t done_cv;   /* synchronous requests wait for the writer */
	req *q_head, *q_tail;
	size_t q_bytes;
	int closing;
	int failed;               /* sticky: ENG_EFULL / ENG_EFAILED (read under q_mu or atomically) */
	pthread_t writer, maint;
	int maint_stop;
	pthread_mutex_t m_mu;
	pthread_cond_t m_cv;

	pthread_mutex_t t_mu;
	hmap topics;
	uint64_t next_tid;        /* writer only */
	uint64_t last_sync_mono, last_sweep_mono; /* writer only */
	int sweep_active;         /* the sweep (see sweep()), writer only */
	size_t sweep_nb, sweep_bucket;
	uint64_t sweep_start;
	idx_batch *batch;         /* writer only */

	pthread_mutex_t s_mu;
	hmap tsubs;               /* topic name -> topic_subs */
	hmap subtopics;           /* sub id -> sub_topics */
	parent_sub *psubs;
	hmap ready_map;
	ready_node *ready_head, *ready_tail;
	size_t ready_n;

	pthread_mutex_t c_mu;
	req *c_head, *c_tail;

	char *reserve_path;       /* space held back for RocksDB when the disk fills (see below) */

	eng_stats st;             /* counters, updated with __atomic */
};

#define STAT_ADD(db, f, v) __atomic_add_fetch(&(db)->st.f, (v), __ATOMIC_RELAXED)

static void logf_(eng_db *db, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(eng_db *db, int level, const char *fmt, ...)
{
	if (!db->cfg.log)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	db->cfg.log(db->cfg.cb_ctx, level, buf);
}

static const parent_def *find_parent(const eng_db *db, const char *name, size_t len)
{
	for (size_t i = 0; i < db->n_parents; i++)
		if (db->parents[i].len == len && memcmp(db->parents[i].name, name, len) == 0)
			return &db->parents[i];
	return NULL;
}

/* Validate a topic name and find its declared parent. */
static int topic_parent(const eng_db *db, const char *name, size_t *len_out, const parent_def **p)
{
	size_t len = strnlen(name, ENG_TOPIC_MAX + 1);
	if (len > ENG_TOPIC_MAX || eng_topic_name_check(name, len))
		return ENG_EBADNAME;
	const char *slash = memchr(name, '/', len);
	*p = find_parent(db, name, (size_t)(slash - name));
	if (!*p)
		return ENG_ENOPARENT;
	if (len_out)
		*len_out = len;
	return 0;
}

static int topic_eq(const hnode *n, const void *key)
{
	return strcmp(((const topic *)n)->name, key) == 0;
}

static uint64_t name_hash(const char *s)
{
	return hmap_hash(s, strlen(s), 0);
}

static void wake_host(eng_db *db)
{
	uint64_t one = 1;
	if (write(db->efd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is already non-zero, the host will wake anyway. */
	}
	if (db->cfg.wake)
		db->cfg.wake(db->cfg.cb_ctx);
}

/* ---- Subscriptions and the ready set ------------------------------------------------------------ */

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

/* Add (sub, topic) to the ready set, or refresh its offset. Caller holds s_mu. */
static void ready_add(eng_db *db, uint64_t sub, const char *topic_name, uint64_t next_offset)
{
	ready_key k = {sub, topic_name};
	uint64_t h = ready_hash(sub, topic_name);
	ready_node *r = (ready_node *)hmap_find(&db->ready_map, h, ready_eq, &k);
	if (r) {
		if (next_offset > r->next_offset)
			r->next_offset = next_offset;
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
static size_t notify_topic(eng_db *db, const topic *t, uint64_t next)
{
	size_t n = 0;
	topic_subs *ts = (topic_subs *)hmap_find(&db->tsubs, name_hash(t->name), tsubs_eq, t->name);
	if (ts)
		for (size_t i = 0; i < ts->n; i++, n++)
			ready_add(db, ts->subs[i], t->name, next);
	for (parent_sub *ps = db->psubs; ps; ps = ps->next)
		if (ps->parent == t->parent->name || strcmp(ps->parent, t->parent->name) == 0)
			if (event_matches(ps, t)) {
				ready_add(db, ps->sub, t->name, next);
				n++;
			}
	return n;
}

int eng_sub_topic(eng_db *db, uint64_t sub, const char *topic_name)
{
	const parent_def *p;
	int rc = topic_parent(db, topic_name, NULL, &p);
	if (rc)
		return rc;
	if (!sub)
		return ENG_EINVAL;
	pthread_mutex_lock(&db->s_mu);
	uint64_t h = name_hash(topic_name);
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
	if (!find_parent(db, parent, plen))
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
	topic_subs *ts = (topic_subs *)hmap_find(&db->tsubs, name_hash(name), tsubs_eq, name);
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
		strcpy(out[n].topic, r->topic);
		n++;
		free(r);
	}
	pthread_mutex_unlock(&db->s_mu);
	return n;
}

/* ---- The active-topic cache (writer side) ------------------------------------------------------ */

static topic *topic_new(const char *name, const parent_def *p)
{
	size_t len = strlen(name);
	topic *t = xcalloc(1, sizeof *t + len + 1);
	memcpy(t->name, name, len + 1);
	t->hn.hash = name_hash(name);
	t->parent = p;
	return t;
}

static void topic_free(topic *t)
{
	for (dd_node *d = t->dd_head, *nx; d; d = nx) {
		nx = d->next;
		free(d);
	}
	hmap_free(&t->dd);
	free(t->blk);
	free(t);
}

/* The writer's view of @name: from the cache, else loaded from the index, else NULL. */
static int topic_load(eng_db *db, const char *name, const parent_def *p, topic **out)
{
	uint64_t h = name_hash(name);
	pthread_mutex_lock(&db->t_mu);
	topic *t = (topic *)hmap_find(&db->topics, h, topic_eq, name);
	pthread_mutex_unlock(&db->t_mu);
	if (t) {
		*out = t;
		return 0;
	}
	idx_topic_meta m;
	int rc = idx_topic_get(db->ix, name, &m);
	if (rc)
		return rc;
	uint64_t next, last;
	if ((rc = idx_cq_last(db->ix, m.id, &next, &last)) != 0)
		return rc;
	t = topic_new(name, p);
	t->tid = m.id;
	t->next = t->visible = t->blk_first = next;
	t->first = m.first_offset;
	t->created_ms = m.created_ms;
	t->last_write_ms = last ? last : m.created_ms;
	pthread_mutex_lock(&db->t_mu);
	hmap_insert(&db->topics, &t->hn);
	pthread_mutex_unlock(&db->t_mu);
	*out = t;
	return 0;
}

static void topic_forget(eng_db *db, topic *t)
{
	pthread_mutex_lock(&db->t_mu);
	hmap_remove(&db->topics, &t->hn);
	pthread_mutex_unlock(&db->t_mu);
	topic_free(t);
}

/* Add an entry to @t's open block. Caller holds t_mu. */
static void blk_push(topic *t, uint64_t pos, uint32_t len, uint64_t time)
{
	if (t->blk_n == t->blk_cap) {
		t->blk_cap = t->blk_cap ? t->blk_cap * 2 : 4;
		t->blk = xrealloc(t->blk, t->blk_cap * sizeof *t->blk);
	}
	t->blk[t->blk_n++] = (idx_entry){pos, len, time};
}

/* Put @t's open block into the batch as one consume-queue run and empty it. Caller holds t_mu
 * and writes the batch before anyone could need the entries from RocksDB (before eviction). */
static void blk_stage(eng_db *db, topic *t)
{
	if (!t->blk_n)
		return;
	idx_batch_cq_run(db->batch, t->tid, t->blk_first, t->blk, t->blk_n);
	t->blk_first += t->blk_n;
	t->blk_n = 0;
	if (t->blk_cap > BLOCK_ENTRIES) { /* a burst grew it: give the memory back */
		free(t->blk);
		t->blk = NULL;
		t->blk_cap = 0;
	}
}

/*
 * The sweep: open blocks must reach RocksDB eventually (so the checkpoint can move and recovery
 * stays short), and idle topics must leave memory. Doing either for every topic at once would
 * stall the writer for as long as RocksDB takes to absorb one put per active topic (a third of a
 * second at 100,000 topics), so the writer walks the cache a few buckets per turn, paced to cover
 * it once per SWEEP_CYCLE_MS. Each visited topic's block is staged whole; idle topics are evicted
 * once the batch holding their block is written. When a cycle ends, every entry older than the
 * log end recorded at its start has been written, and that position becomes the checkpoint.
 * Growing the table reshuffles buckets, so a cycle that sees it grow starts over.
 */
static void sweep(eng_db *db, uint64_t mono, int whole)
{
	uint64_t idle = db->cfg.topic_cache_idle_ms ? db->cfg.topic_cache_idle_ms : 10000;
	topic *victims = NULL;
	int cycle_done = 0;
	if (cl_failed(db->log))
		return; /* nothing new is durable; recovery will re-dispatch from the old checkpoint */
	pthread_mutex_lock(&db->t_mu);
	size_t nb = db->topics.nb;
	if (!db->sweep_active || db->sweep_nb != nb) {
		db->sweep_active = 1;
		db->sweep_nb = nb;
		db->sweep_bucket = 0;
		db->sweep_start = cl_end(db->log);
	}
	uint64_t dt = mono - db->last_sweep_mono;
	size_t budget = whole ? nb : (size_t)((uint64_t)nb * dt / SWEEP_CYCLE_MS) + 64;
	for (; budget && db->sweep_bucket < nb; budget--, db->sweep_bucket++)
		for (hnode *n = db->topics.b[db->sweep_bucket]; n; n = n->next) {
			topic *t = (topic *)n;
			blk_stage(db, t);
			if (mono - t->last_used_mono >= idle) {
				t->batch_next = victims;
				victims = t;
			}
		}
	if (db->sweep_bucket >= nb) {
		cycle_done = 1;
		db->sweep_active = 0;
	}
	pthread_mutex_unlock(&db->t_mu);
	db->last_sweep_mono = mono;
	if (cycle_done)
		idx_batch_checkpoint(db->batch, db->sweep_start, db->next_tid);
	int rc = idx_batch_write(db->ix, db->batch);
	idx_batch_clear(db->batch);
	if (rc) {
		/* Keep the victims: their entries are still only in memory (and in the log). */
		logf_(db, 1, "index write failed during sweep: %s", eng_strerror(rc));
		return;
	}
	if (!victims)
		return;
	pthread_mutex_lock(&db->t_mu);
	for (topic *t = victims, *nx; t; t = nx) {
		nx = t->batch_next;
		t->batch_next = NULL;
		hmap_remove(&db->topics, &t->hn);
		topic_free(t);
	}
	pthread_mutex_unlock(&db->t_mu);
}

/* ---- Full disks --------------------------------------------------------------------------------- */
/* The index shares the log's file system. When the log meets ENOSPC, RocksDB must still be able
 * to flush and close (its own out-of-space paths are fragile: Debian's build even asserts). So the
 * engine holds a small reserve file, and gives it back the moment the log is full. */
#define RESERVE_BYTES (8u << 20)

static void take_reserve(eng_db *db)
{
	int fd = open(db->reserve_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int rc = posix_fallocate(fd, 0, RESERVE_BYTES);
	close(fd);
	if (rc) {
		unlink(db->reserve_path); /* no room for it: the next full disk meets RocksDB unguarded */
		logf_(db, 1, "cannot reserve %u bytes for a full disk: %s", RESERVE_BYTES, strerror(rc));
	}
}

static void release_reserve(eng_db *db)
{
	unlink(db->reserve_path);
}

/* ---- The writer: group commit ------------------------------------------------------------------ */

static void note_event(topic *t, const char *ev)
{
	if (t->n_events > 8)
		return;
	for (size_t i = 0; i < t->n_events; i++)
		if (strcmp(t->events[i], ev) == 0)
			return;
	if (t->n_events == 8)
		t->n_events = 9;
	else
		t->events[t->n_events++] = ev;
}

/* Create topic @name: a create record in the log, metadata in the batch. */
static int topic_create(eng_db *db, const char *name, const parent_def *p, uint64_t now, topic **out)
{
	uint64_t pos;
	uint64_t tid = db->next_tid++;
	/* A create record's offset field holds the topic's creation time (see docs/storage.md). */
	int rc = cl_add(db->log, CL_REC_TOPIC_CREATE, tid, now, now, NULL, 0, NULL, 0, name, strlen(name),
			&pos);
	if (rc)
		return rc;
	topic *t = topic_new(name, p);
	t->tid = tid;
	t->created_ms = t->last_write_ms = now;
	t->fresh = 1;
	idx_topic_meta m = {tid, now, 0, pos};
	idx_batch_topic_put(db->batch, name, &m);
	pthread_mutex_lock(&db->t_mu);
	hmap_insert(&db->topics, &t->hn);
	pthread_mutex_unlock(&db->t_mu);
	STAT_ADD(db, topics, 1);
	*out = t;
	return 0;
}

/* ---- Reading a topic's index entries (any thread) ------------------------------------------- */

/* The entries of one topic from an offset on, in order: first from RocksDB, then from the
 * topic's open block in the cache. The writer may move a block to RocksDB between the two looks;
 * then the cursor is reopened where the reader stands, so nothing is skipped. */
typedef struct entry_src {
	eng_db *db;
	const char *name;
	uint64_t tid, want, limit;  /* next offset to yield; stop before limit (the visible end) */
	idx_cursor *c;
	int cursor_done;
	uint64_t reopened_at;
	int yielded;                /* the first entry may be past want (retention): see idx_cursor */
	idx_entry mem[64];          /* entries copied out of the open block */
	size_t mem_n, mem_i;
	uint64_t mem_first;
} entry_src;

static int src_next(entry_src *s, uint64_t *off, idx_entry *e)
{
	for (;;) {
		if (s->want >= s->limit)
			return 0;
		if (s->mem_i < s->mem_n) {
			*off = s->mem_first + s->mem_i;
			*e = s->mem[s->mem_i++];
			s->want = *off + 1;
			s->yielded = 1;
			return 1;
		}
		if (!s->cursor_done) {
			int rc;
			if (!s->c && (rc = idx_cursor_open(s->db->ix, s->tid, s->want, &s->c)) != 0)
				return rc;
			int got = idx_cursor_next(s->c, off, e);
			if (got < 0)
				return got;
			if (got == 1 && (*off == s->want || (!s->yielded && *off > s->want))) {
				s->want = *off + 1;
				s->yielded = 1;
				return 1;
			}
			s->cursor_done = 1;
		}
		int in_rocksdb = 0;
		pthread_mutex_lock(&s->db->t_mu);
		topic *t = (topic *)hmap_find(&s->db->topics, name_hash(s->name), topic_eq, s->name);
		if (t && t->tid == s->tid && t->blk_first <= s->want && s->want < t->blk_first + t->blk_n) {
			size_t i0 = (size_t)(s->want - t->blk_first);
			size_t k = t->blk_n - i0;
			if (k > 64)
				k = 64;
			memcpy(s->mem, t->blk + i0, k * sizeof *s->mem);
			s->mem_first = s->want;
			s->mem_n = k;
			s->mem_i = 0;
		} else {
			in_rocksdb = !t || t->tid != s->tid || s->want < t->blk_first;
		}
		pthread_mutex_unlock(&s->db->t_mu);
		if (s->mem_n > s->mem_i)
			continue;
		if (!in_rocksdb || s->reopened_at == s->want + 1)
			return 0;
		s->reopened_at = s->want + 1;
		idx_cursor_close(s->c);
		s->c = NULL;
		s->cursor_done = 0;
	}
}

/* ---- Producer keys: the dedup index ------------------------------------------------------------ */

typedef struct dd_key {
	const char *key;
	size_t len;
	uint8_t is_req;
} dd_key;

static int dd_eq(const hnode *n, const void *k)
{
	const dd_node *d = (const dd_node *)n;
	const dd_key *x = k;
	return d->is_req == x->is_req && d->len == x->len && memcmp(d->key, x->key, x->len) == 0;
}

static dd_node *dd_find(topic *t, int is_req, const char *key, size_t len, uint64_t now)
{
	dd_key k = {key, len, (uint8_t)is_req};
	dd_node *d = (dd_node *)hmap_find(&t->dd, hmap_hash(key, len, (uint64_t)is_req + 11), dd_eq, &k);
	return d && now - d->time_ms <= t->parent->dedup_window_ms ? d : NULL;
}

/* Remember a key; forget the oldest ones past the window or the per-topic cap. */
static void dd_add(topic *t, int is_req, const char *key, size_t len, uint64_t offset,
		   uint32_t count, uint64_t time_ms, uint64_t now)
{
	dd_node *d = xcalloc(1, sizeof *d + len + 1);
	d->hn.hash = hmap_hash(key, len, (uint64_t)is_req + 11);
	d->offset = offset;
	d->count = count;
	d->time_ms = time_ms;
	d->is_req = (uint8_t)is_req;
	d->len = (uint8_t)len;
	memcpy(d->key, key, len);
	hmap_insert(&t->dd, &d->hn);
	if (t->dd_tail)
		t->dd_tail->next = d;
	else
		t->dd_head = d;
	t->dd_tail = d;
	while (t->dd_head && (t->dd.n > t->parent->dedup_max ||
			      now - t->dd_head->time_ms > t->parent->dedup_window_ms)) {
		dd_node *old = t->dd_head;
		t->dd_head = old->next;
		if (!t->dd_head)
			t->dd_tail = NULL;
		hmap_remove(&t->dd, &old->hn);
		free(old);
	}
}

/* Build @t's dedup index from the log: the keys of its messages stored within the window.
 * Lazy (the first keyed append after the topic was loaded), so unkeyed traffic never pays. */
static int dd_load(eng_db *db, topic *t, uint64_t now)
{
	uint64_t since = now > t->parent->dedup_window_ms ? now - t->parent->dedup_window_ms : 0;
	uint64_t from;
	int rc = idx_cq_since(db->ix, t->tid, since, &from);
	if (rc)
		return rc;
	if (t->blk_n && t->blk_first < from)
		from = t->blk_first;
	t->dd_loaded = 1;
	if (from >= t->visible)
		return 0;
	entry_src src = {.db = db, .name = t->name, .tid = t->tid, .want = from, .limit = t->visible};
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t off, req_first = 0;
	uint32_t req_count = 0;
	char rkey[ENG_KEY_MAX + 1];
	size_t rkl = 0;
	idx_entry e;
	while ((rc = src_next(&src, &off, &e)) == 1) {
		if (e.len > cap) {
			cap = e.len;
			buf = xrealloc(buf, cap);
		}
		cl_rec rec;
		if ((rc = cl_read(db->log, e.pos, e.len, buf)) != 0 || (rc = cl_decode(buf, e.len, &rec)) != 0)
			break;
		if (rec.time_ms < since)
			continue;
		if (rec.key_len)
			dd_add(t, 0, rec.key, rec.key_len, off, 1, rec.time_ms, now);
		if (rec.rkey_len) { /* the first record of a keyed request: count its chain */
			memcpy(rkey, rec.rkey, rec.rkey_len);
			rkl = rec.rkey_len;
			req_first = off;
			req_count = 0;
		}
		if (rkl) {
			req_count++;
			if (!(rec.flags & CL_F_MORE)) {
				dd_add(t, 1, rkey, rkl, req_first, req_count, rec.time_ms, now);
				rkl = 0;
			}
		}
	}
	idx_cursor_close(src.c);
	free(buf);
	return rc < 0 || rc > 1 ? rc : 0;
}

/* Queue @r's records. Returns 0 or a code for this request only (sticky codes stop the batch). */
static int stage_append(eng_db *db, req *r, uint64_t now, uint64_t mono, topic **touched)
{
	topic *t = NULL;
	int rc = topic_load(db, r->topic, r->parent, &t);
	if (rc == ENG_ENOTFOUND) {
		if (r->expected != ENG_NO_EXPECT && r->expected != 0) {
			r->res.next_offset = 0;
			return ENG_EMISMATCH;
		}
		rc = topic_create(db, r->topic, r->parent, now, &t);
	}
	if (rc)
		return rc;
	t->last_used_mono = mono;
	size_t fresh = r->n; /* messages to append (not duplicates) */
	if (r->keyed) {
		if (!t->dd_loaded && (rc = dd_load(db, t, now)) != 0)
			return rc;
		dd_node *d = r->rkey[0] ? dd_find(t, 1, r->rkey, strlen(r->rkey), now) : NULL;
		if (d) {
			/* The whole request was appended before: answer as the first time. */
			for (size_t i = 0; i < r->n; i++) {
				r->offsets[i] = d->offset + i;
				r->dup[i] = 1;
			}
			r->res = (eng_append_result){.first_offset = d->offset, .count = d->count,
						     .next_offset = t->next, .duplicate = 1,
						     .n_dups = (uint32_t)r->n};
			STAT_ADD(db, duplicates, r->n);
			return 0;
		}
		fresh = 0;
		for (size_t i = 0; i < r->n; i++) {
			const msg_ref *m = &r->msgs[i];
			const char *key = (const char *)r->blob + m->key_off;
			r->dup[i] = 0;
			if (!m->key_len)
				goto is_fresh;
			if ((d = dd_find(t, 0, key, m->key_len, now)) != NULL) {
				r->dup[i] = 1;
				r->offsets[i] = d->offset;
				continue;
			}
			for (size_t j = 0; j < i; j++) /* the same key twice in one request */
				if (r->msgs[j].key_len == m->key_len &&
				    !memcmp(r->blob + r->msgs[j].key_off, key, m->key_len)) {
					r->dup[i] = 1;
					r->offsets[i] = r->offsets[j];
					break;
				}
			if (r->dup[i])
				continue;
		is_fresh:
			r->offsets[i] = t->next + fresh++;
		}
	}
	if (fresh && r->expected != ENG_NO_EXPECT && r->expected != t->next) {
		r->res.next_offset = t->next;
		return ENG_EMISMATCH;
	}
	if (!fresh) {
		r->res = (eng_append_result){.first_offset = r->offsets[0], .count = (uint32_t)r->n,
					     .next_offset = t->next, .duplicate = 1,
					     .n_dups = (uint32_t)r->n};
		STAT_ADD(db, duplicates, r->n);
		return 0;
	}
	if (!t->in_batch) {
		t->in_batch = 1;
		t->n_events = 0;
		t->batch_next = *touched;
		*touched = t;
	}
	uint64_t first = t->next, o = first;
	size_t rkl = strlen(r->rkey);
	pthread_mutex_lock(&db->t_mu);
	for (size_t i = 0; i < r->n; i++) {
		const msg_ref *m = &r->msgs[i];
		if (r->keyed && r->dup[i])
			continue;
		uint64_t pos;
		const char *ev = (const char *)r->blob + m->ev_off;
		uint16_t flags = CL_REC_MSG | (o + 1 < first + fresh ? CL_F_MORE : 0);
		/* The request key rides on the request's first record. */
		size_t rk = o == first ? rkl : 0;
		rc = cl_add_rk(db->log, flags, t->tid, o, now, ev, m->ev_len,
			       (const char *)r->blob + m->key_off, m->key_len, r->rkey, rk,
			       r->blob + m->data_off, m->len, &pos);
		if (rc)
			break;
		blk_push(t, pos, cl_rec_size(m->ev_len, m->key_len + rk, m->len), now);
		note_event(t, ev);
		o++;
	}
	pthread_mutex_unlock(&db->t_mu);
	if (rc)
		return rc; /* sticky: the log refuses everything from here on */
	t->next = first + fresh;
	r->res.first_offset = r->keyed ? r->offsets[0] : first;
	r->res.count = (uint32_t)r->n;
	r->res.next_offset = t->next;
	if (r->keyed) {
		for (size_t i = 0; i < r->n; i++)
			if (!r->dup[i] && r->msgs[i].key_len)
				dd_add(t, 0, (const char *)r->blob + r->msgs[i].key_off, r->msgs[i].key_len,
				       r->offsets[i], 1, now, now);
			else if (r->dup[i])
				r->res.n_dups++;
		if (rkl)
			dd_add(t, 1, r->rkey, rkl, r->res.first_offset, r->res.count, now, now);
		STAT_ADD(db, duplicates, r->res.n_dups);
	}
	return 0;
}

/* Make everything staged durable, index it, publish it to readers and subscribers. */
static int commit_staged(eng_db *db, topic *touched, uint64_t now)
{
	int rc = cl_flush(db->log);
	if (!rc && db->cfg.durability == ENG_DURABLE_FSYNC) {
		rc = cl_sync(db->log);
		STAT_ADD(db, fsyncs, 1);
		db->last_sync_mono = mono_ms();
	}
	if (!rc) {
		/* Only full blocks go to RocksDB now; the rest wait in memory for the next checkpoint
		 * (readers find them in the cache), so a busy topic costs one put per block, not one
		 * per batch. New topics' metadata is in the batch already. */
		pthread_mutex_lock(&db->t_mu);
		for (topic *t = touched; t; t = t->batch_next)
			if (t->blk_n >= BLOCK_ENTRIES)
				blk_stage(db, t);
		pthread_mutex_unlock(&db->t_mu);
		rc = idx_batch_write(db->ix, db->batch);
	}
	idx_batch_clear(db->batch);
	if (rc) {
		logf_(db, 0, "commit failed: %s; refusing appends until reopened", eng_strerror(rc));
		if (rc == ENG_EFULL)
			release_reserve(db);
		pthread_mutex_lock(&db->q_mu);
		if (!db->failed)
			db->failed = rc == ENG_EFULL ? ENG_EFULL : ENG_EFAILED;
		pthread_mutex_unlock(&db->q_mu);
		__atomic_store_n(&db->st.failed, db->failed, __ATOMIC_RELAXED);
	}
	int any = 0;
	pthread_mutex_lock(&db->t_mu);
	for (topic *t = touched; t; t = t->batch_next) {
		if (!rc) {
			t->visible = t->next;
			t->last_write_ms = now;
		}
		t->fresh = 0;
	}
	pthread_mutex_unlock(&db->t_mu);
	if (!rc) {
		pthread_mutex_lock(&db->s_mu);
		for (topic *t = touched; t; t = t->batch_next)
			any |= notify_topic(db, t, t->visible) > 0;
		pthread_mutex_unlock(&db->s_mu);
	}
	for (topic *t = touched, *nx; t; t = nx) {
		nx = t->batch_next;
		t->in_batch = 0;
		t->batch_next = NULL;
	}
	(void)any;
	return rc;
}

/* Delete a topic (DELETE, or expiry when idle since before r->expected). */
static int do_delete(eng_db *db, req *r, uint64_t now)
{
	topic *t;
	const parent_def *p = r->parent;
	int rc = topic_load(db, r->topic, p, &t);
	if (rc)
		return rc;
	if (r->op == OP_EXPIRE && t->last_write_ms >= r->expected) {
		t->last_used_mono = mono_ms();
		return 0; /* written to since the maintenance scan looked: keep it */
	}
	uint64_t pos;
	if ((rc = cl_add(db->log, CL_REC_TOPIC_DELETE, t->tid, t->next, now, NULL, 0, NULL, 0, t->name,
			 strlen(t->name), &pos)) != 0)
		return rc;
	idx_batch_topic_del(db->batch, t->name, t->tid);
	if ((rc = commit_staged(db, NULL, now)) != 0)
		return rc;
	/* Subscribers of the topic learn it changed (its range is now empty). */
	pthread_mutex_lock(&db->s_mu);
	t->n_events = 9;
	notify_topic(db, t, 0);
	pthread_mutex_unlock(&db->s_mu);
	topic_forget(db, t);
	STAT_ADD(db, topics, (uint64_t)-1);
	if (r->op == OP_EXPIRE)
		STAT_ADD(db, expired_topics, 1);
	return 0;
}

static void finish(eng_db *db, req *list)
{
	/* Synchronous requests are handed back to their waiter; the rest go to the host's poll. */
	req *async_head = NULL, **tail = &async_head;
	int any_sync = 0;
	pthread_mutex_lock(&db->q_mu);
	for (req *r = list, *nx; r; r = nx) {
		nx = r->next;
		r->next = NULL;
		if (r->waited) {
			r->finished = 1;
			any_sync = 1;
		} else if (r->done) {
			*tail = r;
			tail = &r->next;
		} else {
			free(r);
		}
	}
	if (any_sync)
		pthread_cond_broadcast(&db->done_cv);
	pthread_mutex_unlock(&db->q_mu);
	if (async_head) {
		pthread_mutex_lock(&db->c_mu);
		if (db->c_tail)
			db->c_tail->next = async_head;
		else
			db->c_head = async_head;
		for (req *r = async_head; r; r = r->next)
			db->c_tail = r;
		pthread_mutex_unlock(&db->c_mu);
	}
}

/* Log @r's topic's create record again if its last one lies below r->expected. */
static int stage_redeclare(eng_db *db, req *r, uint64_t now)
{
	idx_topic_meta m;
	int rc = idx_topic_get(db->ix, r->topic, &m);
	if (rc)
		return rc == ENG_ENOTFOUND ? 0 : rc; /* deleted since the scan: nothing to keep */
	if (m.create_pos >= r->expected)
		return 0;
	uint64_t pos;
	if ((rc = cl_add(db->log, CL_REC_TOPIC_CREATE, m.id, m.created_ms, now, NULL, 0, NULL, 0,
			 r->topic, strlen(r->topic), &pos)) != 0)
		return rc;
	m.create_pos = pos;
	idx_batch_topic_put(db->batch, r->topic, &m);
	return 0;
}

/* Process one taken list: appends are grouped into one commit, split at deletes. */
static void process(eng_db *db, req *list)
{
	uint64_t now = now_ms(), mono = mono_ms();
	topic *touched = NULL;
	req *pending_head = list;
	size_t staged_msgs = 0, staged_bytes = 0, batches = 0;
	int staged_other = 0; /* records without messages (re-declared topics) wait to be committed */
	for (req *r = list; r; r = r->next) {
		int failed = cl_failed(db->log);
		if (!failed) {
			pthread_mutex_lock(&db->q_mu);
			failed = db->failed;
			pthread_mutex_unlock(&db->q_mu);
		}
		if (failed) {
			r->res.rc = failed;
			continue;
		}
		if (r->op == OP_APPEND) {
			r->res.rc = stage_append(db, r, now, mono, &touched);
			if (!r->res.rc) {
				staged_msgs += r->n;
				staged_bytes += r->bytes;
			}
			continue;
		}
		if (r->op == OP_REDECLARE) {
			r->res.rc = stage_redeclare(db, r, now);
			staged_other |= r->res.rc == 0;
			continue;
		}
		/* A delete, expiry or barrier: commit what is staged before it, in order. */
		if (touched || staged_msgs || staged_other) {
			int rc = commit_staged(db, touched, now);
			batches++;
			touched = NULL;
			staged_msgs = 0;
			staged_other = 0;
			if (rc)
				for (req *p = pending_head; p != r; p = p->next)
					if (p->op == OP_APPEND && p->res.rc == 0)
						p->res.rc = rc;
		}
		pending_head = r->next;
		if (r->op != OP_BARRIER)
			r->res.rc = do_delete(db, r, now);
	}
	if (touched || staged_other) {
		int rc = commit_staged(db, touched, now);
		batches++;
		if (rc)
			for (req *p = pending_head; p; p = p->next)
				if (p->op == OP_APPEND && p->res.rc == 0)
					p->res.rc = rc;
	}
	for (req *r = list; r; r = r->next)
		if (r->op == OP_APPEND && r->res.rc) {
			r->res.count = 0;
			if (r->res.rc != ENG_EMISMATCH)
				r->res.next_offset = 0;
		} else if (r->op == OP_APPEND) {
			STAT_ADD(db, appended_msgs, r->n);
		}
	STAT_ADD(db, appended_bytes, staged_bytes);
	STAT_ADD(db, batches, batches);
	finish(db, list);
	wake_host(db);
}

static void *writer_main(void *arg)
{
	eng_db *db = arg;
	for (;;) {
		pthread_mutex_lock(&db->q_mu);
		while (!db->q_head && !db->closing) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t wait = db->cfg.durability == ENG_DURABLE_INTERVAL ? db->cfg.interval_ms : 1000;
			ts.tv_nsec += (long)(wait * 1000000);
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			if (pthread_cond_timedwait(&db->q_cv, &db->q_mu, &ts) == ETIMEDOUT)
				break;
		}
		req *list = db->q_head;
		db->q_head = db->q_tail = NULL;
		db->q_bytes = 0;
		int stop = db->closing && !list;
		pthread_mutex_unlock(&db->q_mu);

		if (list)
			process(db, list);
		uint64_t mono = mono_ms();
		if (db->cfg.durability == ENG_DURABLE_INTERVAL && mono - db->last_sync_mono >= db->cfg.interval_ms) {
			cl_sync(db->log);
			STAT_ADD(db, fsyncs, 1);
			db->last_sync_mono = mono;
		}
		if (stop) {
			sweep(db, mono, 1); /* finish the cycle under way, */
			sweep(db, mono, 1); /* and a whole one: everything indexed, checkpoint at the end */
			break;
		}
		sweep(db, mono, 0);
	}
	return NULL;
}

/* ---- Host side of appends ---------------------------------------------------------------------- */

static int enqueue(eng_db *db, req *r, int wait)
{
	pthread_mutex_lock(&db->q_mu);
	int rc = db->closing ? ENG_ECLOSING : db->failed;
	uint64_t qmax = db->cfg.queue_max_bytes ? db->cfg.queue_max_bytes : (256u << 20);
	if (!rc && r->op == OP_APPEND && db->q_bytes + r->bytes > qmax && db->q_head)
		rc = ENG_EBUSY;
	if (!rc) {
		r->waited = wait;
		if (db->q_tail)
			db->q_tail->next = r;
		else
			db->q_head = r;
		db->q_tail = r;
		db->q_bytes += r->bytes;
		pthread_cond_signal(&db->q_cv);
		if (wait)
			while (!r->finished)
				pthread_cond_wait(&db->done_cv, &db->q_mu);
	}
	pthread_mutex_unlock(&db->q_mu);
	return rc;
}

int eng_append(eng_db *db, const char *topic_name, const eng_msg_in *msgs, size_t n,
	       uint64_t expected_offset, eng_append_fn done, void *ctx)
{
	eng_append_opts o = {.has_expected = expected_offset != ENG_NO_EXPECT,
			     .expected_offset = expected_offset};
	return eng_append_ex(db, topic_name, msgs, n, &o, done, ctx);
}

int eng_append_ex(eng_db *db, const char *topic_name, const eng_msg_in *msgs, size_t n,
		  const eng_append_opts *opts, eng_append_fn done, void *ctx)
{
	const parent_def *p;
	int rc = topic_parent(db, topic_name, NULL, &p);
	if (rc)
		return rc;
	if (!n || !msgs || !done || n > UINT32_MAX)
		return ENG_EINVAL;
	const char *rkey = opts && opts->request_key ? opts->request_key : NULL;
	size_t rkl = rkey ? strnlen(rkey, ENG_KEY_MAX + 1) : 0;
	if (rkey && names_token_check(rkey, rkl, ENG_KEY_MAX))
		return ENG_EBADNAME;
	int keyed = rkey != NULL;
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		const char *ev = msgs[i].event ? msgs[i].event : "message";
		size_t el = strnlen(ev, ENG_EVENT_MAX + 1);
		size_t kl = msgs[i].key ? strnlen(msgs[i].key, ENG_KEY_MAX + 1) : 0;
		if (eng_event_name_check(ev, el))
			return ENG_EBADNAME;
		if (msgs[i].key && names_token_check(msgs[i].key, kl, ENG_KEY_MAX))
			return ENG_EBADNAME;
		if (msgs[i].len > p->max_msg)
			return ENG_ETOOBIG;
		if (msgs[i].len && !msgs[i].data)
			return ENG_EINVAL;
		bytes += el + 1 + kl + 1 + msgs[i].len;
		keyed |= msgs[i].key != NULL;
	}
	size_t results = keyed ? n * (sizeof(uint64_t) + 1) : 0;
	req *r = xcalloc(1, sizeof *r + n * sizeof(msg_ref) + results + bytes);
	r->op = OP_APPEND;
	strcpy(r->topic, topic_name);
	r->parent = p;
	r->expected = opts && opts->has_expected ? opts->expected_offset : ENG_NO_EXPECT;
	if (rkey)
		memcpy(r->rkey, rkey, rkl + 1);
	r->keyed = keyed;
	r->done = done;
	r->ctx = ctx;
	r->n = n;
	r->msgs = (msg_ref *)(r + 1);
	if (keyed) {
		r->offsets = (uint64_t *)(r->msgs + n);
		r->dup = (uint8_t *)(r->offsets + n);
	}
	r->blob = (uint8_t *)(r->msgs + n) + results;
	r->bytes = bytes + cl_rec_size(0, 0, 0) * n;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		const char *ev = msgs[i].event ? msgs[i].event : "message";
		size_t el = strlen(ev), kl = msgs[i].key ? strlen(msgs[i].key) : 0;
		msg_ref *m = &r->msgs[i];
		m->ev_off = (uint32_t)o;
		m->ev_len = (uint32_t)el;
		memcpy(r->blob + o, ev, el + 1);
		o += el + 1;
		m->key_off = (uint32_t)o;
		m->key_len = (uint32_t)kl;
		if (kl)
			memcpy(r->blob + o, msgs[i].key, kl);
		r->blob[o + kl] = 0;
		o += kl + 1;
		m->data_off = (uint32_t)o;
		m->len = (uint32_t)msgs[i].len;
		if (msgs[i].len)
			memcpy(r->blob + o, msgs[i].data, msgs[i].len);
		o += msgs[i].len;
	}
	if ((rc = enqueue(db, r, 0)) != 0)
		free(r);
	return rc;
}

int eng_notify_fd(const eng_db *db)
{
	return db->efd;
}

size_t eng_poll_completions(eng_db *db)
{
	uint64_t v;
	if (read(db->efd, &v, sizeof v) < 0) {
		/* EAGAIN: nothing signalled; there may still be completions from a racing post. */
	}
	pthread_mutex_lock(&db->c_mu);
	req *list = db->c_head;
	db->c_head = db->c_tail = NULL;
	pthread_mutex_unlock(&db->c_mu);
	size_t n = 0;
	for (req *r = list, *nx; r; r = nx, n++) {
		nx = r->next;
		if (r->keyed && r->res.rc == 0) {
			r->res.offsets = r->offsets;
			r->res.dup = r->dup;
		}
		r->done(r->ctx, &r->res);
		free(r);
	}
	return n;
}

static int sync_op(eng_db *db, enum req_op op, const char *topic_name, uint64_t arg)
{
	req *r = xcalloc(1, sizeof *r);
	r->op = op;
	r->expected = arg;
	if (topic_name) {
		int rc = topic_parent(db, topic_name, NULL, &r->parent);
		if (rc) {
			free(r);
			return rc;
		}
		strcpy(r->topic, topic_name);
	}
	int rc = enqueue(db, r, 1);
	if (!rc)
		rc = r->res.rc;
	free(r);
	return rc;
}

int eng_topic_delete(eng_db *db, const char *topic_name)
{
	return sync_op(db, OP_DELETE, topic_name, 0);
}

/* ---- Reads -------------------------------------------------------------------------------------- */

typedef struct topic_view {
	uint64_t tid, first, next, created, last_write;
	const parent_def *parent;
} topic_view;

/* What a reader may see of @name: durable range and ids, from the cache or the index. */
static int topic_view_get(eng_db *db, const char *name, topic_view *v)
{
	const parent_def *p;
	int rc = topic_parent(db, name, NULL, &p);
	if (rc)
		return rc;
	v->parent = p;
	pthread_mutex_lock(&db->t_mu);
	topic *t = (topic *)hmap_find(&db->topics, name_hash(name), topic_eq, name);
	int have = t && (t->visible > 0 || !t->fresh);
	if (t) {
		v->tid = t->tid;
		v->first = t->first;
		v->next = t->visible;
		v->created = t->created_ms;
		v->last_write = t->last_write_ms;
	}
	pthread_mutex_unlock(&db->t_mu);
	if (!have) {
		idx_topic_meta m;
		uint64_t last;
		if ((rc = idx_topic_get(db->ix, name, &m)) != 0)
			return rc;
		if ((rc = idx_cq_last(db->ix, m.id, &v->next, &last)) != 0)
			return rc;
		v->tid = m.id;
		v->first = m.first_offset;
		v->created = m.created_ms;
		v->last_write = last ? last : m.created_ms;
	}
	if (p->max_retained && v->next > p->max_retained && v->next - p->max_retained > v->first)
		v->first = v->next - p->max_retained;
	if (v->first > v->next)
		v->first = v->next;
	return 0;
}


/* Move v->first past messages whose segments retention deleted. */
static int first_in_log(eng_db *db, const char *name, topic_view *v)
{
	uint64_t start = cl_start(db->log);
	if (start == 0 || v->first >= v->next)
		return 0;
	entry_src src = {.db = db, .name = name, .tid = v->tid, .want = v->first, .limit = v->next};
	uint64_t off;
	idx_entry e;
	int rc;
	while ((rc = src_next(&src, &off, &e)) == 1) {
		if (e.pos >= start) {
			if (off > v->first)
				v->first = off; /* the older entries are gone altogether */
			break;
		}
		v->first = off + 1;
	}
	idx_cursor_close(src.c);
	return rc < 0 ? rc : 0;
}

int eng_topic_info_get(eng_db *db, const char *name, eng_topic_info *out)
{
	topic_view v;
	int rc = topic_view_get(db, name, &v);
	if (!rc)
		rc = first_in_log(db, name, &v);
	if (rc)
		return rc;
	out->first_offset = v.first;
	out->next_offset = v.next;
	out->created_ms = v.created;
	out->last_write_ms = v.last_write;
	out->priority = v.parent->priority;
	return 0;
}

int eng_read(eng_db *db, const char *name, uint64_t from, size_t max_count, size_t max_bytes,
	     eng_read_result *out)
{
	topic_view v;
	uint8_t *scratch = NULL;
	size_t scratch_cap = 0;
	int rc = topic_view_get(db, name, &v);
	if (rc)
		return rc;
	memset(out, 0, sizeof *out);
	out->next_offset = v.next;
	uint64_t start = from;
	if (start < v.first) {
		start = v.first;
		out->below_retained = 1;
	}
	if (max_count == 0)
		max_count = 1;
	if (start >= v.next) {
		out->first_offset = v.first;
		out->next = start > v.next ? start : v.next;
		return 0;
	}
	uint64_t log_start = cl_start(db->log);
	entry_src src = {.db = db, .name = name, .tid = v.tid, .want = start, .limit = v.next};
	size_t cap = max_count < 64 ? max_count : 64;
	eng_msg_view *views = xmalloc(cap * sizeof *views);
	size_t data_cap = 4096, data_len = 0, n = 0, payload = 0;
	uint8_t *data = xmalloc(data_cap);
	/* Views point into @data, which may move while it grows: record offsets, fix up at the end. */
	uint64_t off;
	idx_entry e;
	while (n < max_count && (n == 0 || payload < max_bytes)) {
		int got = src_next(&src, &off, &e);
		if (got < 0) {
			rc = got;
			goto out;
		}
		if (got == 0 || off >= v.next)
			break;
		if (n == 0 && off > start) {
			/* Nothing older is left in the index: the retained range starts here. */
			v.first = off;
			out->below_retained = from < off;
		}
		if (e.pos < log_start) {
			/* Its segment was deleted by retention: the retained range starts later. */
			v.first = off + 1;
			out->below_retained = from < v.first;
			continue;
		}
		if (e.len > scratch_cap) {
			scratch_cap = e.len;
			scratch = xrealloc(scratch, scratch_cap);
		}
		if ((rc = cl_read(db->log, e.pos, e.len, scratch)) != 0) {
			if (rc == ENG_ENOTFOUND) { /* deleted under us */
				v.first = off + 1;
				rc = 0;
				continue;
			}
			goto out;
		}
		cl_rec rec;
		if (cl_decode(scratch, e.len, &rec) != 0 || rec.total != e.len || rec.topic_id != v.tid ||
		    rec.offset != off || (rec.flags & CL_TYPE_MASK) != CL_REC_MSG) {
			rc = ENG_ECORRUPT;
			goto out;
		}
		size_t need = (size_t)rec.event_len + 1 + rec.key_len + 1 + rec.payload_len;
		if (data_len + need > data_cap) {
			while (data_len + need > data_cap)
				data_cap *= 2;
			data = xrealloc(data, data_cap);
		}
		if (n == cap) {
			cap *= 2;
			views = xrealloc(views, cap * sizeof *views);
		}
		uint8_t *d = data + data_len;
		memcpy(d, rec.event, rec.event_len);
		d[rec.event_len] = 0;
		memcpy(d + rec.event_len + 1, rec.key, rec.key_len);
		d[rec.event_len + 1 + rec.key_len] = 0;
		memcpy(d + rec.event_len + 2 + rec.key_len, rec.payload, rec.payload_len);
		views[n] = (eng_msg_view){.offset = off,
					  .time_ms = rec.time_ms,
					  .event = (const char *)(uintptr_t)data_len,
					  .key = (const char *)(uintptr_t)(data_len + rec.event_len + 1),
					  .data = (const void *)(uintptr_t)(data_len + rec.event_len + 2 + rec.key_len),
					  .len = rec.payload_len};
		data_len += need;
		payload += rec.payload_len;
		n++;
	}
	/* One allocation owns both: the views first, then the bytes. */
	uint8_t *buf = xmalloc(n * sizeof *views + data_len);
	memcpy(buf + n * sizeof *views, data, data_len);
	eng_msg_view *fixed = (eng_msg_view *)buf;
	uint8_t *base = buf + n * sizeof *views;
	for (size_t i = 0; i < n; i++) {
		fixed[i] = views[i];
		fixed[i].event = (const char *)base + (uintptr_t)views[i].event;
		fixed[i].key = (const char *)base + (uintptr_t)views[i].key;
		fixed[i].data = base + (uintptr_t)views[i].data;
	}
	out->msgs = fixed;
	out->n = n;
	out->_buf = buf;
	out->first_offset = v.first;
	out->next = n ? fixed[n - 1].offset + 1 : (start > v.first ? start : v.first);
	if (!n && out->next < v.first)
		out->next = v.first;
out:
	idx_cursor_close(src.c);
	free(views);
	free(data);
	free(scratch);
	if (rc)
		memset(out, 0, sizeof *out);
	return rc;
}

void eng_read_free(eng_read_result *res)
{
	if (!res)
		return;
	free(res->_buf);
	memset(res, 0, sizeof *res);
}

/* ---- Consumer offsets -------------------------------------------------------------------------- */

static int group_check(const char *group)
{
	return names_token_check(group, strnlen(group, 129), 128);
}

int eng_offset_commit(eng_db *db, const char *group, const char *topic_name, uint64_t offset)
{
	const parent_def *p;
	int rc = topic_parent(db, topic_name, NULL, &p);
	if (!rc)
		rc = group_check(group);
	return rc ? rc : idx_offset_put(db->ix, group, topic_name, offset);
}

int eng_offset_get(eng_db *db, const char *group, const char *topic_name, uint64_t *out)
{
	const parent_def *p;
	int rc = topic_parent(db, topic_name, NULL, &p);
	if (!rc)
		rc = group_check(group);
	return rc ? rc : idx_offset_get(db->ix, group, topic_name, out);
}

int eng_offset_delete_group(eng_db *db, const char *group)
{
	int rc = group_check(group);
	return rc ? rc : idx_offset_delete_group(db->ix, group);
}

/* ---- Host metadata ------------------------------------------------------------------------------ */

static int meta_key_check(const char *key)
{
	size_t n = strnlen(key, ENG_META_KEY_MAX + 1);
	return n == 0 || n > ENG_META_KEY_MAX ? ENG_EINVAL : 0;
}

int eng_meta_put(eng_db *db, const char *key, const void *val, size_t len)
{
	int rc = meta_key_check(key);
	return rc ? rc : idx_meta_put(db->ix, key, val, len);
}

int eng_meta_delete(eng_db *db, const char *key)
{
	int rc = meta_key_check(key);
	return rc ? rc : idx_meta_delete(db->ix, key);
}

int eng_meta_get(eng_db *db, const char *key, void **val, size_t *len)
{
	int rc = meta_key_check(key);
	return rc ? rc : idx_meta_get(db->ix, key, val, len);
}

int eng_meta_scan(eng_db *db, const char *prefix, eng_meta_fn fn, void *ctx)
{
	if (strnlen(prefix, ENG_META_KEY_MAX + 1) > ENG_META_KEY_MAX)
		return ENG_EINVAL;
	return idx_meta_scan(db->ix, prefix, fn, ctx);
}

/* ---- Retention ---------------------------------------------------------------------------------- */

typedef struct expire_scan {
	eng_db *db;
	uint64_t now;
	uint64_t new_start;        /* where the log will start after this pass's segment deletion */
	char (*keep)[ENG_TOPIC_MAX + 1]; /* live topics whose create record is below new_start */
	size_t n_keep, cap_keep;
	char (*names)[ENG_TOPIC_MAX + 1];
	uint64_t *cutoffs;
	size_t n, cap;
} expire_scan;

static int expire_visit(void *ctx, const char *name, const idx_topic_meta *m)
{
	expire_scan *s = ctx;
	const char *slash = strchr(name, '/');
	const parent_def *p = slash ? find_parent(s->db, name, (size_t)(slash - name)) : NULL;
	uint64_t ttl = p && p->ttl_ms ? p->ttl_ms : DAY_MS;
	if (p && m->create_pos < s->new_start) {
		if (s->n_keep == s->cap_keep) {
			s->cap_keep = s->cap_keep ? s->cap_keep * 2 : 64;
			s->keep = xrealloc(s->keep, s->cap_keep * sizeof *s->keep);
		}
		strcpy(s->keep[s->n_keep++], name);
	}
	if (!p || s->now < ttl)
		return 0;
	uint64_t cutoff = s->now - ttl, last = 0;
	pthread_mutex_lock(&s->db->t_mu);
	topic *t = (topic *)hmap_find(&s->db->topics, name_hash(name), topic_eq, name);
	if (t)
		last = t->last_write_ms;
	pthread_mutex_unlock(&s->db->t_mu);
	if (!t) {
		uint64_t next;
		if (idx_cq_last(s->db->ix, m->id, &next, &last) != 0)
			return 0;
		if (!last)
			last = m->created_ms;
	}
	if (last >= cutoff)
		return 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->names = xrealloc(s->names, s->cap * sizeof *s->names);
		s->cutoffs = xrealloc(s->cutoffs, s->cap * sizeof *s->cutoffs);
	}
	strcpy(s->names[s->n], name);
	s->cutoffs[s->n++] = cutoff;
	return s->n >= 100000; /* a bounded pass; the next one takes the rest */
}

int eng_maintain(eng_db *db, uint64_t now)
{
	uint64_t retention = db->cfg.retention_ms ? db->cfg.retention_ms : 3 * DAY_MS;
	uint64_t older = now > retention ? now - retention : 0, new_start;
	cl_delete_head(db->log, older, db->cfg.log_max_bytes, UINT64_MAX, 1, &new_start);
	expire_scan s = {.db = db, .now = now, .new_start = new_start};
	int rc = idx_topics_scan(db->ix, expire_visit, &s);
	if (rc == 1)
		rc = 0;
	/* Re-declare before deleting: after this, segments below new_start name no live topic that
	 * the rest of the log does not name again. An expired one is re-declared and then deleted,
	 * which is harmless. */
	for (size_t i = 0; i < s.n_keep; i++) {
		req *r = xcalloc(1, sizeof *r);
		r->op = OP_REDECLARE;
		r->expected = new_start;
		strcpy(r->topic, s.keep[i]);
		if (enqueue(db, r, 0) != 0) {
			free(r);
			new_start = 0; /* could not re-declare: delete no segment this time */
		}
	}
	if (s.n_keep && sync_op(db, OP_BARRIER, NULL, 0) != 0)
		new_start = 0;
	free(s.keep);
	for (size_t i = 0; !rc && i < s.n; i++) {
		/* Through the writer, which re-checks the last write: a publish racing the scan wins. */
		int r = sync_op(db, OP_EXPIRE, s.names[i], s.cutoffs[i]);
		if (r && r != ENG_ENOTFOUND)
			rc = r;
	}
	free(s.names);
	free(s.cutoffs);
	int deleted = cl_delete_head(db->log, older, db->cfg.log_max_bytes, new_start, 0, &new_start);
	if (deleted > 0)
		logf_(db, 2, "retention deleted %d segment(s); log starts at %llu", deleted,
		      (unsigned long long)new_start);
	return rc;
}

static void *maint_main(void *arg)
{
	eng_db *db = arg;
	uint64_t every = db->cfg.maintenance_ms ? db->cfg.maintenance_ms : 60000;
	pthread_mutex_lock(&db->m_mu);
	while (!db->maint_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(every / 1000);
		ts.tv_nsec += (long)(every % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&db->m_cv, &db->m_mu, &ts) == ETIMEDOUT && !db->maint_stop) {
			pthread_mutex_unlock(&db->m_mu);
			eng_maintain(db, now_ms());
			pthread_mutex_lock(&db->m_mu);
		}
	}
	pthread_mutex_unlock(&db->m_mu);
	return NULL;
}

/* ---- Recovery ----------------------------------------------------------------------------------- */

typedef struct rec_run {
	hnode hn;
	uint64_t tid, first;
	idx_entry *e;
	size_t n, cap;
} rec_run;

typedef struct recovery {
	eng_db *db;
	hmap runs;         /* tid -> rec_run, entries not yet in the batch */
	size_t pending;    /* records since the last batch write */
	uint64_t bytes;
	int rc;
} recovery;

static int run_eq(const hnode *n, const void *key)
{
	return ((const rec_run *)n)->tid == *(const uint64_t *)key;
}

static void recovery_flush_runs(recovery *rv)
{
	HMAP_FOREACH_SAFE(&rv->runs, n, tmp)
	{
		rec_run *r = (rec_run *)n;
		if (r->n)
			idx_batch_cq_run(rv->db->batch, r->tid, r->first, r->e, r->n);
		free(r->e);
		free(r);
	}
	hmap_free(&rv->runs);
}

static int recovery_commit(recovery *rv, uint64_t checkpoint)
{
	recovery_flush_runs(rv);
	idx_batch_checkpoint(rv->db->batch, checkpoint, rv->db->next_tid);
	int rc = idx_batch_write(rv->db->ix, rv->db->batch);
	idx_batch_clear(rv->db->batch);
	rv->pending = 0;
	return rc;
}

static int recovery_visit(void *ctx, uint64_t pos, const cl_rec *rec)
{
	recovery *rv = ctx;
	eng_db *db = rv->db;
	int type = rec->flags & CL_TYPE_MASK;
	char name[ENG_TOPIC_MAX + 1];
	uint64_t tid = rec->topic_id;
	uint64_t h = hmap_hash(&tid, sizeof tid, 7);
	rec_run *r = (rec_run *)hmap_find(&rv->runs, h, run_eq, &tid);
	rv->bytes += rec->total;
	if (tid >= db->next_tid)
		db->next_tid = tid + 1;
	if (type == CL_REC_TOPIC_CREATE || type == CL_REC_TOPIC_DELETE) {
		if (rec->payload_len > ENG_TOPIC_MAX)
			return ENG_ECORRUPT;
		memcpy(name, rec->payload, rec->payload_len);
		name[rec->payload_len] = 0;
		if (type == CL_REC_TOPIC_CREATE) {
			idx_topic_meta m = {tid, rec->offset ? rec->offset : rec->time_ms, 0, pos};
			idx_batch_topic_put(db->batch, name, &m);
		} else {
			if (r) { /* drop entries staged for it: the delete wins */
				hmap_remove(&rv->runs, &r->hn);
				free(r->e);
				free(r);
			}
			idx_batch_topic_del(db->batch, name, tid);
		}
	} else if (type == CL_REC_MSG) {
		if (r && r->first + r->n != rec->offset) {
			/* Not contiguous (cannot happen in a healthy log): write what we have first. */
			idx_batch_cq_run(db->batch, r->tid, r->first, r->e, r->n);
			r->n = 0;
		}
		if (!r) {
			r = xcalloc(1, sizeof *r);
			r->hn.hash = h;
			r->tid = tid;
			hmap_insert(&rv->runs, &r->hn);
		}
		if (!r->n) {
			/* Runs written before the crash from this offset on may be cut differently
			 * (blocks, or an earlier recovery): replace them, so no older run outlasts the
			 * re-dispatched one and the last run is the topic's end. */
			r->first = rec->offset;
			idx_batch_cq_trim(db->batch, tid, r->first);
		}
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 8;
			r->e = xrealloc(r->e, r->cap * sizeof *r->e);
		}
		r->e[r->n++] = (idx_entry){pos, rec->total, rec->time_ms};
	}
	if (++rv->pending >= (1u << 20) && !(rec->flags & CL_F_MORE))
		return recovery_commit(rv, pos + rec->total);
	return 0;
}

static int rm_rf(const char *path)
{
	char cmd[4200];
	/* The index directory is ours alone and its name is fixed: a plain recursive delete. */
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
	return system(cmd) == 0 ? 0 : EIO;
}

static int recover(eng_db *db, const char *index_dir)
{
	uint64_t checkpoint, t0 = mono_ms(), truncated = 0;
	int fresh = 0, rc;
	for (int attempt = 0; attempt < 2; attempt++) {
		if ((rc = idx_open(index_dir, &fresh, &db->ix)) != 0)
			return rc;
		if ((rc = idx_checkpoint_get(db->ix, &checkpoint, &db->next_tid)) != 0)
			return rc;
		if (db->next_tid == 0)
			db->next_tid = 1;
		db->batch = idx_batch_new(db->ix);
		recovery rv = {.db = db};
		rc = cl_scan(db->log, checkpoint, recovery_visit, &rv, &truncated);
		if (rc == 0)
			rc = recovery_commit(&rv, cl_end(db->log));
		else
			recovery_flush_runs(&rv);
		db->st.recovered_bytes = rv.bytes;
		if (rc != ENG_ECORRUPT || attempt == 1 || checkpoint <= cl_end(db->log))
			break;
		/* The index covers more than the log holds (data lost before it was synced, under a
		 * relaxed durability policy): rebuild the index from the log alone. */
		logf_(db, 1, "index checkpoint %llu is past the log's end; rebuilding the index",
		      (unsigned long long)checkpoint);
		idx_batch_free(db->batch);
		db->batch = NULL;
		idx_close(db->ix);
		db->ix = NULL;
		if ((rc = rm_rf(index_dir)) != 0)
			return rc;
	}
	if (truncated)
		logf_(db, 1, "truncated a torn tail of %llu bytes", (unsigned long long)truncated);
	if (fresh && db->st.recovered_bytes)
		logf_(db, 1, "index was missing: rebuilt from the log");
	db->st.recovery_us = (mono_ms() - t0) * 1000;
	db->st.topics = idx_topics_count(db->ix);
	return rc;
}

/* ---- Open, close, stats ------------------------------------------------------------------------- */

static int copy_config(eng_db *db, const eng_config *cfg)
{
	if (!cfg->dir || !*cfg->dir || cfg->durability > ENG_DURABLE_NONE)
		return ENG_EINVAL;
	db->cfg = *cfg;
	db->dir = xstrdup(cfg->dir);
	db->cfg.dir = db->dir;
	if (!db->cfg.segment_bytes)
		db->cfg.segment_bytes = 1ull << 30;
	if (db->cfg.segment_bytes < 4096)
		return ENG_EINVAL;
	if (db->cfg.durability == ENG_DURABLE_INTERVAL && !db->cfg.interval_ms)
		db->cfg.interval_ms = 10;
	db->parents = xcalloc(cfg->n_parents ? cfg->n_parents : 1, sizeof *db->parents);
	for (size_t i = 0; i < cfg->n_parents; i++) {
		const eng_parent *in = &cfg->parents[i];
		parent_def *p = &db->parents[i];
		size_t len = in->name ? strnlen(in->name, ENG_PARENT_MAX + 1) : 0;
		if (!in->name || names_parent_check(in->name, len) || in->max_message_bytes > LIMIT_MAX_MSG ||
		    in->priority > 9 || find_parent(db, in->name, len))
			return ENG_EINVAL;
		memcpy(p->name, in->name, len + 1);
		p->len = len;
		p->max_msg = in->max_message_bytes ? in->max_message_bytes : DEFAULT_MAX_MSG;
		p->ttl_ms = in->idle_ttl_ms ? in->idle_ttl_ms : DAY_MS;
		p->max_retained = in->max_retained;
		p->priority = in->priority;
		p->dedup_window_ms = in->dedup_window_ms ? in->dedup_window_ms : 10 * 60 * 1000;
		p->dedup_max = in->dedup_max_keys ? in->dedup_max_keys : 100000;
		db->n_parents = i + 1;
	}
	db->cfg.parents = NULL;
	db->cfg.n_parents = db->n_parents;
	return 0;
}

int eng_open(const eng_config *cfg, eng_db **out)
{
	int rc;
	char path[4096];
	eng_db *db = xcalloc(1, sizeof *db);
	db->efd = -1;
	pthread_mutex_init(&db->q_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&db->q_cv, &ca);
	pthread_cond_init(&db->m_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&db->done_cv, NULL);
	pthread_mutex_init(&db->m_mu, NULL);
	pthread_mutex_init(&db->t_mu, NULL);
	pthread_mutex_init(&db->s_mu, NULL);
	pthread_mutex_init(&db->c_mu, NULL);
	if ((rc = copy_config(db, cfg)) != 0)
		goto fail;
	if (mkdir(db->dir, 0755) != 0 && errno != EEXIST) {
		rc = errno;
		goto fail;
	}
	db->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (db->efd < 0) {
		rc = errno;
		goto fail;
	}
	snprintf(path, sizeof path, "%s/reserve", db->dir);
	db->reserve_path = xstrdup(path);
	take_reserve(db);
	cl_faults faults = {cfg->fail_write_after, cfg->fail_fsync_after, cfg->fail_errno};
	snprintf(path, sizeof path, "%s/log", db->dir);
	if ((rc = cl_open(path, db->cfg.segment_bytes, &faults, &db->log)) != 0)
		goto fail;
	snprintf(path, sizeof path, "%s/index", db->dir);
	if ((rc = recover(db, path)) != 0)
		goto fail;
	db->last_sync_mono = db->last_sweep_mono = mono_ms();
	if ((rc = pthread_create(&db->writer, NULL, writer_main, db)) != 0)
		goto fail;
	if ((rc = pthread_create(&db->maint, NULL, maint_main, db)) != 0) {
		pthread_mutex_lock(&db->q_mu);
		db->closing = 1;
		pthread_cond_signal(&db->q_cv);
		pthread_mutex_unlock(&db->q_mu);
		pthread_join(db->writer, NULL);
		goto fail;
	}
	*out = db;
	return 0;
fail:
	idx_batch_free(db->batch);
	idx_close(db->ix);
	cl_close(db->log);
	if (db->efd >= 0)
		close(db->efd);
	free(db->reserve_path);
	free(db->parents);
	free(db->dir);
	free(db);
	return rc;
}

static void free_subs(eng_db *db)
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

/* Stop both threads; with @crash, as a power loss would (unsynced log bytes dropped). */
static void shutdown_db(eng_db *db, int crash)
{
	pthread_mutex_lock(&db->m_mu);
	db->maint_stop = 1;
	pthread_cond_signal(&db->m_cv);
	pthread_mutex_unlock(&db->m_mu);
	pthread_join(db->maint, NULL);
	pthread_mutex_lock(&db->q_mu);
	db->closing = 1;
	pthread_cond_signal(&db->q_cv);
	pthread_mutex_unlock(&db->q_mu);
	pthread_join(db->writer, NULL);
	if (crash) {
		cl_crash_drop_unsynced(db->log);
		db->log = NULL;
	}
	eng_poll_completions(db);
	idx_batch_free(db->batch);
	idx_close(db->ix);
	cl_close(db->log);
	HMAP_FOREACH_SAFE(&db->topics, n, tmp)
	topic_free((topic *)n);
	hmap_free(&db->topics);
	free_subs(db);
	close(db->efd);
	free(db->reserve_path);
	free(db->parents);
	free(db->dir);
	free(db);
}

void eng_close(eng_db *db)
{
	if (db)
		shutdown_db(db, 0);
}

/* Test seam (declared in engine_test.h): close as a power loss would. */
void eng__close_power_loss(eng_db *db);
void eng__close_power_loss(eng_db *db)
{
	if (db)
		shutdown_db(db, 1);
}

void eng_stats_get(eng_db *db, eng_stats *out)
{
	out->appended_msgs = __atomic_load_n(&db->st.appended_msgs, __ATOMIC_RELAXED);
	out->appended_bytes = __atomic_load_n(&db->st.appended_bytes, __ATOMIC_RELAXED);
	out->batches = __atomic_load_n(&db->st.batches, __ATOMIC_RELAXED);
	out->fsyncs = __atomic_load_n(&db->st.fsyncs, __ATOMIC_RELAXED);
	out->topics = __atomic_load_n(&db->st.topics, __ATOMIC_RELAXED);
	out->expired_topics = __atomic_load_n(&db->st.expired_topics, __ATOMIC_RELAXED);
	out->duplicates = __atomic_load_n(&db->st.duplicates, __ATOMIC_RELAXED);
	out->recovered_bytes = db->st.recovered_bytes;
	out->recovery_us = db->st.recovery_us;
	cl_size(db->log, &out->log_bytes, &out->segments);
	pthread_mutex_lock(&db->t_mu);
	out->cached_topics = db->topics.n;
	pthread_mutex_unlock(&db->t_mu);
	pthread_mutex_lock(&db->q_mu);
	out->failed = db->failed ? db->failed : cl_failed(db->log);
	pthread_mutex_unlock(&db->q_mu);
}
