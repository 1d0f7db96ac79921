/*
 * dcounts.c - delivery counts that survive restarts, SIGKILL included (consume.c's helper).
 * Service thread only (groups.h).
 *
 * The journal. Each pop writes, before its reply, one record with the counts of everything it
 * handed out, in one unsynced eng_meta_write (RocksDB's WAL, no fsync):
 *
 *   "gdj/<id>/<seq>"   "<topic> <offset>:<count>[,<offset>:<count>...]\n" per run of one topic's
 *                      hand-outs; <seq> is 16 hex digits, so key order is write order.
 *
 * One memtable insert per pop: a record per topic, rewritten by every pop, cost one per topic
 * handed out from (32 per pop of 32, a fifth of the service thread under the pull benchmark).
 *
 * Compaction. A record is deleted (in the same write as the next pop's record, or by the 1 s
 * housekeeping) once none of its counts is current: each of its entries was handed out again (a
 * later record holds that count), or acknowledged and its position stored (durable: a crash before
 * that hands the message out again, with its count), or left the group's state (gw_dcounts_drop).
 * So the journal holds about one record per pop whose messages are still in flight, plus a second
 * of deletes.
 *
 * The fold. At startup, before any topic state exists, gw_journal_fold() reads the whole journal
 * and folds it, per topic, into the topic's record
 *
 *   "gdc/<id>/<topic>" "<offset>:<count>[,<offset>:<count>...]"
 *
 * (later journal records win over earlier ones and over what the topic's record held; counts of
 * acknowledged messages - below the stored position or in the gap record - and of topics that no
 * longer exist are left out), and deletes the journal, all in one write. A topic's record is read
 * when its state is made (gw_dcounts_load), and deleted with the state once no count it holds is
 * waiting to be taken again; it is only rewritten by the next fold, or when a definition change
 * drops a topic with messages in flight. Nothing here needs a sync: RocksDB replays its WAL in
 * order, so a power loss that loses a record loses everything written after it too.
 */
#include "groups.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "route.h"
#include "xalloc.h"

#define JOURNAL_PREFIX "gdj/"
#define COUNTS_PREFIX "gdc/"
#define JKEY_MAX 48 /* "gdj/" + 10 digits + "/" + 16 hex digits */

static void
journal_key(uint32_t gid, uint64_t seq, char *key, size_t sz)
{
	snprintf(key, sz, JOURNAL_PREFIX "%u/%016llx", gid, (unsigned long long)seq);
}

void
gw_dcounts_key(const struct gw_group *g, const char *topic, char *key, size_t sz)
{
	snprintf(key, sz, COUNTS_PREFIX "%u/%s", g->id, topic);
}

/* ---- Count lists: "offset:count,..." ---------------------------------------------------------- */

struct dlist {
	struct gw_dcount *v;
	uint32_t n, cap;
};

static void
dlist_add(struct dlist *l, uint64_t offset, uint32_t delivery)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = (struct gw_dcount){ offset, delivery };
}

