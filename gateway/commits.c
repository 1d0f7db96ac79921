/*
 * commits.c - the offset-commit pool (see commits.h).
 */
#include "commits.h"

#include <errno.h>
#include <ev.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "xalloc.h"

#define COMMITS_MAX_THREADS 16
#define BATCH_MAX 1024 /* offsets in one eng_offset_commit_batch */

struct worker {
	pthread_t thread;
	struct gw_commit *todo, *todo_tail;
	pthread_cond_t cv;
	int serial;                       /* the offsets worker (see commits.h) */
	int started;
};

static struct {
	pthread_mutex_t mu;               /* every queue, and done */
	struct worker w[COMMITS_MAX_THREADS];
	struct worker ser;                /* offsets and gap records, in submission order */
	unsigned n;
	int stop;
	struct gw_commit *done, *done_tail;
	eng_db *db;
	struct ev_loop *loop;
	ev_async wake;
} pool = { PTHREAD_MUTEX_INITIALIZER };

static void
push(struct gw_commit **head, struct gw_commit **tail, struct gw_commit *c)
{
	c->next = NULL;
	if (*tail)
		(*tail)->next = c;
	else
		*head = c;
	*tail = c;
}

/*
 * The offsets at the head of the serial worker's queue, up to BATCH_MAX, in one synced write. Later
 * entries of a (group, topic) follow earlier ones in the batch, and RocksDB keeps the last. A batch
 * the engine refuses (one bad entry refuses it whole) is stored entry by entry, so each item gets
 * its own result. Called and returns with pool.mu held; @p c (taken off the queue) is the first.
 */
static void
store_batch(struct worker *w, struct gw_commit *c)
{
	static eng_offset_entry ents[BATCH_MAX]; /* the serial worker's own */
	struct gw_commit *head = c, *tail = c;
	size_t n = 1;
	int rc;

	while (n < BATCH_MAX && w->todo && !w->todo->meta) {
		tail->next = w->todo;
		tail = w->todo;
		w->todo = tail->next;
		n++;
	}
	if (!w->todo)
		w->todo_tail = NULL;
	tail->next = NULL;
	pthread_mutex_unlock(&pool.mu);
	n = 0;
	for (c = head; c; c = c->next)
		ents[n++] = (eng_offset_entry){ c->group, c->topic, c->offset };
	rc = eng_offset_commit_batch(pool.db, ents, n);
	for (c = head; c; c = c->next)
		c->rc = !rc ? 0 : eng_offset_commit(pool.db, c->group, c->topic, c->offset);
	pthread_mutex_lock(&pool.mu);
	for (c = head; c;) {
		struct gw_commit *next = c->next;

		push(&pool.done, &pool.done_tail, c);
		c = next;
	}
	ev_async_send(pool.loop, &pool.wake);
}

static void *
work(void *arg)
{
	struct worker *w = arg;

	pthread_mutex_lock(&pool.mu);
	for (;;) {
		struct gw_commit *c;

		while (!w->todo && !pool.stop)
			pthread_cond_wait(&w->cv, &pool.mu);
		if (!w->todo)
			break;
		c = w->todo;
		w->todo = c->next;
		if (!w->todo)
			w->todo_tail = NULL;
		if (w->serial && !c->meta) {
			store_batch(w, c);
			continue;
		}
		pthread_mutex_unlock(&pool.mu);
		if (c->meta == GW_COMMIT_META_ENSURE) {
			void *val;
			size_t len;

			if ((c->rc = eng_meta_get(pool.db, c->key, &val, &len)) == 0)
				free(val);
			else if (c->rc == ENG_ENOTFOUND)
				c->rc = eng_meta_put(pool.db, c->key, "1", 1);
		} else if (c->meta == GW_COMMIT_META_PUT) {
			c->rc = eng_meta_put(pool.db, c->key, c->val, c->len);
		} else if (c->meta == GW_COMMIT_META_DELETE) {
			c->rc = eng_meta_delete(pool.db, c->key);
		} else {
			c->rc = eng_offset_commit(pool.db, c->group, c->topic, c->offset);
		}
		pthread_mutex_lock(&pool.mu);
		push(&pool.done, &pool.done_tail, c);
		ev_async_send(pool.loop, &pool.wake);
	}
	pthread_mutex_unlock(&pool.mu);
	return NULL;
}

static void
run_done(void)
{
	struct gw_commit *c;

	pthread_mutex_lock(&pool.mu);
	c = pool.done;
	pool.done = pool.done_tail = NULL;
	pthread_mutex_unlock(&pool.mu);
	while (c) {
		struct gw_commit *next = c->next;

		c->done(c);
		c = next;
	}
}

static void
on_wake(struct ev_loop *loop, ev_async *a, int revents)
{
	(void)loop;
	(void)a;
	(void)revents;
	run_done();
}

int
gw_commits_start(struct gw *gw, unsigned threads)
{
	int rc;

	if (threads < 1)
		threads = 1;
	if (threads > COMMITS_MAX_THREADS)
		threads = COMMITS_MAX_THREADS;
	pool.db = gw->db;
	pool.loop = gw->loop;
	pool.stop = 0;
	ev_async_init(&pool.wake, on_wake);
	ev_async_start(pool.loop, &pool.wake);
	pthread_cond_init(&pool.ser.cv, NULL);
	pool.ser.serial = 1;
	if ((rc = pthread_create(&pool.ser.thread, NULL, work, &pool.ser)) != 0) {
		pthread_cond_destroy(&pool.ser.cv);
		pool.n = 0;
		gw_commits_stop();
		return rc;
	}
	pool.ser.started = 1;
	for (pool.n = 0; pool.n < threads; pool.n++) {
		struct worker *w = &pool.w[pool.n];

		pthread_cond_init(&w->cv, NULL);
		if ((rc = pthread_create(&w->thread, NULL, work, w)) != 0) {
			pthread_cond_destroy(&w->cv);
			gw_commits_stop();
			return rc;
		}
	}
	return 0;
}

void
gw_commits_submit(struct gw_commit *c)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a over group and topic: the key's worker */
	struct worker *w;

	for (const unsigned char *p = (const unsigned char *)c->group; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	for (const unsigned char *p = (const unsigned char *)c->topic; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	pthread_mutex_lock(&pool.mu);
	w = c->meta == GW_COMMIT_META_ENSURE ? &pool.w[h % pool.n] : &pool.ser;
	push(&w->todo, &w->todo_tail, c);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&pool.mu);
}

void
gw_commits_stop(void)
{
	if (!pool.loop)
		return;
	pthread_mutex_lock(&pool.mu);
	pool.stop = 1;
	for (unsigned i = 0; i < pool.n; i++)
		pthread_cond_signal(&pool.w[i].cv);
	if (pool.ser.started)
		pthread_cond_signal(&pool.ser.cv);
	pthread_mutex_unlock(&pool.mu);
	for (unsigned i = 0; i < pool.n; i++) {
		pthread_join(pool.w[i].thread, NULL);
		pthread_cond_destroy(&pool.w[i].cv);
	}
	if (pool.ser.started) {
		pthread_join(pool.ser.thread, NULL);
		pthread_cond_destroy(&pool.ser.cv);
		pool.ser.started = 0;
	}
	pool.n = 0;
	ev_async_stop(pool.loop, &pool.wake);
	run_done();
	pool.loop = NULL;
}
