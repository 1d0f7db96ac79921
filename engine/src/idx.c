/* idx.c - the RocksDB index (see idx.h, idx_keys.h). */
#define _GNU_SOURCE
#include "idx.h"

#include "engine.h"
#include "idx_keys.h"
#include "xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { CF_DEFAULT, CF_CQ, CF_TOPICS, CF_OFFSETS, CF_N };
static const char *const cf_names[CF_N] = {"default", "cq", "topics", "offsets"};

struct idx {
	rocksdb_t *db;
	rocksdb_options_t *opts;
	rocksdb_cache_t *cache;
	rocksdb_block_based_table_options_t *bbto;
	rocksdb_column_family_handle_t *cf[CF_N];
	rocksdb_writeoptions_t *wo_nowal; /* index batches: the CommitLog is the WAL */
	rocksdb_writeoptions_t *wo_wal;   /* WAL'd; durable writes then sync the WAL (write_synced) */
	rocksdb_readoptions_t *ro;
	/* write_synced's group sync: writes done (tickets), and the ticket the last sync covered. */
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;
	uint64_t written, synced;
	int syncing;
	int sync_err; /* a WAL sync failed: sticky, every durable write fails from then on */
};

struct idx_batch {
	rocksdb_writebatch_t *wb;
	idx *ix; /* whose column family handles the batch's operations name */
};

/* Convert and free a RocksDB error. Returns ENG_EFAILED if there was one. */
static int take_err(char *err)
{
	if (!err)
		return 0;
	rocksdb_free(err);
	return ENG_EFAILED;
}

int idx_open(const char *dir, int *fresh, idx **out)
{
	int rc = 0;
	char *err = NULL;
	struct stat st;
	idx *ix = xcalloc(1, sizeof *ix);
	*fresh = stat(dir, &st) != 0;
	pthread_mutex_init(&ix->sync_mu, NULL);
	pthread_cond_init(&ix->sync_cv, NULL);

	ix->opts = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(ix->opts, 1);
	rocksdb_options_set_create_missing_column_families(ix->opts, 1);
	/* Without the WAL, column families must flush together or a crash could keep a checkpoint
	 * whose entries were lost. */
	rocksdb_options_set_atomic_flush(ix->opts, 1);
	rocksdb_options_increase_parallelism(ix->opts, 2);
	rocksdb_options_set_write_buffer_size(ix->opts, 32u << 20);
	rocksdb_options_set_max_write_buffer_number(ix->opts, 3);
	rocksdb_options_set_compression(ix->opts, rocksdb_no_compression);
	rocksdb_options_set_max_open_files(ix->opts, 512);
	/*
	 * Writes of different threads insert into the memtables side by side instead of waiting, in
	 * one write group, for the slowest one. Without it the gateway's service thread, writing a
	 * pop's delivery-count record (a put and a delete), waited behind the offset thread's batch
	 * of one memtable insert per acknowledged topic (about 4 us each): 50-100 us per pop on
	 * average, up to 5 ms, with the event loop stopped (the pull benchmark's pops took 35% less
	 * time with it, and it ran 20-40% faster).
	 *
	 * What RocksDB gives up (its wiki, "unordered_write"): a reader may see part of a batch that
	 * another thread is inserting, and an iterator's view may gain entries written below its
	 * sequence number while it iterates. What stays: a write is visible to every read that
	 * starts after it returned, sequence numbers (so the last write of a key) keep the WAL's
	 * order, and flushes wait for inserts in flight (WaitForPendingWrites), so atomic_flush
	 * never persists half a batch. Nothing here needs more: readers of the consume queue race
	 * only the writer thread, whose writes are in order and already handled (a cursor opened
	 * before a run was written opens a second one, rd_next); offsets and host records are read
	 * key by key; and where two threads write one key (a topic deleted while an ack stores its
	 * offset, a marker dropped while it is written), the higher sequence number wins as before.
	 */
	rocksdb_options_set_unordered_write(ix->opts, 1);
	ix->cache = rocksdb_cache_create_lru(32u << 20);
	ix->bbto = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(ix->bbto, ix->cache);
	/* Most topic lookups at creation miss: a bloom filter answers them without reading blocks. */
	rocksdb_block_based_options_set_filter_policy(ix->bbto, rocksdb_filterpolicy_create_bloom(10));
	rocksdb_options_set_block_based_table_factory(ix->opts, ix->bbto);

	const rocksdb_options_t *cf_opts[CF_N] = {ix->opts, ix->opts, ix->opts, ix->opts};
	ix->db = rocksdb_open_column_families(ix->opts, dir, CF_N, cf_names, cf_opts, ix->cf, &err);
	if (err) {
		rc = take_err(err);
		goto out;
	}
	ix->wo_nowal = rocksdb_writeoptions_create();
	rocksdb_writeoptions_disable_WAL(ix->wo_nowal, 1);
	ix->wo_wal = rocksdb_writeoptions_create();
	ix->ro = rocksdb_readoptions_create();
out:
	if (rc) {
		idx_close(ix);
		return rc;
	}
	*out = ix;
	return 0;
}