/* Is @p offset in @p l, sorted by offset? */
static int
dlist_has(const struct dlist *l, uint64_t offset)
{
	uint32_t lo = 0, hi = l->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (l->v[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < l->n && l->v[lo].offset == offset;
}

/*
 * Append the pairs of "offset:count,..." from @p p up to a newline or @p end to @p out (the writers
 * never repeat an offset). Malformed pairs, and counts of 0, are skipped.
 */
static void
counts_parse(const char *p, const char *end, struct dlist *out)
{
	while (p < end && *p != '\n') {
		uint64_t off, cnt;
		size_t n = gw_read_decimal(&p, end, 20, &off), m = 0;

		if (p < end && *p == ':') {
			p++;
			m = gw_read_decimal(&p, end, 10, &cnt);
		}
		if (n && m && cnt && cnt <= UINT32_MAX && (p == end || *p == ',' || *p == '\n'))
			dlist_add(out, off, (uint32_t)cnt);
		while (p < end && *p != ',' && *p != '\n')
			p++;
		if (p < end && *p == ',')
			p++;
	}
}

static void
counts_format(const struct dlist *l, struct gw_buf *b)
{
	for (uint32_t i = 0; i < l->n; i++) {
		if (i)
			gw_buf_putc(b, ',');
		gw_buf_u64(b, l->v[i].offset);
		gw_buf_putc(b, ':');
		gw_buf_u64(b, l->v[i].delivery);
	}
}

/* ---- A topic's record ------------------------------------------------------------------------ */

void
gw_dcounts_load(struct gw_gtopic *gt, uint64_t stored)
{
	char key[ENG_META_KEY_MAX + 1];
	struct dlist l = { 0 };
	void *val;
	size_t len;

	gw_dcounts_key(gt->g, gt->name, key, sizeof(key));
	if (eng_meta_get(gt->g->gw->db, key, &val, &len))
		return;
	gt->dc_stored = 1; /* deleted with the topic's consumer state (gw_dcounts_drop) */
	counts_parse(val, (const char *)val + len, &l);
	free(val);
	for (uint32_t i = 0; i < l.n; i++) {
		if (l.v[i].offset < stored)
			continue; /* acknowledged */
		gt->dcounts = xrealloc(gt->dcounts, (gt->n_dcounts + 1) * sizeof(*gt->dcounts));
		gt->dcounts[gt->n_dcounts++] = l.v[i];
	}
	free(l.v);
}

int
gw_dcounts_apply(struct gw_gtopic *gt, struct gw_entry *e)
{
	for (uint32_t i = 0; i < gt->n_dcounts; i++) {
		if (gt->dcounts[i].offset == e->offset) {
			e->delivery = gt->dcounts[i].delivery;
			gt->dcounts[i] = gt->dcounts[--gt->n_dcounts];
			if (!gt->n_dcounts) {
				free(gt->dcounts);
				gt->dcounts = NULL;
			}
			return e->delivery >= gt->g->max_deliveries;
		}
	}
	return 0;
}

/* Has @p gt a delivered, unacknowledged entry? */
static int
in_flight_counts(const struct gw_gtopic *gt)
{
	for (uint32_t i = 0; i < gt->n_win; i++)
		if (gt->win[i].delivery && gt->win[i].state != GW_E_ACKED)
			return 1;
	return 0;
}

/* @p gt's counts as a record value: its delivered, unacknowledged entries, then the counts loaded
 * after a restart that no pop took again (gw_dcounts_apply moves a count into its entry). */
static void
topic_counts(const struct gw_gtopic *gt, struct gw_buf *b)
{
	struct dlist l = { 0 };

	for (uint32_t i = 0; i < gt->n_win; i++) {
		const struct gw_entry *e = &gt->win[i];

		if (e->delivery && e->state != GW_E_ACKED)
			dlist_add(&l, e->offset, e->delivery);
	}
	for (uint32_t i = 0; i < gt->n_dcounts; i++)
		if (gt->dcounts[i].offset >= gt->committed)
			dlist_add(&l, gt->dcounts[i].offset, gt->dcounts[i].delivery);
	counts_format(&l, b);
	free(l.v);
}

static void queue_delete(struct gw_groups *gs, const char *key);
static void jrec_release(struct gw *gw, struct gw_jrec *r);

void
gw_dcounts_drop(struct gw_gtopic *gt)
{
	struct gw_group *g = gt->g;
	struct gw *gw = g->gw;
	int store = !gw->groups->closing && !g->deleted && !gt->gone;
	char key[ENG_META_KEY_MAX + 1];

	gw_dcounts_key(g, gt->name, key, sizeof(key));
	if (store && in_flight_counts(gt)) {
		/* Dropped with messages in flight (a definition change): their counts stay, as a
		 * restart would have kept them, before their journal records can go. */
		struct gw_buf b;
		eng_meta_op op;
		int rc;

		gw_buf_init(&b, 0);
		topic_counts(gt, &b);
		op = (eng_meta_op){ key, gw_buf_data(&b), b.len };
		if ((rc = eng_meta_write(gw->db, &op, 1)) != 0)
			LOG_WARN("group %s: storing the delivery counts of %s: %s", g->name, gt->name,
				 eng_strerror(rc));
		gw_buf_free(&b);
	} else if (store && gt->dc_stored && !gt->n_dcounts) {
		/*
		 * Its record goes with the state (kept while it holds counts loaded after a restart and
		 * not taken again: the next load needs them). Until then it may list acknowledged
		 * offsets, which a restart never hands out again (below the stored offset or in the
		 * gap record), and which the next fold leaves out.
		 */
		queue_delete(gw->groups, key);
	}
	gt->dc_stored = 0;
	for (uint32_t i = 0; i < gt->n_win; i++)
		gw_journal_forget(gt, &gt->win[i]);
	for (uint32_t i = 0; i < gt->n_jpend; i++)
		jrec_release(gw, gt->jpend[i].jrec);
	free(gt->jpend);
	gt->jpend = NULL;
	gt->n_jpend = gt->cap_jpend = 0;
}

/* ---- The journal ----------------------------------------------------------------------------- */

static void
queue_delete(struct gw_groups *gs, const char *key)
{
	gw_buf_append(&gs->jdel, key, strlen(key) + 1);
	gs->n_jdel++;
}

static void
jrec_release(struct gw *gw, struct gw_jrec *r)
{
	char key[JKEY_MAX];

	if (!r || --r->live)
		return;
	journal_key(r->gid, r->seq, key, sizeof(key));
	queue_delete(gw->groups, key);
	gw->m.journal_records--;
	free(r);
}

void
gw_journal_note(struct gw_gtopic *gt, struct gw_entry *e)
{
	struct gw *gw = gt->g->gw;
	struct gw_groups *gs = gw->groups;
	struct gw_buf *b = &gs->jval;
	struct gw_jrec *r = gs->jcur;

	if (!r) {
		r = gs->jcur = xcalloc(1, sizeof(*r));
		r->seq = gs->jseq++;
		r->gid = gt->g->id;
		r->live = 1; /* the pop's own hold, until its record is written */
		gw->m.journal_records++;
	}
	r->live++;
	jrec_release(gw, e->jrec); /* its earlier count is superseded by this record */
	e->jrec = r;
	/* Hand-outs hold their topic (w->handed) until the reply is done, so a pointer that matches
	 * is the same topic. */
	if (gs->jlast == gt) {
		gw_buf_putc(b, ',');
	} else {
		if (b->len)
			gw_buf_putc(b, '\n');
		gw_buf_puts(b, gt->name);
		gw_buf_putc(b, ' ');
		gs->jlast = gt;
	}
	gw_buf_u64(b, e->offset);
	gw_buf_putc(b, ':');
	gw_buf_u64(b, e->delivery);
}

/* The pop's record, if any, and every delete due, in one unsynced write. */
static void
journal_write(struct gw *gw)
{
	struct gw_groups *gs = gw->groups;
	struct gw_jrec *r = gs->jcur;
	char key[JKEY_MAX];
	const char *k;
	size_t n = 0;
	int rc;

	if (gs->n_jdel + 1 > gs->cap_jops) {
		gs->cap_jops = gs->n_jdel + 64;
		gs->jops = xrealloc(gs->jops, gs->cap_jops * sizeof(*gs->jops));
	}
	if (r) {
		gw_buf_putc(&gs->jval, '\n');
		journal_key(r->gid, r->seq, key, sizeof(key));
		gs->jops[n++] = (eng_meta_op){ key, gw_buf_data(&gs->jval), gs->jval.len };
	}
	k = (const char *)gw_buf_data(&gs->jdel);
	for (size_t i = 0; i < gs->n_jdel; i++, k += strlen(k) + 1)
		gs->jops[n++] = (eng_meta_op){ k, NULL, 0 };
	if (!gs->closing && (rc = eng_meta_write(gw->db, gs->jops, n)) != 0)
		LOG_WARN("storing delivery counts: %s", eng_strerror(rc));
	gw_buf_reset(&gs->jval);
	gw_buf_reset(&gs->jdel);
	gs->n_jdel = 0;
	gs->jcur = NULL;
	gs->jlast = NULL;
	jrec_release(gw, r); /* the pop's hold: its delete, if due, goes with the next write */
}

void
gw_journal_write(struct gw *gw)
{
	if (gw->groups->jcur)
		journal_write(gw); /* the deletes ride along; alone they wait for gw_journal_flush */
}

void
gw_journal_flush(struct gw *gw)
{
	if (gw->groups->jcur || gw->groups->n_jdel)
		journal_write(gw);
}

void
gw_journal_settled(struct gw_gtopic *gt, struct gw_entry *e)
{
	if (!e->jrec)
		return;
	if (gt->n_jpend == gt->cap_jpend) {
		gt->cap_jpend = gt->cap_jpend ? gt->cap_jpend * 2 : 4;
		gt->jpend = xrealloc(gt->jpend, gt->cap_jpend * sizeof(*gt->jpend));
	}
	gt->jpend[gt->n_jpend++] = (struct gw_jpend){ e->offset, e->jrec };
	e->jrec = NULL;
}

void
gw_journal_forget(struct gw_gtopic *gt, struct gw_entry *e)
{
	jrec_release(gt->g->gw, e->jrec);
	e->jrec = NULL;
}

void
gw_journal_stored(struct gw_gtopic *gt, uint64_t stored)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < gt->n_jpend; i++) {
		if (gt->jpend[i].offset < stored)
			jrec_release(gt->g->gw, gt->jpend[i].jrec);
		else
			gt->jpend[k++] = gt->jpend[i];
	}
	gt->n_jpend = k; /* the array stays for the next acks (freed with the state) */
}

