/*
 * writer.c - appends: the host side (validate, copy, queue, run completions) and the writer
 * thread's group commit (assign offsets, one write, one fdatasync, one index batch, publish to
 * readers and subscribers, post completions).
 */
#define _GNU_SOURCE
#include "engine_int.h"

/* The index shares the log's file system. When the log meets ENOSPC, RocksDB must still be able
 * to flush and close (its own out-of-space paths are fragile: Debian's build even asserts). So the
 * engine holds a small reserve file, and gives it back the moment the log is full. */
#define RESERVE_BYTES (8u << 20)

void wr_reserve_take(eng_db *db)
{
	int fd = open(db->reserve_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int rc = posix_fallocate(fd, 0, RESERVE_BYTES);
	close(fd);
	if (rc) {
		unlink(db->reserve_path); /* no room for it: the next full disk meets RocksDB unguarded */
		db_log(db, 1, "cannot reserve %u bytes for a full disk: %s", RESERVE_BYTES, strerror(rc));
	}
}

static void wr_reserve_release(eng_db *db)
{
	unlink(db->reserve_path);
}

/* A message key of the request being staged, in a per-request set (duplicates within it). */
typedef struct req_key {
	hnode hn;
	const req *r;
	size_t i;          /* the message it belongs to (set members) */
	const char *key;   /* the key looked up (lookups) */
	size_t len;
} req_key;

static int req_key_eq(const hnode *n, const void *k)
{
	const req_key *a = (const req_key *)n, *b = k;
	const msg_ref *m = &a->r->msgs[a->i];
	return m->key_len == b->len && !memcmp(a->r->blob + m->key_off, b->key, b->len);
}

/* Queue @r's records. Returns 0 or a code for this request only (sticky codes stop the batch). */
static int stage_append(eng_db *db, req *r, uint64_t now, uint64_t mono, topic **touched)
{
	topic *t = NULL;
	int rc = tc_load(db, r->topic, r->parent, &t);
	if (rc == ENG_ENOTFOUND) {
		if (r->expected != ENG_NO_EXPECT && r->expected != 0) {
			r->res.next_offset = 0;
			return ENG_EMISMATCH;
		}
		rc = tc_create(db, r->topic, r->parent, now, &t);
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
		hmap seen = {0}; /* this request's keys so far */
		req_key *seen_keys = xcalloc(r->n, sizeof *seen_keys);
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
			/* The same key twice in one request: the second is a duplicate of the first. */
			req_key k = {.r = r, .key = key, .len = m->key_len};
			uint64_t h = hmap_hash(key, m->key_len, 3);
			req_key *prev = (req_key *)hmap_find(&seen, h, req_key_eq, &k);
			if (prev) {
				r->dup[i] = 1;
				r->offsets[i] = r->offsets[prev->i];
				continue;
			}
			seen_keys[i] = (req_key){.hn.hash = h, .r = r, .i = i};
			hmap_insert(&seen, &seen_keys[i].hn);
		is_fresh:
			r->offsets[i] = t->next + fresh++;
		}
		hmap_free(&seen);
		free(seen_keys);
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
		t->batch_first = t->next;
		t->batch_first_prio = ENG_PRIORITY_NONE;
		t->batch_next = *touched;
		*touched = t;
	}
	uint64_t first = t->next, o = first;
	size_t rkl = strlen(r->rkey);
	/* One atomic append, one segment: recovery can then drop a torn one whole. */
	uint64_t total = rkl;
	for (size_t i = 0; i < r->n; i++)
		if (!r->keyed || !r->dup[i])
			total += cl_rec_size(r->msgs[i].ev_len, r->msgs[i].key_len, r->msgs[i].len);
	if ((rc = cl_reserve(db->log, total)) != 0)
		return rc;
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
			       (const char *)r->blob + m->key_off, m->key_len, r->rkey, rk, (uint8_t)m->prio,
			       r->blob + m->data_off, m->len, &pos);
		if (rc)
			break;
		tc_blk_push(t, pos, cl_rec_size(m->ev_len, m->key_len + rk, m->len), now);
		tc_note_event(t, ev);
		if (o == t->batch_first)
			t->batch_first_prio = m->prio == CL_PRIO_NONE ? ENG_PRIORITY_NONE : (int)m->prio - 1;
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
		db->last_sync_mono = db_mono_ms();
	}
	if (!rc) {
		/* Only full blocks go to RocksDB now; the rest wait in memory for the next checkpoint
		 * (readers find them in the cache), so a busy topic costs one put per block, not one
		 * per batch. New topics' metadata is in the batch already. */
		for (topic *t = touched; t; t = t->batch_next)
			if (t->blk_n >= BLOCK_ENTRIES)
				tc_blk_stage(db, t);
		rc = idx_batch_write(db->ix, db->batch);
	}
	idx_batch_clear(db->batch);
	tc_blk_settle(db, rc == 0);
	if (rc) {
		db_log(db, 0, "commit failed: %s; refusing appends until reopened", eng_strerror(rc));
		if (rc == ENG_EFULL)
			wr_reserve_release(db);
		pthread_mutex_lock(&db->q_mu);
		if (!db->failed)
			db->failed = rc == ENG_EFULL ? ENG_EFULL : ENG_EFAILED;
		pthread_mutex_unlock(&db->q_mu);
		__atomic_store_n(&db->st.failed, db->failed, __ATOMIC_RELAXED);
	}
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
			subs_notify_topic(db, t, t->visible, t->batch_first, t->batch_first_prio);
		pthread_mutex_unlock(&db->s_mu);
	}
	for (topic *t = touched, *nx; t; t = nx) {
		nx = t->batch_next;
		t->in_batch = 0;
		t->batch_next = NULL;
	}
	return rc;
}

