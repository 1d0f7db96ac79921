/*
 * recovery.c - at open: truncate a torn log tail, re-dispatch every record after the index
 * checkpoint (all of them when the index is gone, or when it knows more than the log holds).
 * Runs before the writer starts, on the opening thread.
 */
#define _GNU_SOURCE
#include "engine_int.h"

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

int rec_recover(eng_db *db, const char *index_dir)
{
	uint64_t checkpoint, t0 = db_mono_ms(), truncated = 0;
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
		db_log(db, 1, "index checkpoint %llu is past the log's end; rebuilding the index",
		      (unsigned long long)checkpoint);
		idx_batch_free(db->batch);
		db->batch = NULL;
		idx_close(db->ix);
		db->ix = NULL;
		if ((rc = rm_rf(index_dir)) != 0)
			return rc;
	}
	if (truncated)
		db_log(db, 1, "truncated a torn tail of %llu bytes", (unsigned long long)truncated);
	if (fresh && db->st.recovered_bytes)
		db_log(db, 1, "index was missing: rebuilt from the log");
	db->st.recovery_us = (db_mono_ms() - t0) * 1000;
	db->st.topics = idx_topics_count(db->ix);
	return rc;
}