void idx_close(idx *ix)
{
	if (!ix)
		return;
	if (ix->db) {
		rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
		rocksdb_flushoptions_set_wait(fo, 1);
		/* Entries before the checkpoint that covers them: a crash between leaves an old
		 * checkpoint, and recovery re-dispatches (idempotently). */
		int order[CF_N] = {CF_CQ, CF_TOPICS, CF_OFFSETS, CF_DEFAULT};
		for (int i = 0; i < CF_N; i++) {
			char *err = NULL;
			rocksdb_flush_cf(ix->db, fo, ix->cf[order[i]], &err);
			take_err(err);
		}
		rocksdb_flushoptions_destroy(fo);
		for (int i = 0; i < CF_N; i++)
			rocksdb_column_family_handle_destroy(ix->cf[i]);
		rocksdb_close(ix->db);
	}
	if (ix->wo_nowal)
		rocksdb_writeoptions_destroy(ix->wo_nowal);
	if (ix->wo_wal)
		rocksdb_writeoptions_destroy(ix->wo_wal);
	if (ix->ro)
		rocksdb_readoptions_destroy(ix->ro);
	rocksdb_options_destroy(ix->opts);
	rocksdb_block_based_options_destroy(ix->bbto);
	rocksdb_cache_destroy(ix->cache);
	pthread_mutex_destroy(&ix->sync_mu);
	pthread_cond_destroy(&ix->sync_cv);
	free(ix);
}

/* ---- Batches ---------------------------------------------------------------------------------- */

idx_batch *idx_batch_new(idx *ix)
{
	idx_batch *b = xcalloc(1, sizeof *b);
	b->wb = rocksdb_writebatch_create();
	b->ix = ix;
	return b;
}

void idx_batch_free(idx_batch *b)
{
	if (!b)
		return;
	rocksdb_writebatch_destroy(b->wb);
	free(b);
}

void idx_batch_clear(idx_batch *b)
{
	rocksdb_writebatch_clear(b->wb);
}

static inline void le64_put(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}
static inline uint64_t le64_get(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

void idx_batch_cq_run(idx_batch *b, uint64_t tid, uint64_t first, const idx_entry *e, size_t n)
{
	uint8_t key[IDX_CQ_KEY];
	uint8_t stackbuf[4 + 64 * IDX_ENTRY];
	size_t vlen = 4 + n * IDX_ENTRY;
	uint8_t *v = vlen <= sizeof stackbuf ? stackbuf : xmalloc(vlen);
	uint32_t cnt = (uint32_t)n;
	memcpy(v, &cnt, 4);
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = v + 4 + i * IDX_ENTRY;
		le64_put(p, e[i].pos);
		memcpy(p + 8, &e[i].len, 4);
		le64_put(p + 12, e[i].time_ms);
	}
	idx_cq_key(key, tid, first);
	rocksdb_writebatch_put_cf(b->wb, b->ix->cf[CF_CQ], (const char *)key, sizeof key,
				  (const char *)v, vlen);
	if (v != stackbuf)
		free(v);
}

void idx_batch_cq_trim(idx_batch *b, uint64_t tid, uint64_t from)
{
	uint8_t lo[IDX_CQ_KEY], hi[IDX_CQ_KEY];
	idx_cq_key(lo, tid, from);
	idx_cq_key(hi, tid + 1, 0);
	rocksdb_writebatch_delete_range_cf(b->wb, b->ix->cf[CF_CQ], (const char *)lo, sizeof lo,
					   (const char *)hi, sizeof hi);
}

