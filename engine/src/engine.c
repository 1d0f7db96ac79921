/*
 * engine.c - opening and closing the engine, its configuration, errors and counters, and the
 * thin calls that go straight to the index (consumer offsets, host metadata).
 * The rest of engine.h lives in writer.c (appends), read.c (reads), subs.c (subscriptions and the
 * ready set), retention.c and recovery.c; engine_int.h holds the shared state and its locks.
 */
#define _GNU_SOURCE
#include "engine_int.h"

uint64_t db_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t db_mono_ms(void)
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

void db_log(eng_db *db, int level, const char *fmt, ...)
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

const parent_def *db_find_parent(const eng_db *db, const char *name, size_t len)
{
	for (size_t i = 0; i < db->n_parents; i++)
		if (db->parents[i].len == len && memcmp(db->parents[i].name, name, len) == 0)
			return &db->parents[i];
	return NULL;
}

/* Validate a topic name and find its declared parent. */
int db_topic_parent(const eng_db *db, const char *name, size_t *len_out, const parent_def **p)
{
	size_t len = strnlen(name, ENG_TOPIC_MAX + 1);
	if (len > ENG_TOPIC_MAX || eng_topic_name_check(name, len))
		return ENG_EBADNAME;
	const char *slash = memchr(name, '/', len);
	*p = db_find_parent(db, name, (size_t)(slash - name));
	if (!*p)
		return ENG_ENOPARENT;
	if (len_out)
		*len_out = len;
	return 0;
}

void db_wake_host(eng_db *db)
{
	uint64_t one = 1;
	if (write(db->efd, &one, sizeof one) < 0) {
		/* EAGAIN: the counter is already non-zero, the host will wake anyway. */
	}
	if (db->cfg.wake)
		db->cfg.wake(db->cfg.cb_ctx);
}

static int group_check(const char *group)
{
	return names_token_check(group, strnlen(group, 129), 128);
}

int eng_offset_commit(eng_db *db, const char *group, const char *topic_name, uint64_t offset)
{
	const parent_def *p;
	int rc = db_topic_parent(db, topic_name, NULL, &p);
	if (!rc)
		rc = group_check(group);
	return rc ? rc : idx_offset_put(db->ix, group, topic_name, offset);
}

int eng_offset_commit_batch(eng_db *db, const eng_offset_entry *entries, size_t n)
{
	const parent_def *p;
	int rc = 0;
	if (!n)
		return 0;
	const char **groups = xmalloc(n * sizeof *groups), **topics = xmalloc(n * sizeof *topics);
	uint64_t *offs = xmalloc(n * sizeof *offs);
	for (size_t i = 0; i < n && !rc; i++) {
		if ((rc = db_topic_parent(db, entries[i].topic, NULL, &p)) == 0)
			rc = group_check(entries[i].group);
		groups[i] = entries[i].group;
		topics[i] = entries[i].topic;
		offs[i] = entries[i].offset;
	}
	if (!rc)
		rc = idx_offset_put_many(db->ix, groups, topics, offs, n);
	free(groups);
	free(topics);
	free(offs);
	return rc;
}

int eng_offset_get(eng_db *db, const char *group, const char *topic_name, uint64_t *out)
{
	const parent_def *p;
	int rc = db_topic_parent(db, topic_name, NULL, &p);
	if (!rc)
		rc = group_check(group);
	return rc ? rc : idx_offset_get(db->ix, group, topic_name, out);
}

int eng_offset_delete_group(eng_db *db, const char *group)
{
	int rc = group_check(group);
	return rc ? rc : idx_offset_delete_group(db->ix, group);
}

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

int eng_meta_write(eng_db *db, const eng_meta_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = meta_key_check(ops[i].key);
		if (rc)
			return rc;
	}
	return n ? idx_meta_write(db->ix, ops, n) : 0;
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
		    in->priority > 9 || db_find_parent(db, in->name, len))
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
	wr_reserve_take(db);
	cl_faults faults = {cfg->fail_write_after, cfg->fail_fsync_after, cfg->fail_errno};
	snprintf(path, sizeof path, "%s/log", db->dir);
	if ((rc = cl_open(path, db->cfg.segment_bytes, &faults, &db->log)) != 0)
		goto fail;
	snprintf(path, sizeof path, "%s/index", db->dir);
	if ((rc = rec_recover(db, path)) != 0)
		goto fail;
	db->last_sync_mono = db->last_sweep_mono = db_mono_ms();
	if ((rc = pthread_create(&db->writer, NULL, wr_main, db)) != 0)
		goto fail;
	if ((rc = pthread_create(&db->maint, NULL, ret_main, db)) != 0) {
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
	free(db->staged);
	HMAP_FOREACH_SAFE(&db->topics, n, tmp)
	tc_free((topic *)n);
	hmap_free(&db->topics);
	subs_free_all(db);
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
	out->index_seeks = __atomic_load_n(&db->st.index_seeks, __ATOMIC_RELAXED);
	out->log_reads = __atomic_load_n(&db->st.log_reads, __ATOMIC_RELAXED);
	out->log_records_read = __atomic_load_n(&db->st.log_records_read, __ATOMIC_RELAXED);
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