void
gw_dcounts_free(struct gw *gw)
{
	struct gw_groups *gs = gw->groups;

	gw_buf_free(&gs->jval);
	gw_buf_free(&gs->jdel);
	free(gs->jops);
	gs->jops = NULL;
}

/* ---- The fold, at startup ---------------------------------------------------------------------- */

struct fold_item {
	uint32_t gid;
	uint32_t count;
	uint64_t seq;      /* of its record */
	uint32_t pos;      /* its place in the record */
	uint64_t offset;
	char *topic;
};

struct fold {
	struct gw *gw;
	struct fold_item *items;
	size_t n, cap;
	char **keys;       /* journal keys, to delete */
	size_t n_keys, cap_keys;
	uint64_t next_seq;
};

static struct gw_group *
group_by_id(struct gw *gw, uint32_t id)
{
	for (struct gw_group *g = gw->groups->list; g; g = g->next)
		if (g->id == id)
			return g;
	return NULL;
}

/* "gdj/<id>/<seq>": @return 0 and both numbers, or -1 (a key to delete all the same). */
static int
journal_key_parse(const char *key, uint32_t *gid, uint64_t *seq)
{
	const char *p = key + strlen(JOURNAL_PREFIX), *end = p + strlen(p);
	uint64_t id, s = 0;
	size_t n = 0;

	if (!gw_read_decimal(&p, end, 10, &id) || id > UINT32_MAX || p == end || *p++ != '/')
		return -1;
	for (; p < end && n < 16; p++, n++) {
		if (*p >= '0' && *p <= '9')
			s = (s << 4) | (uint64_t)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			s = (s << 4) | (uint64_t)(*p - 'a' + 10);
		else
			return -1;
	}
	if (n != 16 || p != end)
		return -1;
	*gid = (uint32_t)id;
	*seq = s;
	return 0;
}