static size_t topic_key(char *k, const char *name)
{
	size_t n = strlen(name);
	k[0] = 't';
	memcpy(k + 1, name, n);
	return n + 1;
}

void idx_batch_topic_put(idx_batch *b, const char *name, const idx_topic_meta *m)
{
	char k[1 + ENG_TOPIC_MAX + 1];
	uint8_t v[32];
	le64_put(v, m->id);
	le64_put(v + 8, m->created_ms);
	le64_put(v + 16, m->first_offset);
	le64_put(v + 24, m->create_pos);
	rocksdb_writebatch_put_cf(b->wb, b->ix->cf[CF_TOPICS], k, topic_key(k, name), (const char *)v,
				  sizeof v);
}

void idx_batch_topic_del(idx_batch *b, const char *name, uint64_t tid)
{
	char k[1 + ENG_TOPIC_MAX + 1];
	uint8_t lo[IDX_CQ_KEY], hi[IDX_CQ_KEY];
	rocksdb_writebatch_delete_cf(b->wb, b->ix->cf[CF_TOPICS], k, topic_key(k, name));
	idx_cq_key(lo, tid, 0);
	idx_cq_key(hi, tid + 1, 0);
	rocksdb_writebatch_delete_range_cf(b->wb, b->ix->cf[CF_CQ], (const char *)lo, sizeof lo,
					   (const char *)hi, sizeof hi);
	/* Offsets: "name\0..." up to "name\1". */
	size_t n = strlen(name);
	char olo[ENG_TOPIC_MAX + 2], ohi[ENG_TOPIC_MAX + 2];
	memcpy(olo, name, n);
	memcpy(ohi, name, n);
	olo[n] = 0;
	ohi[n] = 1;
	rocksdb_writebatch_delete_range_cf(b->wb, b->ix->cf[CF_OFFSETS], olo, n + 1, ohi, n + 1);
}

void idx_batch_checkpoint(idx_batch *b, uint64_t pos, uint64_t next_tid)
{
	uint8_t v[16];
	le64_put(v, pos);
	le64_put(v + 8, next_tid);
	rocksdb_writebatch_put_cf(b->wb, b->ix->cf[CF_DEFAULT], "checkpoint", 10, (const char *)v,
				  sizeof v);
}

int idx_batch_write(idx *ix, idx_batch *b)
{
	char *err = NULL;
	rocksdb_write(ix->db, ix->wo_nowal, b->wb, &err);
	return take_err(err);
}

/* ---- Point reads ------------------------------------------------------------------------------ */

int idx_checkpoint_get(idx *ix, uint64_t *pos, uint64_t *next_tid)
{
	char *err = NULL;
	size_t vlen = 0;
	char *v = rocksdb_get_cf(ix->db, ix->ro, ix->cf[CF_DEFAULT], "checkpoint", 10, &vlen, &err);
	if (err)
		return take_err(err);
	*pos = *next_tid = 0;
	if (v && vlen == 16) {
		*pos = le64_get((uint8_t *)v);
		*next_tid = le64_get((uint8_t *)v + 8);
	}
	rocksdb_free(v);
	return 0;
}

int idx_topic_get(idx *ix, const char *name, idx_topic_meta *m)
{
	char k[1 + ENG_TOPIC_MAX + 1], *err = NULL;
	size_t vlen = 0;
	char *v = rocksdb_get_cf(ix->db, ix->ro, ix->cf[CF_TOPICS], k, topic_key(k, name), &vlen, &err);
	if (err)
		return take_err(err);
	if (!v)
		return ENG_ENOTFOUND;
	int rc = 0;
	if (vlen != 32) {
		rc = ENG_ECORRUPT;
	} else {
		const uint8_t *p = (const uint8_t *)v;
		m->id = le64_get(p);
		m->created_ms = le64_get(p + 8);
		m->first_offset = le64_get(p + 16);
		m->create_pos = le64_get(p + 24);
	}
	rocksdb_free(v);
	return rc;
}

