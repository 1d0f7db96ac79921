/*
 * read.c - reads (engine.h): a topic's durable range, and its messages from an offset, found
 * through the consume queue in RocksDB and then the topic's open block in memory. Any thread.
 */
#define _GNU_SOURCE
#include "engine_int.h"

/* Copy up to 64 entries for offsets s->want.. from @src (@n of them there) into s->mem. */
static void rd_fill(rd_src *s, const idx_entry *src, size_t n)
{
	if (n > sizeof s->mem / sizeof s->mem[0])
		n = sizeof s->mem / sizeof s->mem[0];
	memcpy(s->mem, src, n * sizeof *s->mem);
	s->mem_first = s->want;
	s->mem_n = n;
	s->mem_i = 0;
}

/* The cursor just yielded from a run this read has not offered yet: keep the run's entries from
 * there on in the topic's cache entry (topic.rrun), if it is still the same topic. */
static void rd_keep_run(rd_src *s)
{
	idx_entry run[RRUN_MAX];
	uint64_t first;
	size_t n = idx_cursor_run_rest(s->c, &first, run, RRUN_MAX);
	if (!n)
		return;
	s->rrun_end = first + n;
	pthread_mutex_lock(&s->db->t_mu);
	topic *t = (topic *)hmap_find(&s->db->topics, tc_hash(s->name), tc_eq, s->name);
	if (t && t->tid == s->tid) {
		if (t->rrun_n != n)
			t->rrun = xrealloc(t->rrun, n * sizeof *t->rrun);
		memcpy(t->rrun, run, n * sizeof *run);
		t->rrun_first = first;
		t->rrun_n = n;
	}
	pthread_mutex_unlock(&s->db->t_mu);
}

int rd_next(rd_src *s, uint64_t *off, idx_entry *e)
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
		if (s->c && !s->cursor_done) {
			int got = idx_cursor_next(s->c, off, e);
			if (got < 0)
				return got;
			if (got == 1 && (*off == s->want || (!s->yielded && *off > s->want))) {
				if (*off >= s->rrun_end)
					rd_keep_run(s);
				s->want = *off + 1;
				s->yielded = 1;
				return 1;
			}
			s->cursor_done = 1;
		}
		/* Memory first: a reader that keeps up (a live stream) finds what it wants in the
		 * topic's open block, and one that reads a topic's older messages in order finds the
		 * rest of the run it read last; neither opens a RocksDB iterator. */
		int in_rocksdb = 0;
		pthread_mutex_lock(&s->db->t_mu);
		topic *t = (topic *)hmap_find(&s->db->topics, tc_hash(s->name), tc_eq, s->name);
		if (t && t->tid == s->tid && t->blk_first <= s->want && s->want < t->blk_first + t->blk_n) {
			size_t i0 = (size_t)(s->want - t->blk_first);
			rd_fill(s, t->blk + i0, t->blk_n - i0);
		} else if (t && t->tid == s->tid && t->rrun_first <= s->want &&
			   s->want < t->rrun_first + t->rrun_n) {
			size_t i0 = (size_t)(s->want - t->rrun_first);
			rd_fill(s, t->rrun + i0, t->rrun_n - i0);
		} else {
			in_rocksdb = !t || t->tid != s->tid || s->want < t->blk_first;
		}
		pthread_mutex_unlock(&s->db->t_mu);
		if (s->mem_n > s->mem_i)
			continue;
		if (!in_rocksdb)
			return 0;
		/* Behind the open block: read the index from here. Entries leave the block only
		 * after their RocksDB write, but an iterator opened before that write does not see
		 * them, so a second iterator at the same offset is allowed (and no more: the
		 * entry is missing for good, e.g. deleted by retention). */
		if (s->opened_at == s->want + 1 && s->opens >= 2)
			return 0;
		s->opens = s->opened_at == s->want + 1 ? s->opens + 1 : 1;
		s->opened_at = s->want + 1;
		idx_cursor_close(s->c);
		s->c = NULL;
		STAT_ADD(s->db, index_seeks, 1);
		int rc = idx_cursor_open(s->db->ix, s->tid, s->want, &s->c);
		if (rc)
			return rc;
		s->cursor_done = 0;
	}
}

void rd_end(rd_src *s)
{
	idx_cursor_close(s->c);
	s->c = NULL;
}