static int
on_journal(void *ctx, const char *key, const void *val, size_t len)
{
	struct fold *f = ctx;
	const char *p = val, *end = p + len;
	struct dlist l = { 0 };
	uint32_t gid, pos = 0;
	uint64_t seq;

	if (f->n_keys == f->cap_keys) {
		f->cap_keys = f->cap_keys ? f->cap_keys * 2 : 64;
		f->keys = xrealloc(f->keys, f->cap_keys * sizeof(*f->keys));
	}
	f->keys[f->n_keys++] = xstrdup(key);
	if (journal_key_parse(key, &gid, &seq)) {
		LOG_WARN("delivery-count journal: malformed key %s dropped", key);
		return 0;
	}
	if (seq >= f->next_seq)
		f->next_seq = seq + 1;
	if (!group_by_id(f->gw, gid))
		return 0; /* a deleted group's */
	while (p < end) {
		const char *sp = memchr(p, ' ', (size_t)(end - p)), *nl;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (sp && sp < nl && gw_name_topic_ok(p, (size_t)(sp - p))) {
			char *topic = xstrndup(p, (size_t)(sp - p));

			l.n = 0;
			counts_parse(sp + 1, nl, &l);
			for (uint32_t i = 0; i < l.n; i++) {
				if (f->n == f->cap) {
					f->cap = f->cap ? f->cap * 2 : 256;
					f->items = xrealloc(f->items, f->cap * sizeof(*f->items));
				}
				f->items[f->n++] = (struct fold_item){ gid, l.v[i].delivery, seq, pos++,
								       l.v[i].offset, i ? xstrdup(topic)
											: topic };
			}
			if (!l.n)
				free(topic);
		}
		p = nl < end ? nl + 1 : end;
	}
	free(l.v);
	return 0;
}