int idx_cq_last(idx *ix, uint64_t tid, uint64_t *next_offset, uint64_t *last_time_ms)
{
	uint8_t lo[IDX_CQ_KEY], hi[IDX_CQ_KEY];
	idx_cq_key(lo, tid, 0);
	idx_cq_key(hi, tid, UINT64_MAX);
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(ix->db, ix->ro, ix->cf[CF_CQ]);
	rocksdb_iter_seek_for_prev(it, (const char *)hi, sizeof hi);
	*next_offset = *last_time_ms = 0;
	if (rocksdb_iter_valid(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl == IDX_CQ_KEY && memcmp(k, lo, 8) == 0 && vl >= 4) {
			uint32_t cnt;
			memcpy(&cnt, v, 4);
			if (cnt && vl == 4 + (size_t)cnt * IDX_ENTRY) {
				*next_offset = be64_get(k + 8) + cnt;
				*last_time_ms = le64_get(v + 4 + (size_t)(cnt - 1) * IDX_ENTRY + 12);
			}
		}
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return take_err(err);
}

int idx_cq_since(idx *ix, uint64_t tid, uint64_t since_ms, uint64_t *from)
{
	uint8_t hi[IDX_CQ_KEY];
	idx_cq_key(hi, tid, UINT64_MAX);
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(ix->db, ix->ro, ix->cf[CF_CQ]);
	*from = UINT64_MAX;
	/* Backwards over the runs while their last entry is recent enough. */
	for (rocksdb_iter_seek_for_prev(it, (const char *)hi, sizeof hi); rocksdb_iter_valid(it);
	     rocksdb_iter_prev(it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		uint32_t cnt;
		if (kl != IDX_CQ_KEY || be64_get(k) != tid || vl < 4)
			break;
		memcpy(&cnt, v, 4);
		if (!cnt || vl != 4 + (size_t)cnt * IDX_ENTRY)
			continue;
		if (le64_get(v + 4 + (size_t)(cnt - 1) * IDX_ENTRY + 12) < since_ms)
			break;
		*from = be64_get(k + 8);
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return take_err(err);
}

int idx_topics_scan(idx *ix, idx_topic_fn fn, void *ctx)
{
	return idx_topics_scan_from(ix, "", NULL, fn, ctx);
}

int idx_topics_scan_from(idx *ix, const char *prefix, const char *after, idx_topic_fn fn, void *ctx)
{
	int rc = 0;
	char k[1 + ENG_TOPIC_MAX + 2];
	size_t pl = topic_key(k, prefix);
	char start[1 + ENG_TOPIC_MAX + 2];
	size_t sl = after && *after ? topic_key(start, after) : pl;
	if (!(after && *after))
		memcpy(start, k, pl);
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(ix->db, ix->ro, ix->cf[CF_TOPICS]);
	rocksdb_iter_seek(it, start, sl);
	if (after && *after && rocksdb_iter_valid(it)) {
		size_t kl;
		const char *key = rocksdb_iter_key(it, &kl);
		if (kl == sl && memcmp(key, start, sl) == 0)
			rocksdb_iter_next(it); /* strictly after */
	}
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *key = rocksdb_iter_key(it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
		if (kl < pl || memcmp(key, k, pl) != 0)
			break;
		if (vl != 32 || kl - 1 > ENG_TOPIC_MAX)
			continue;
		char name[ENG_TOPIC_MAX + 1];
		memcpy(name, key + 1, kl - 1);
		name[kl - 1] = 0;
		idx_topic_meta m = {le64_get(v), le64_get(v + 8), le64_get(v + 16), le64_get(v + 24)};
		if ((rc = fn(ctx, name, &m)) != 0)
			break;
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return rc ? rc : take_err(err);
}

static int count_one(void *ctx, const char *name, const idx_topic_meta *m)
{
	(void)name;
	(void)m;
	++*(uint64_t *)ctx;
	return 0;
}

uint64_t idx_topics_count(idx *ix)
{
	uint64_t n = 0;
	idx_topics_scan(ix, count_one, &n);
	return n;
}

/* ---- Cursor ----------------------------------------------------------------------------------- */

struct idx_cursor {
	rocksdb_iterator_t *it;
	rocksdb_readoptions_t *ro;
	uint8_t upper[IDX_CQ_KEY]; /* RocksDB borrows the bound: it must live as long as the iterator */
	uint64_t tid, want;        /* next offset to yield */
	const uint8_t *run;        /* current run's value (borrowed from the iterator) */
	uint64_t run_first;
	uint32_t run_n, run_i;
	int started, yielded;
};

int idx_cursor_open(idx *ix, uint64_t tid, uint64_t from, idx_cursor **out)
{
	idx_cursor *c = xcalloc(1, sizeof *c);
	uint8_t k[IDX_CQ_KEY];
	c->tid = tid;
	c->want = from;
	c->ro = rocksdb_readoptions_create();
	idx_cq_key(c->upper, tid + 1, 0);
	rocksdb_readoptions_set_iterate_upper_bound(c->ro, (const char *)c->upper, sizeof c->upper);
	c->it = rocksdb_create_iterator_cf(ix->db, c->ro, ix->cf[CF_CQ]);
	idx_cq_key(k, tid, from);
	rocksdb_iter_seek_for_prev(c->it, (const char *)k, sizeof k);
	size_t kl = 0;
	if (!rocksdb_iter_valid(c->it) || (rocksdb_iter_key(c->it, &kl), kl != IDX_CQ_KEY) ||
	    be64_get((const uint8_t *)rocksdb_iter_key(c->it, &kl)) != tid) {
		idx_cq_key(k, tid, 0);
		rocksdb_iter_seek(c->it, (const char *)k, sizeof k);
	}
	*out = c;
	return 0;
}

/* Load the run under the iterator. Returns 0 at the end of this topic's runs. */
static int load_run(idx_cursor *c)
{
	while (rocksdb_iter_valid(c->it)) {
		size_t kl, vl;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(c->it, &kl);
		const uint8_t *v = (const uint8_t *)rocksdb_iter_value(c->it, &vl);
		if (kl != IDX_CQ_KEY || be64_get(k) != c->tid)
			return 0;
		uint32_t cnt;
		if (vl >= 4 && (memcpy(&cnt, v, 4), vl == 4 + (size_t)cnt * IDX_ENTRY) && cnt) {
			c->run = v + 4;
			c->run_first = be64_get(k + 8);
			c->run_n = cnt;
			c->run_i = 0;
			return 1;
		}
		rocksdb_iter_next(c->it); /* a malformed value: skip it */
	}
	return 0;
}

int idx_cursor_next(idx_cursor *c, uint64_t *off, idx_entry *e)
{
	for (;;) {
		if (!c->started || c->run_i >= c->run_n) {
			if (c->started)
				rocksdb_iter_next(c->it);
			c->started = 1;
			if (!load_run(c)) {
				char *err = NULL;
				rocksdb_iter_get_error(c->it, &err);
				return take_err(err);
			}
		}
		uint64_t o = c->run_first + c->run_i;
		if (o < c->want) {
			/* Skip ahead inside the run (overlapping runs after recovery, or the seek). */
			uint64_t skip = c->want - o;
			c->run_i = skip >= c->run_n - c->run_i ? c->run_n : c->run_i + (uint32_t)skip;
			continue;
		}
		if (o > c->want && c->yielded)
			return 0; /* a gap: never expected; stop rather than skip a message */
		/* A gap before the first entry is the retained range starting later than asked (the
		 * older runs went with their segments, or a rebuild never saw them): start there. */
		c->want = o;
		c->yielded = 1;
		const uint8_t *p = c->run + (size_t)c->run_i * IDX_ENTRY;
		e->pos = le64_get(p);
		memcpy(&e->len, p + 8, 4);
		e->time_ms = le64_get(p + 12);
		*off = o;
		c->run_i++;
		c->want++;
		return 1;
	}
}

size_t idx_cursor_run_rest(const idx_cursor *c, uint64_t *first, idx_entry *out, size_t max)
{
	if (!c->yielded || !c->run_i || c->run_i > c->run_n)
		return 0;
	uint32_t i0 = c->run_i - 1; /* the entry yielded last */
	size_t n = c->run_n - i0;
	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = c->run + (size_t)(i0 + i) * IDX_ENTRY;
		out[i].pos = le64_get(p);
		memcpy(&out[i].len, p + 8, 4);
		out[i].time_ms = le64_get(p + 12);
	}
	*first = c->run_first + i0;
	return n;
}

void idx_cursor_close(idx_cursor *c)
{
	if (!c)
		return;
	rocksdb_iter_destroy(c->it);
	rocksdb_readoptions_destroy(c->ro);
	free(c);
}

/* ---- Consumer offsets --------------------------------------------------------------------------- */

/*
 * Every durable index write (consumer offsets, eng_meta_put/delete, a group's offsets deleted):
 * write @wb through the WAL, then sync the WAL: durable on return, as a write with sync=true, but
 * without holding RocksDB's write queue during the fdatasync. A synced write leads its write
 * group through the sync, so every other writer (the host's unsynced eng_meta_write on its event
 * loop, once per pop) queued behind it for the whole sync; SyncWAL syncs the files while writes
 * go on. The entries are visible to readers before they are durable: another thread's
 * eng_offset_get or eng_meta_get may see one whose sync is still running. Nothing is answered to
 * a client before the sync, a crash of the process keeps the written WAL, and a power loss in
 * that window reverts the entry, which to a consumer means a redelivery (at least once), never a
 * loss.
 *
 * Callers on several threads share syncs (as RocksDB's own group commit did for sync=true
 * writes): a write whose ticket a finished sync covers returns without one, and while a sync
 * runs the others wait for it, then the next one syncs for all of them.
 *
 * A failed sync is sticky, as a failed CommitLog is: after an fdatasync error the kernel may have
 * dropped the dirty pages and a second fdatasync returns 0 over the hole, so retrying would report
 * durable what is not (and a hole in the WAL ends its replay there, taking later records with
 * it). Every write the failed sync covered, and every later one, fails; reopening the engine
 * recovers from what reached the disk.
 */
static int write_synced(idx *ix, rocksdb_writebatch_t *wb)
{
	char *err = NULL;
	rocksdb_write(ix->db, ix->wo_wal, wb, &err);
	if (err)
		return take_err(err);
	pthread_mutex_lock(&ix->sync_mu);
	uint64_t ticket = ++ix->written; /* our write is in the WAL file: any later sync covers it */
	int rc = 0;
	while (ix->synced < ticket) {
		if (ix->sync_err) {
			rc = ix->sync_err;
			break;
		}
		if (ix->syncing) {
			pthread_cond_wait(&ix->sync_cv, &ix->sync_mu);
			continue;
		}
		uint64_t upto = ix->written;
		ix->syncing = 1;
		pthread_mutex_unlock(&ix->sync_mu);
		rocksdb_flush_wal(ix->db, 1, &err);
		rc = take_err(err);
		pthread_mutex_lock(&ix->sync_mu);
		ix->syncing = 0;
		if (!rc)
			ix->synced = upto;
		else
			ix->sync_err = rc; /* the waiters and every later write fail with it */
		pthread_cond_broadcast(&ix->sync_cv);
	}
	pthread_mutex_unlock(&ix->sync_mu);
	return rc;
}

static size_t offset_key(char *k, const char *group, const char *topic)
{
	size_t t = strlen(topic), g = strlen(group);
	memcpy(k, topic, t);
	k[t] = 0;
	memcpy(k + t + 1, group, g);
	return t + 1 + g;
}

int idx_offset_put(idx *ix, const char *group, const char *topic, uint64_t off)
{
	if (strlen(group) > 255)
		return ENG_EINVAL;
	return idx_offset_put_many(ix, &group, &topic, &off, 1);
}

int idx_offset_put_many(idx *ix, const char *const *groups, const char *const *topics,
			const uint64_t *offs, size_t n)
{
	char k[ENG_TOPIC_MAX + 2 + 256];
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	for (size_t i = 0; i < n; i++) {
		uint8_t v[8];
		le64_put(v, offs[i]);
		rocksdb_writebatch_put_cf(wb, ix->cf[CF_OFFSETS], k, offset_key(k, groups[i], topics[i]),
					  (const char *)v, sizeof v);
	}
	int rc = write_synced(ix, wb);
	rocksdb_writebatch_destroy(wb);
	return rc;
}

int idx_offset_get(idx *ix, const char *group, const char *topic, uint64_t *off)
{
	char k[ENG_TOPIC_MAX + 2 + 256], *err = NULL;
	size_t vlen = 0;
	if (strlen(group) > 255)
		return ENG_EINVAL;
	char *v = rocksdb_get_cf(ix->db, ix->ro, ix->cf[CF_OFFSETS], k, offset_key(k, group, topic),
				 &vlen, &err);
	if (err)
		return take_err(err);
	if (!v)
		return ENG_ENOTFOUND;
	int rc = vlen == 8 ? 0 : ENG_ECORRUPT;
	if (!rc)
		*off = le64_get((uint8_t *)v);
	rocksdb_free(v);
	return rc;
}

int idx_offset_delete_group(idx *ix, const char *group)
{
	size_t g = strlen(group);
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(ix->db, ix->ro, ix->cf[CF_OFFSETS]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl;
		const char *k = rocksdb_iter_key(it, &kl);
		const char *z = memchr(k, 0, kl);
		if (z && (size_t)(k + kl - z - 1) == g && memcmp(z + 1, group, g) == 0)
			rocksdb_writebatch_delete_cf(wb, ix->cf[CF_OFFSETS], k, kl);
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	int rc = err ? take_err(err) : write_synced(ix, wb);
	rocksdb_writebatch_destroy(wb);
	return rc;
}

/* ---- Host metadata ------------------------------------------------------------------------------ */

static size_t meta_key(char *k, const char *key)
{
	size_t n = strlen(key);
	k[0] = 'm';
	memcpy(k + 1, key, n);
	return n + 1;
}

int idx_meta_put(idx *ix, const char *key, const void *val, size_t len)
{
	char k[1 + 257];
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_writebatch_put_cf(wb, ix->cf[CF_DEFAULT], k, meta_key(k, key), val, len);
	int rc = write_synced(ix, wb);
	rocksdb_writebatch_destroy(wb);
	return rc;
}

int idx_meta_delete(idx *ix, const char *key)
{
	char k[1 + 257];
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	rocksdb_writebatch_delete_cf(wb, ix->cf[CF_DEFAULT], k, meta_key(k, key));
	int rc = write_synced(ix, wb);
	rocksdb_writebatch_destroy(wb);
	return rc;
}

int idx_meta_write(idx *ix, const eng_meta_op *ops, size_t n)
{
	char k[1 + 257], *err = NULL;
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	for (size_t i = 0; i < n; i++) {
		size_t kl = meta_key(k, ops[i].key);
		if (ops[i].val)
			rocksdb_writebatch_put_cf(wb, ix->cf[CF_DEFAULT], k, kl, ops[i].val, ops[i].len);
		else
			rocksdb_writebatch_delete_cf(wb, ix->cf[CF_DEFAULT], k, kl);
	}
	rocksdb_write(ix->db, ix->wo_wal, wb, &err);
	rocksdb_writebatch_destroy(wb);
	return take_err(err);
}

int idx_meta_get(idx *ix, const char *key, void **val, size_t *len)
{
	char k[1 + 257], *err = NULL;
	size_t vl = 0;
	char *v = rocksdb_get_cf(ix->db, ix->ro, ix->cf[CF_DEFAULT], k, meta_key(k, key), &vl, &err);
	if (err)
		return take_err(err);
	if (!v)
		return ENG_ENOTFOUND;
	*val = memcpy(xmalloc(vl + 1), v, vl); /* ours to give: callers free() it */
	((char *)*val)[vl] = 0;
	*len = vl;
	rocksdb_free(v);
	return 0;
}

int idx_meta_scan(idx *ix, const char *prefix, idx_meta_fn fn, void *ctx)
{
	char k[1 + 257];
	size_t pl = meta_key(k, prefix);
	int rc = 0;
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(ix->db, ix->ro, ix->cf[CF_DEFAULT]);
	for (rocksdb_iter_seek(it, k, pl); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t kl, vl;
		const char *key = rocksdb_iter_key(it, &kl);
		const char *v = rocksdb_iter_value(it, &vl);
		if (kl < pl || memcmp(key, k, pl) != 0 || kl - 1 > 256)
			break;
		char name[257];
		memcpy(name, key + 1, kl - 1);
		name[kl - 1] = 0;
		if ((rc = fn(ctx, name, v, vl)) != 0)
			break;
	}
	char *err = NULL;
	rocksdb_iter_get_error(it, &err);
	rocksdb_iter_destroy(it);
	return rc ? rc : take_err(err);
}
