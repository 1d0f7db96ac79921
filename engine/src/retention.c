/*
 * retention.c - idle lite topics expire after their parent's TTL; old log segments are deleted
 * (after re-declaring the topics whose create records they hold). Run by the maintenance thread,
 * or by eng_maintain() directly; deletions go through the writer.
 */
#define _GNU_SOURCE
#include "engine_int.h"

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
	const parent_def *p = slash ? db_find_parent(s->db, name, (size_t)(slash - name)) : NULL;
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
	topic *t = (topic *)hmap_find(&s->db->topics, tc_hash(name), tc_eq, name);
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
		if (wr_enqueue(db, r, 0) != 0) {
			free(r);
			new_start = 0; /* could not re-declare: delete no segment this time */
		}
	}
	if (s.n_keep && wr_sync_op(db, OP_BARRIER, NULL, 0) != 0)
		new_start = 0;
	free(s.keep);
	for (size_t i = 0; !rc && i < s.n; i++) {
		/* Through the writer, which re-checks the last write: a publish racing the scan wins. */
		int r = wr_sync_op(db, OP_EXPIRE, s.names[i], s.cutoffs[i]);
		if (r && r != ENG_ENOTFOUND)
			rc = r;
	}
	free(s.names);
	free(s.cutoffs);
	int deleted = cl_delete_head(db->log, older, db->cfg.log_max_bytes, new_start, 0, &new_start);
	if (deleted > 0)
		db_log(db, 2, "retention deleted %d segment(s); log starts at %llu", deleted,
		      (unsigned long long)new_start);
	return rc;
}

void *ret_main(void *arg)
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
			eng_maintain(db, db_now_ms());
			pthread_mutex_lock(&db->m_mu);
		}
	}
	pthread_mutex_unlock(&db->m_mu);
	return NULL;
}
