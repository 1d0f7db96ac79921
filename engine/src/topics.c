/*
 * topics.c - the cache of active lite topics (writer side): loading a topic from the index,
 * creating one, its open block of not-yet-indexed entries, and the sweep that writes those
 * blocks, moves the checkpoint and evicts idle topics. The writer owns every topic; readers look
 * them up under db->t_mu and copy what they need.
 */
#define _GNU_SOURCE
#include "engine_int.h"

/* The cache is keyed by topic name. */
int tc_eq(const hnode *n, const void *key)
{
	return strcmp(((const topic *)n)->name, key) == 0;
}

uint64_t tc_hash(const char *s)
{
	return hmap_hash(s, strlen(s), 0);
}

static topic *tc_new(const char *name, const parent_def *p)
{
	size_t len = strlen(name);
	topic *t = xcalloc(1, sizeof *t + len + 1);
	memcpy(t->name, name, len + 1);
	t->hn.hash = tc_hash(name);
	t->parent = p;
	return t;
}

void tc_free(topic *t)
{
	for (dd_node *d = t->dd_head, *nx; d; d = nx) {
		nx = d->next;
		free(d);
	}
	hmap_free(&t->dd);
	free(t->blk);
	free(t->rrun);
	free(t);
}

/* The writer's view of @name: from the cache, else loaded from the index, else NULL. */
int tc_load(eng_db *db, const char *name, const parent_def *p, topic **out)
{
	uint64_t h = tc_hash(name);
	pthread_mutex_lock(&db->t_mu);
	topic *t = (topic *)hmap_find(&db->topics, h, tc_eq, name);
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
	t = tc_new(name, p);
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

void tc_forget(eng_db *db, topic *t)
{
	pthread_mutex_lock(&db->t_mu);
	hmap_remove(&db->topics, &t->hn);
	pthread_mutex_unlock(&db->t_mu);
	tc_free(t);
}

/* Add an entry to @t's open block. Caller holds t_mu. */
void tc_blk_push(topic *t, uint64_t pos, uint32_t len, uint64_t time)
{
	if (t->blk_n == t->blk_cap) {
		t->blk_cap = t->blk_cap ? t->blk_cap * 2 : 4;
		t->blk = xrealloc(t->blk, t->blk_cap * sizeof *t->blk);
	}
	t->blk[t->blk_n++] = (idx_entry){pos, len, time};
}

/* Put @t's open block into the batch as one consume-queue run and empty it. Caller holds t_mu
 * and writes the batch before anyone could need the entries from RocksDB (before eviction). */
void tc_blk_stage(eng_db *db, topic *t)
{
	if (!t->blk_n || t->blk_staged == t->blk_n)
		return;
	idx_batch_cq_run(db->batch, t->tid, t->blk_first, t->blk, t->blk_n);
	if (!t->blk_staged) {
		if (db->n_staged == db->cap_staged) {
			db->cap_staged = db->cap_staged ? db->cap_staged * 2 : 64;
			db->staged = xrealloc(db->staged, db->cap_staged * sizeof *db->staged);
		}
		db->staged[db->n_staged++] = t;
	}
	t->blk_staged = t->blk_n;
}

void tc_blk_settle(eng_db *db, int ok)
{
	pthread_mutex_lock(&db->t_mu);
	for (size_t i = 0; i < db->n_staged; i++) {
		topic *t = db->staged[i];
		if (ok) {
			t->blk_n -= t->blk_staged;
			t->blk_first += t->blk_staged;
			memmove(t->blk, t->blk + t->blk_staged, t->blk_n * sizeof *t->blk);
			if (t->blk_cap > BLOCK_ENTRIES && t->blk_n <= BLOCK_ENTRIES / 2) {
				/* a burst grew it: give the memory back */
				t->blk_cap = t->blk_n ? t->blk_n : 0;
				t->blk = t->blk_n ? xrealloc(t->blk, t->blk_cap * sizeof *t->blk) : (free(t->blk), NULL);
			}
		}
		t->blk_staged = 0;
	}
	db->n_staged = 0;
	pthread_mutex_unlock(&db->t_mu);
}

/*
 * The tc_sweep: open blocks must reach RocksDB eventually (so the checkpoint can move and recovery
 * stays short), and idle topics must leave memory. Doing either for every topic at once would
 * stall the writer for as long as RocksDB takes to absorb one put per active topic (a third of a
 * second at 100,000 topics), so the writer walks the cache a few buckets per turn, paced to cover
 * it once per SWEEP_CYCLE_MS. Each visited topic's block is staged whole; idle topics (neither
 * written nor read for topic_cache_idle_ms) are evicted once the batch holding their block is
 * written. When a cycle ends, every entry older than the
 * log end recorded at its start has been written, and that position becomes the checkpoint.
 * Growing the table reshuffles buckets, so a cycle that sees it grow starts over.
 */
void tc_sweep(eng_db *db, uint64_t mono, int whole)
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
			tc_blk_stage(db, t);
			/* Readers stamp last_read_mono on their own threads, possibly after @mono was
			 * taken: compare without subtracting, which would wrap. */
			if (t->last_read_mono + idle > mono)
				continue;
			/* Nobody read it lately: the run kept for readers goes (written to, it stays). */
			free(t->rrun);
			t->rrun = NULL;
			t->rrun_n = 0;
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
	tc_blk_settle(db, rc == 0);
	if (rc) {
		/* Keep the victims: their entries are still only in memory (and in the log). */
		db_log(db, 1, "index write failed during the sweep: %s", eng_strerror(rc));
		return;
	}
	if (!victims)
		return;
	pthread_mutex_lock(&db->t_mu);
	for (topic *t = victims, *nx; t; t = nx) {
		nx = t->batch_next;
		t->batch_next = NULL;
		hmap_remove(&db->topics, &t->hn);
		tc_free(t);
	}
	pthread_mutex_unlock(&db->t_mu);
}

void tc_note_event(topic *t, const char *ev)
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
int tc_create(eng_db *db, const char *name, const parent_def *p, uint64_t now, topic **out)
{
	uint64_t pos;
	uint64_t tid = db->next_tid++;
	/* A create record's offset field holds the topic's creation time (see docs/storage.md). */
	int rc = cl_add(db->log, CL_REC_TOPIC_CREATE, tid, now, now, NULL, 0, NULL, 0, name, strlen(name),
			&pos);
	if (rc)
		return rc;
	topic *t = tc_new(name, p);
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
