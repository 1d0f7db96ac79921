/*
 * dedup.c - producer keys: each active topic's index of the message and request keys it stored
 * within its parent's window, rebuilt lazily from the log. Writer thread only.
 */
#define _GNU_SOURCE
#include "engine_int.h"

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

dd_node *dd_find(topic *t, int is_req, const char *key, size_t len, uint64_t now)
{
	dd_key k = {key, len, (uint8_t)is_req};
	dd_node *d = (dd_node *)hmap_find(&t->dd, hmap_hash(key, len, (uint64_t)is_req + 11), dd_eq, &k);
	return d && now - d->time_ms <= t->parent->dedup_window_ms ? d : NULL;
}

/* Remember a key; forget the oldest ones past the window or the per-topic cap. */
void dd_add(topic *t, int is_req, const char *key, size_t len, uint64_t offset,
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
int dd_load(eng_db *db, topic *t, uint64_t now)
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
	rd_src src = {.db = db, .name = t->name, .tid = t->tid, .want = from, .limit = t->visible};
	uint8_t *buf = NULL;
	size_t cap = 0;
	uint64_t off, req_first = 0;
	uint32_t req_count = 0;
	char rkey[ENG_KEY_MAX + 1];
	size_t rkl = 0;
	idx_entry e;
	while ((rc = rd_next(&src, &off, &e)) == 1) {
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
	rd_end(&src);
	free(buf);
	return rc < 0 || rc > 1 ? rc : 0;
}