/* What a reader may see of @name: durable range and ids, from the cache or the index. */
static int rd_topic_view(eng_db *db, const char *name, topic_view *v)
{
	const parent_def *p;
	int rc = db_topic_parent(db, name, NULL, &p);
	if (rc)
		return rc;
	v->parent = p;
	uint64_t mono = db_mono_ms();
	pthread_mutex_lock(&db->t_mu);
	topic *t = (topic *)hmap_find(&db->topics, tc_hash(name), tc_eq, name);
	int have = t && (t->visible > 0 || !t->fresh);
	if (t) {
		t->last_read_mono = mono; /* read: the sweep keeps it (and its rrun) in memory */
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
static int rd_first_in_log(eng_db *db, const char *name, topic_view *v)
{
	uint64_t start = cl_start(db->log);
	if (start == 0 || v->first >= v->next)
		return 0;
	rd_src src = {.db = db, .name = name, .tid = v->tid, .want = v->first, .limit = v->next};
	uint64_t off;
	idx_entry e;
	int rc;
	while ((rc = rd_next(&src, &off, &e)) == 1) {
		if (e.pos >= start) {
			if (off > v->first)
				v->first = off; /* the older entries are gone altogether */
			break;
		}
		v->first = off + 1;
	}
	rd_end(&src);
	return rc < 0 ? rc : 0;
}

int eng_topic_info_get(eng_db *db, const char *name, eng_topic_info *out)
{
	topic_view v;
	int rc = rd_topic_view(db, name, &v);
	if (!rc)
		rc = rd_first_in_log(db, name, &v);
	if (rc)
		return rc;
	out->first_offset = v.first;
	out->next_offset = v.next;
	out->created_ms = v.created;
	out->last_write_ms = v.last_write;
	out->priority = v.parent->priority;
	return 0;
}

/*
 * Index entries taken for one read of the log: records that lie end to end there (the messages of
 * one batch publish, or of a topic written alone for a while) are read with one pread instead of
 * one each. With one message in flight per topic, each pop reads the message it hands out and the
 * one after it (consume.c): two adjacent records, one system call.
 */
#define RD_RUN_MAX 16
#define RD_RUN_BYTES (64u * 1024u) /* a longer run is read in several (one record: any size) */

typedef struct rd_run {
	uint64_t off[RD_RUN_MAX];
	idx_entry e[RD_RUN_MAX];
	size_t n;
	uint64_t bytes;          /* sum of the entries' record lengths */
	int read;                /* scratch holds every record of the run (else: read one by one) */
	int ended;               /* the index has no more entries for this read */
	int have_next;           /* an entry was taken from the index that the run could not hold */
	uint64_t next_off;
	idx_entry next;
} rd_run;

/* Can @e join @r (adjacent in the log, room left)? */
static int rd_run_fits(const rd_run *r, const idx_entry *e)
{
	if (!r->n)
		return 1;
	const idx_entry *last = &r->e[r->n - 1];
	return r->n < RD_RUN_MAX && last->pos + last->len == e->pos &&
	       r->bytes + e->len <= RD_RUN_BYTES;
}

/*
 * Take the next run from @src: entries the read will surely use, given that it stops at @max_count
 * messages or once @payload reaches @max_bytes (a record's length bounds its payload, so an entry
 * taken here is one the old one-at-a-time loop would have read too). @return 0 (r->n may be 0: the
 * topic's visible end), or an engine error.
 */
static int rd_run_take(rd_src *src, rd_run *r, uint64_t limit, size_t n, size_t max_count,
		       size_t payload, size_t max_bytes)
{
	uint64_t bound = payload;
	r->n = 0;
	r->bytes = 0;
	r->read = 0;
	while (!r->ended && n + r->n < max_count && (n + r->n == 0 || bound < max_bytes)) {
		if (!r->have_next) {
			int got = rd_next(src, &r->next_off, &r->next);
			if (got < 0)
				return got;
			if (got == 0 || r->next_off >= limit) {
				r->ended = 1;
				break;
			}
			r->have_next = 1;
		}
		if (!rd_run_fits(r, &r->next))
			break; /* it starts the next run */
		r->off[r->n] = r->next_off;
		r->e[r->n++] = r->next;
		r->bytes += r->next.len;
		bound += r->next.len;
		r->have_next = 0;
	}
	return 0;
}

int eng_read(eng_db *db, const char *name, uint64_t from, size_t max_count, size_t max_bytes,
	     eng_read_result *out)
{
	topic_view v;
	uint8_t *scratch = NULL;
	size_t scratch_cap = 0;
	int rc = rd_topic_view(db, name, &v);
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
	rd_src src = {.db = db, .name = name, .tid = v.tid, .want = start, .limit = v.next};
	size_t cap = max_count < 64 ? max_count : 64;
	eng_msg_view *views = xmalloc(cap * sizeof *views);
	size_t data_cap = 4096, data_len = 0, n = 0, payload = 0;
	uint8_t *data = xmalloc(data_cap);
	rd_run run = {.n = 0};
	/* Views point into @data, which may move while it grows: record offsets, fix up at the end. */
	while (n < max_count && (n == 0 || payload < max_bytes)) {
		if ((rc = rd_run_take(&src, &run, v.next, n, max_count, payload, max_bytes)) != 0)
			goto out;
		if (!run.n)
			break;
		if (run.bytes > scratch_cap) {
			scratch_cap = run.bytes;
			scratch = xrealloc(scratch, scratch_cap);
		}
		/* One pread for the run; if it fails (a record before the log's start, a run that
		 * crosses into the next segment, a deletion under us), each record is read alone and
		 * meets the failure it met before. */
		run.read = run.n > 1 && cl_read(db->log, run.e[0].pos, run.bytes, scratch) == 0;
		if (run.read) {
			STAT_ADD(db, log_reads, 1);
			STAT_ADD(db, log_records_read, run.n);
		}
		for (size_t i = 0; i < run.n; i++) {
			uint64_t off = run.off[i];
			const idx_entry *e = &run.e[i];
			uint8_t *rec_bytes = run.read ? scratch + (e->pos - run.e[0].pos) : scratch;
			if (n == 0 && off > start) {
				/* Nothing older is left in the index: the retained range starts here. */
				v.first = off;
				out->below_retained = from < off;
			}
			if (e->pos < log_start) {
				/* Its segment was deleted by retention: the retained range starts later. */
				v.first = off + 1;
				out->below_retained = from < v.first;
				continue;
			}
			if (!run.read) {
				STAT_ADD(db, log_reads, 1);
				if ((rc = cl_read(db->log, e->pos, e->len, scratch)) != 0) {
					if (rc == ENG_ENOTFOUND) { /* deleted under us */
						v.first = off + 1;
						rc = 0;
						continue;
					}
					goto out;
				}
				STAT_ADD(db, log_records_read, 1);
			}
			cl_rec rec;
			if (cl_decode(rec_bytes, e->len, &rec) != 0 || rec.total != e->len ||
			    rec.topic_id != v.tid || rec.offset != off ||
			    (rec.flags & CL_TYPE_MASK) != CL_REC_MSG) {
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
						  .len = rec.payload_len,
						  .priority = rec.prio == CL_PRIO_NONE ? ENG_PRIORITY_NONE
										       : (int)rec.prio - 1};
			data_len += need;
			payload += rec.payload_len;
			n++;
		}
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
	rd_end(&src);
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

typedef struct topic_scan {
	eng_topic_fn fn;
	void *ctx;
	size_t left;
} topic_scan;

static int topic_scan_visit(void *ctx, const char *name, const idx_topic_meta *m)
{
	topic_scan *s = ctx;
	if (!s->left)
		return 1;
	s->left--;
	return s->fn(s->ctx, name, m->created_ms);
}

int eng_topic_scan(eng_db *db, const char *parent, const char *after, size_t max, eng_topic_fn fn,
		   void *ctx)
{
	size_t plen = strnlen(parent, ENG_PARENT_MAX + 1);
	char prefix[ENG_PARENT_MAX + 2];
	if (names_parent_check(parent, plen))
		return ENG_EBADNAME;
	if (!db_find_parent(db, parent, plen))
		return ENG_ENOPARENT;
	if (after && strnlen(after, ENG_TOPIC_MAX + 1) > ENG_TOPIC_MAX)
		return ENG_EBADNAME;
	memcpy(prefix, parent, plen);
	prefix[plen] = '/';
	prefix[plen + 1] = 0;
	topic_scan s = {fn, ctx, max};
	int rc = idx_topics_scan_from(db->ix, prefix, after, topic_scan_visit, &s);
	return rc == 1 && !s.left ? 0 : rc;
}