static int
fold_cmp(const void *a_, const void *b_)
{
	const struct fold_item *a = a_, *b = b_;
	int c;

	if (a->gid != b->gid)
		return a->gid < b->gid ? -1 : 1;
	if ((c = strcmp(a->topic, b->topic)) != 0)
		return c;
	if (a->offset != b->offset)
		return a->offset < b->offset ? -1 : 1;
	if (a->seq != b->seq)
		return a->seq < b->seq ? -1 : 1;
	return a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* Drop from @p l the counts of messages acknowledged in @p g: below its stored position in
 * @p topic, or in the topic's gap record; all of them if the topic is gone. */
static void
drop_acknowledged(struct gw *gw, const struct gw_group *g, const char *topic, struct dlist *l)
{
	char key[ENG_META_KEY_MAX + 1];
	eng_topic_info info;
	uint64_t stored = 0;
	struct dlist gaps = { 0 };
	uint32_t k = 0;
	void *val;
	size_t len;

	if (eng_topic_info_get(gw->db, topic, &info) == ENG_ENOTFOUND) {
		l->n = 0;
		return;
	}
	eng_offset_get(gw->db, g->name, topic, &stored); /* none: 0 */
	snprintf(key, sizeof(key), "gta/%u/%s", g->id, topic);
	if (!eng_meta_get(gw->db, key, &val, &len)) {
		/* Comma-separated offsets: parse them as counts of 1. */
		const char *p = val, *end = p + len;

		while (p < end) {
			uint64_t v;

			if (gw_read_decimal(&p, end, 20, &v))
				dlist_add(&gaps, v, 1);
			while (p < end && (*p < '0' || *p > '9'))
				p++;
		}
		free(val);
	}
	for (uint32_t i = 0; i < l->n; i++) {
		int acked = l->v[i].offset < stored;

		for (uint32_t j = 0; j < gaps.n && !acked; j++)
			acked = gaps.v[j].offset == l->v[i].offset;
		if (!acked)
			l->v[k++] = l->v[i];
	}
	l->n = k;
	free(gaps.v);
}

/* Keys and values of the fold's write live in one arena; ops hold offsets until it stops moving. */
struct fold_ops {
	eng_meta_op *ops;
	size_t *koff, *voff, n, cap;
	struct gw_buf arena;
};

static void
fold_op(struct fold_ops *o, const char *key, const struct gw_buf *val)
{
	if (o->n == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 64;
		o->ops = xrealloc(o->ops, o->cap * sizeof(*o->ops));
		o->koff = xrealloc(o->koff, o->cap * sizeof(*o->koff));
		o->voff = xrealloc(o->voff, o->cap * sizeof(*o->voff));
	}
	o->koff[o->n] = o->arena.len;
	gw_buf_append(&o->arena, key, strlen(key) + 1);
	o->voff[o->n] = o->arena.len;
	if (val)
		gw_buf_append(&o->arena, gw_buf_data(val), val->len);
	o->ops[o->n] = (eng_meta_op){ NULL, val ? "" : NULL, val ? val->len : 0 };
	o->n++;
}

/* The items [from, to) are one topic's, sorted: merge them into its record. */
static void
fold_topic(struct fold *f, size_t from, size_t to, struct fold_ops *o)
{
	const struct fold_item *it = &f->items[from];
	struct gw_group *g = group_by_id(f->gw, it->gid);
	char key[ENG_META_KEY_MAX + 1];
	struct dlist l = { 0 }, old = { 0 };
	uint32_t n_journal;
	int had = 0;
	void *val;
	size_t len;

	/* The journal's counts, the latest of each offset (sorted by offset, then record order). */
	for (size_t i = from; i < to; i++) {
		if (i + 1 < to && f->items[i + 1].offset == f->items[i].offset)
			continue;
		dlist_add(&l, f->items[i].offset, f->items[i].count);
	}
	n_journal = l.n;
	/* Then the topic's record, older than any journal record, for the offsets the journal lacks. */
	gw_dcounts_key(g, it->topic, key, sizeof(key));
	if (!eng_meta_get(f->gw->db, key, &val, &len)) {
		had = 1;
		counts_parse(val, (const char *)val + len, &old);
		free(val);
	}
	for (uint32_t i = 0; i < old.n; i++) {
		struct dlist journal = { l.v, n_journal, n_journal };

		if (!dlist_has(&journal, old.v[i].offset))
			dlist_add(&l, old.v[i].offset, old.v[i].delivery);
	}
	free(old.v);
	drop_acknowledged(f->gw, g, it->topic, &l);
	if (l.n) {
		struct gw_buf b;

		gw_buf_init(&b, 0);
		counts_format(&l, &b);
		fold_op(o, key, &b);
		gw_buf_free(&b);
	} else if (had) {
		fold_op(o, key, NULL);
	}
	free(l.v);
}

void
gw_journal_fold(struct gw *gw)
{
	struct fold f = { .gw = gw, .next_seq = 1 };
	struct fold_ops o = { 0 };
	const char *base;
	size_t i, j;
	int rc;

	gw_buf_init(&o.arena, 0);
	if ((rc = eng_meta_scan(gw->db, JOURNAL_PREFIX, on_journal, &f)) != 0)
		LOG_ERR("reading the delivery-count journal: %s", eng_strerror(rc));
	gw->groups->jseq = f.next_seq;
	if (f.n)
		qsort(f.items, f.n, sizeof(*f.items), fold_cmp);
	for (i = 0; i < f.n; i = j) {
		for (j = i + 1; j < f.n && f.items[j].gid == f.items[i].gid &&
				!strcmp(f.items[j].topic, f.items[i].topic);
		     j++)
			;
		fold_topic(&f, i, j, &o);
	}
	for (i = 0; i < f.n_keys; i++)
		fold_op(&o, f.keys[i], NULL);
	base = (const char *)gw_buf_data(&o.arena);
	for (i = 0; i < o.n; i++) {
		o.ops[i].key = base + o.koff[i];
		if (o.ops[i].val)
			o.ops[i].val = base + o.voff[i];
	}
	if (o.n && (rc = eng_meta_write(gw->db, o.ops, o.n)) != 0)
		LOG_ERR("folding the delivery-count journal: %s", eng_strerror(rc));
	else if (f.n_keys)
		LOG_INFO("delivery counts: %zu journal records folded into %zu topic records",
			 f.n_keys, o.n - f.n_keys);
	gw->m.journal_folded += f.n_keys;
	for (i = 0; i < f.n; i++)
		free(f.items[i].topic);
	free(f.items);
	for (i = 0; i < f.n_keys; i++)
		free(f.keys[i]);
	free(f.keys);
	free(o.ops);
	free(o.koff);
	free(o.voff);
	gw_buf_free(&o.arena);
}