/* Delete a topic (DELETE, or expiry when idle since before r->expected). */
static int do_delete(eng_db *db, req *r, uint64_t now)
{
	topic *t;
	const parent_def *p = r->parent;
	int rc = tc_load(db, r->topic, p, &t);
	if (rc)
		return rc;
	if (r->op == OP_EXPIRE && t->last_write_ms >= r->expected) {
		t->last_used_mono = db_mono_ms();
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
	subs_notify_topic(db, t, 0, 0, ENG_PRIORITY_NONE);
	pthread_mutex_unlock(&db->s_mu);
	tc_forget(db, t);
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
	uint64_t now = db_now_ms(), mono = db_mono_ms();
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
			STAT_ADD(db, appended_msgs, r->n - r->res.n_dups);
		}
	STAT_ADD(db, appended_bytes, staged_bytes);
	STAT_ADD(db, batches, batches);
	finish(db, list);
	db_wake_host(db);
}

void *wr_main(void *arg)
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
		uint64_t mono = db_mono_ms();
		if (db->cfg.durability == ENG_DURABLE_INTERVAL && mono - db->last_sync_mono >= db->cfg.interval_ms) {
			cl_sync(db->log);
			STAT_ADD(db, fsyncs, 1);
			db->last_sync_mono = mono;
		}
		if (stop) {
			tc_sweep(db, mono, 1); /* finish the cycle under way, */
			tc_sweep(db, mono, 1); /* and a whole one: everything indexed, checkpoint at the end */
			break;
		}
		tc_sweep(db, mono, 0);
	}
	return NULL;
}

int wr_enqueue(eng_db *db, req *r, int wait)
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
	int rc = db_topic_parent(db, topic_name, NULL, &p);
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
		if (msgs[i].has_priority && msgs[i].priority > ENG_PRIORITY_MAX)
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
		m->prio = msgs[i].has_priority ? (uint32_t)msgs[i].priority + 1 : CL_PRIO_NONE;
		if (msgs[i].len)
			memcpy(r->blob + o, msgs[i].data, msgs[i].len);
		o += msgs[i].len;
	}
	if ((rc = wr_enqueue(db, r, 0)) != 0)
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

int wr_sync_op(eng_db *db, enum req_op op, const char *topic_name, uint64_t arg)
{
	req *r = xcalloc(1, sizeof *r);
	r->op = op;
	r->expected = arg;
	if (topic_name) {
		int rc = db_topic_parent(db, topic_name, NULL, &r->parent);
		if (rc) {
			free(r);
			return rc;
		}
		strcpy(r->topic, topic_name);
	}
	int rc = wr_enqueue(db, r, 1);
	if (!rc)
		rc = r->res.rc;
	free(r);
	return rc;
}

int eng_topic_delete(eng_db *db, const char *topic_name)
{
	return wr_sync_op(db, OP_DELETE, topic_name, 0);
}
