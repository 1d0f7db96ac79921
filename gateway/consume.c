/*
 * consume.c - what a consumer group does with its topics: per-topic consumer state, pop, receipts,
 * batch ack, nack, visibility timeouts, dead letters and offsets. Service thread only (groups.h).
 *
 * Scheduling. A topic with something to hand out (a message to redeliver, or unread messages and a
 * free in-flight slot) sits in one FIFO per priority: that of the message it would hand out next
 * (the first due for redelivery, else the first unread) when it was published with one, else its
 * parent's. The priority is taken when the topic joins its queue; the next message's is known from
 * the engine's ready entry or the read that stopped before it, and read ahead (one message) only
 * when neither told (after a restart, a topic scan, a long backlog). A pop takes the queue whose head has waited
 * longest relative to its priority (score = priority * AGING_MS + age), takes a share of the pop
 * from that topic, and puts the topic back at the tail if it still has work: round robin within a
 * priority, so one busy session cannot starve the others, and aging, so low priorities progress.
 *
 * Why everything is decided here, on the service thread: one thread owns every topic state, so a
 * message can be given to exactly one pop without locks, and a ready topic is re-checked against
 * its real read position in the same loop turn that hands it out (RocketMQ's lost-event race,
 * apache/rocketmq#11191, cannot happen).
 */
#include "groups.h"

#include <endian.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commits.h"
#include "http_int.h"
#include "log.h"
#include "settleparse.h"
#include "xalloc.h"

#define WIN_CAP 4096          /* read-but-uncommitted wanted messages kept per topic */
#define READ_CHUNK 64         /* messages per eng_read while looking for wanted ones */
#define AGING_MS 1000         /* a topic waiting this long counts one priority level higher */
#define IDLE_EVICT_MS 5000    /* a drained topic state is forgotten after this */
#define RECEIPTS_MAX 10000    /* per ack/nack request */
#define NACK_DELAY_MAX_MS (12u * 3600u * 1000u)
#define DLQ_RETRY_MS 1000

/* A deadline: an entry's visibility timeout or nack delay. Lazy: stale records are skipped. */
struct gw_timer_rec {
	uint64_t due_ms;
	struct gw_gtopic *gt; /* holds a ref */
	uint64_t offset, nonce;
};

static uint64_t
mono_ms(void)
{
	return gw_mono_us() / 1000u;
}

/* ---- SipHash-2-4 (Aumasson, Bernstein): the receipt MAC ------------------------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                          \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                             \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                             \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                          \
	} while (0)

static uint64_t
le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v)); /* one load; the MAC is computed twice per message (pop, ack) */
	return le64toh(v);
}

static uint64_t
siphash24(const uint8_t key[16], const uint8_t *in, size_t len)
{
	uint64_t k0 = le64(key), k1 = le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, left = len & 7;

	for (i = 0; i + 8 <= len; i += 8) {
		m = le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; j < left; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- Receipts -------------------------------------------------------------------------------------- */

/*
 * A receipt is "<offset>.<delivery>.<nonce>.<mac>.<topic>" (nonce and mac in hex). The MAC (SipHash
 * with a key drawn at startup) covers the group, topic, offset, delivery and nonce, so a client can
 * neither forge one nor move one to another message or group; the nonce names one hand-out, so the
 * receipt of an earlier delivery is recognised as stale. The topic and offset are in clear so that
 * a refusal can say which message it was about.
 */
struct receipt {
	uint64_t offset, nonce, mac;
	uint32_t delivery;
	char topic[ENG_TOPIC_MAX + 1];
};

static uint64_t
receipt_mac(const struct gw_groups *gs, const char *group, const char *topic, uint64_t offset,
	    uint32_t delivery, uint64_t nonce)
{
	uint8_t buf[GW_GROUP_NAME_MAX + ENG_TOPIC_MAX + 2 + 20];
	size_t gl = strlen(group), tl = strlen(topic), n = 0;

	memcpy(buf, group, gl + 1);
	n += gl + 1;
	memcpy(buf + n, topic, tl + 1);
	n += tl + 1;
	for (int i = 0; i < 8; i++)
		buf[n++] = (uint8_t)(offset >> (8 * i));
	for (int i = 0; i < 4; i++)
		buf[n++] = (uint8_t)(delivery >> (8 * i));
	for (int i = 0; i < 8; i++)
		buf[n++] = (uint8_t)(nonce >> (8 * i));
	return siphash24(gs->key, buf, n);
}

static void
put_receipt(struct gw_buf *b, const struct gw_groups *gs, const struct gw_group *g,
	    const struct gw_gtopic *gt, const struct gw_entry *e)
{
	/* "%llu.%u.%llx.%016llx.%s" without printf (5% of a pop's formatting was its two passes). */
	gw_buf_putc(b, '"');
	gw_buf_u64(b, e->offset);
	gw_buf_putc(b, '.');
	gw_buf_u64(b, e->delivery);
	gw_buf_putc(b, '.');
	gw_buf_x64(b, e->nonce, 1);
	gw_buf_putc(b, '.');
	gw_buf_x64(b, receipt_mac(gs, g->name, gt->name, e->offset, e->delivery, e->nonce), 16);
	gw_buf_putc(b, '.');
	gw_buf_puts(b, gt->name); /* topic names need no JSON escaping */
	gw_buf_putc(b, '"');
}

static int
parse_field(const char **p, const char *end, int hex, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	size_t n = 0;

	for (; s < end && *s != '.'; s++, n++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (hex && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else
			return -1;
		if (n >= (hex ? 16u : 20u) || (!hex && v > (UINT64_MAX - d) / 10))
			return -1;
		v = hex ? (v << 4) | d : v * 10 + d;
	}
	if (!n || s == end)
		return -1;
	*out = v;
	*p = s + 1;
	return 0;
}

static int
receipt_parse(const char *s, size_t len, struct receipt *r)
{
	const char *p = s, *end = s + len;
	uint64_t d;

	if (parse_field(&p, end, 0, &r->offset) || parse_field(&p, end, 0, &d) || d > UINT32_MAX ||
	    parse_field(&p, end, 1, &r->nonce) || parse_field(&p, end, 1, &r->mac) ||
	    (size_t)(end - p) > ENG_TOPIC_MAX || !gw_name_topic_ok(p, (size_t)(end - p)))
		return -1;
	r->delivery = (uint32_t)d;
	memcpy(r->topic, p, (size_t)(end - p));
	r->topic[end - p] = '\0';
	return 0;
}

/* ---- The deadline heap ---------------------------------------------------------------------------- */

static void heap_arm(struct gw *gw);

static void
heap_push(struct gw_groups *gs, uint64_t due, struct gw_gtopic *gt, uint64_t offset, uint64_t nonce)
{
	size_t i;

	if (gs->n_heap == gs->cap_heap) {
		gs->cap_heap = gs->cap_heap ? gs->cap_heap * 2 : 256;
		gs->heap = xrealloc(gs->heap, gs->cap_heap * sizeof(*gs->heap));
	}
	gt->refs++;
	i = gs->n_heap++;
	while (i) {
		size_t up = (i - 1) / 2;

		if (gs->heap[up].due_ms <= due)
			break;
		gs->heap[i] = gs->heap[up];
		i = up;
	}
	gs->heap[i] = (struct gw_timer_rec){ due, gt, offset, nonce };
}

static struct gw_timer_rec
heap_pop(struct gw_groups *gs)
{
	struct gw_timer_rec top = gs->heap[0], last = gs->heap[--gs->n_heap];
	size_t i = 0, n = gs->n_heap;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && gs->heap[c + 1].due_ms < gs->heap[c].due_ms)
			c++;
		if (last.due_ms <= gs->heap[c].due_ms)
			break;
		gs->heap[i] = gs->heap[c];
		i = c;
	}
	if (n)
		gs->heap[i] = last;
	return top;
}

/* ---- Topic states: lookup, life and death ------------------------------------------------------- */

static size_t
tslot(const struct gw_group *g, const char *name)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)h & (g->hcap - 1);
}

static void
tgrow(struct gw_group *g)
{
	size_t old = g->hcap;
	struct gw_gtopic **t = g->htab;

	g->hcap = old ? old * 2 : 64;
	g->htab = xcalloc(g->hcap, sizeof(*g->htab));
	for (size_t i = 0; i < old; i++) {
		for (struct gw_gtopic *gt = t[i], *nx; gt; gt = nx) {
			size_t k = tslot(g, gt->name);

			nx = gt->hnext;
			gt->hnext = g->htab[k];
			g->htab[k] = gt;
		}
	}
	free(t);
}

static void
dequeue(struct gw_gtopic *gt)
{
	struct gw_group *g = gt->g;

	if (!gt->queued)
		return;
	if (gt->qprev)
		gt->qprev->qnext = gt->qnext;
	else
		g->qhead[gt->qprio] = gt->qnext;
	if (gt->qnext)
		gt->qnext->qprev = gt->qprev;
	else
		g->qtail[gt->qprio] = gt->qprev;
	gt->qprev = gt->qnext = NULL;
	gt->queued = 0;
	g->n_ready--;
}

static int
can_send(const struct gw_gtopic *gt)
{
	const struct gw_group *g = gt->g;

	if (gt->dead || gt->marking)
		return 0;
	if (gt->n_avail)
		return 1;
	return gt->n_unacked < g->max_inflight && gt->n_win < WIN_CAP && gt->next_read < gt->end;
}

static void
set_peek(struct gw_gtopic *gt, uint64_t offset, int prio)
{
	gt->peek_off = offset;
	gt->peek_prio = (int8_t)(prio >= 0 && prio < GW_PRIO_LEVELS ? prio : ENG_PRIORITY_NONE);
	gt->peek_known = 1;
	gt->peek_wanted = 0; /* not known: only peek() looks at the message itself */
}

static int wanted(const struct gw_group *g, const struct gw_gtopic *gt, const eng_msg_view *m);
static int acked_before(struct gw_gtopic *gt, uint64_t offset);
static void mark_async(struct gw_gtopic *gt);

/*
 * Read the message at next_read for its priority (nothing else told it). Unknown on failure.
 * @return -1 if it is visible but not readable yet (the engine race serve_topic() describes):
 * the caller looks again shortly rather than queue the topic at a guessed priority.
 */
static int
peek(struct gw_gtopic *gt)
{
	eng_read_result res;
	int rc, later = 0;

	memset(&res, 0, sizeof(res));
	rc = eng_read(gt->g->gw->db, gt->name, gt->next_read, 1, 1, &res);
	if (!rc && res.n && res.msgs[0].offset == gt->next_read) {
		set_peek(gt, gt->next_read, res.msgs[0].priority);
		gt->peek_wanted = wanted(gt->g, gt, &res.msgs[0]) &&
				  !(gt->n_acked_above && acked_before(gt, gt->next_read));
	} else if (!rc && !res.n && res.first_offset <= gt->next_read && gt->next_read < res.next_offset)
		later = -1;
	eng_read_free(&res);
	return later;
}

/* The priority @p gt is served at (see the top of this file), or -1: not known yet, look again. */
static int
ready_prio(struct gw_gtopic *gt)
{
	int p = ENG_PRIORITY_NONE;

	if (gt->n_avail) {
		for (uint32_t i = 0; i < gt->n_win; i++) {
			if (gt->win[i].state == GW_E_AVAIL) {
				p = gt->win[i].prio;
				break;
			}
		}
	} else {
		if ((!gt->peek_known || gt->peek_off != gt->next_read) && peek(gt) < 0)
			return -1;
		if (gt->peek_known && gt->peek_off == gt->next_read)
			p = gt->peek_prio;
	}
	return p >= 0 && p < GW_PRIO_LEVELS ? p : gt->prio;
}

static void retry_later(struct gw_gtopic *gt);

/*
 * A topic found by a topic scan is not marked yet (gt_create), and hands nothing out until its
 * marker is durable. Queued like that, a pop would pick it at its priority, get nothing from it
 * (serve_topic starts the marker) and serve lower priorities instead: a ready topic that cannot
 * give what it is ready with. So when its next message is one the group wants, the marker comes
 * first and mark_done() queues it. (A next message the group skips says nothing about the rest:
 * such a topic is queued as before, and serve_topic marks it at the first wanted one.)
 */
static int
marker_first(const struct gw_gtopic *gt)
{
	return !gt->marked && gt->peek_wanted && gt->peek_known && gt->peek_off == gt->next_read;
}

/* Queue @p gt (at the tail of its priority) if it has something to hand out. */
static void
kick(struct gw_gtopic *gt)
{
	struct gw_group *g = gt->g;

	int prio;

	if (gt->queued || gt->retrying || !can_send(gt))
		return;
	if ((prio = ready_prio(gt)) < 0) {
		retry_later(gt);
		return;
	}
	if (marker_first(gt)) {
		mark_async(gt); /* mark_done() kicks it again */
		return;
	}
	gt->ready_since_ms = mono_ms();
	gt->qprio = (uint8_t)prio;
	gt->qnext = NULL;
	gt->qprev = g->qtail[gt->qprio];
	if (gt->qprev)
		gt->qprev->qnext = gt;
	else
		g->qhead[gt->qprio] = gt;
	g->qtail[gt->qprio] = gt;
	gt->queued = 1;
	g->n_ready++;
}

static void
gt_free(struct gw_gtopic *gt)
{
	free(gt->win);
	free(gt->acked_above);
	free(gt->dcounts);
	free(gt->jpend);
	free(gt);
}

static void
unref(struct gw_gtopic *gt)
{
	struct gw_groups *gs;

	if (--gt->refs || !gt->dead)
		return;
	gs = gt->g->gw->groups;
	for (struct gw_gtopic **pp = &gs->dead; *pp; pp = &(*pp)->dnext) {
		if (*pp == gt) {
			*pp = gt->dnext;
			break;
		}
	}
	gt_free(gt);
}

static uint32_t
count_inflight(const struct gw_gtopic *gt)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < gt->n_win; i++)
		n += gt->win[i].state == GW_E_INFLIGHT;
	return n;
}

void
gw_gtopic_drop(struct gw_gtopic *gt)
{
	struct gw_group *g = gt->g;
	struct gw_gtopic **pp;

	if (gt->dead)
		return;
	dequeue(gt);
	for (pp = &g->htab[tslot(g, gt->name)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == gt) {
			*pp = gt->hnext;
			break;
		}
	}
	g->hcount--;
	g->inflight -= count_inflight(gt);
	gw_dcounts_drop(gt);
	gt->dead = 1;
	free(gt->win);
	gt->win = NULL;
	gt->n_win = gt->cap_win = gt->n_unacked = gt->n_avail = 0;
	if (!gt->refs) {
		gt_free(gt);
	} else {
		gt->dnext = g->gw->groups->dead;
		g->gw->groups->dead = gt;
	}
}

static void
marker_key(const struct gw_group *g, const char *topic, char *key, size_t sz)
{
	snprintf(key, sz, "gtp/%u/%s", g->id, topic);
}

/*
 * "gta/<id>/<topic>": offsets above the stored one that the group acknowledged while an earlier
 * message was still in flight (with max_inflight_per_topic > 1), as decimal numbers separated by
 * commas. The stored offset cannot cover them yet; this record keeps a restart from handing them
 * out again. Written only while such a gap exists (never with one message in flight per topic).
 */
static void
gaps_key(const struct gw_group *g, const char *topic, char *key, size_t sz)
{
	snprintf(key, sz, "gta/%u/%s", g->id, topic);
}

/* The topic is gone (deleted, expired): forget it, marker, gap and count records included. */
static void
gt_gone(struct gw_gtopic *gt)
{
	char key[ENG_META_KEY_MAX + 1];

	if (!gt->g->gw->groups->closing) {
		marker_key(gt->g, gt->name, key, sizeof(key));
		eng_meta_delete(gt->g->gw->db, key);
		gaps_key(gt->g, gt->name, key, sizeof(key));
		eng_meta_delete(gt->g->gw->db, key);
		if (gt->dc_stored) {
			gw_dcounts_key(gt->g, gt->name, key, sizeof(key));
			eng_meta_delete(gt->g->gw->db, key);
			gt->dc_stored = 0;
		}
	}
	gt->gone = 1; /* no count of it is kept */
	gw_gtopic_drop(gt);
}

size_t
gw_read_decimal(const char **p, const char *end, size_t max, uint64_t *v)
{
	size_t n = 0;

	*v = 0;
	while (*p < end && **p >= '0' && **p <= '9' && n++ < max)
		*v = *v * 10 + (uint64_t)(*(*p)++ - '0');
	return n;
}

/* Read the gap record of a topic seen for the first time (at @p stored). */
static void
gaps_load(struct gw_gtopic *gt, uint64_t stored)
{
	char key[ENG_META_KEY_MAX + 1];
	const char *p, *end;
	void *val;
	size_t len;

	gaps_key(gt->g, gt->name, key, sizeof(key));
	if (eng_meta_get(gt->g->gw->db, key, &val, &len))
		return;
	gt->gaps_stored = 1;
	for (p = val, end = p + len; p < end;) {
		uint64_t v;
		size_t n = gw_read_decimal(&p, end, 20, &v);

		if (n && v >= stored) {
			gt->acked_above = xrealloc(gt->acked_above,
						   (gt->n_acked_above + 1) * sizeof(*gt->acked_above));
			gt->acked_above[gt->n_acked_above++] = v;
		}
		while (p < end && (*p < '0' || *p > '9'))
			p++;
	}
	free(val);
}

/* Was @p offset acknowledged before a restart (gaps_load)? */
static int
acked_before(struct gw_gtopic *gt, uint64_t offset)
{
	for (uint32_t i = 0; i < gt->n_acked_above; i++)
		if (gt->acked_above[i] == offset)
			return 1;
	return 0;
}

static int
has_explicit(const struct gw_group *g, const char *topic)
{
	for (size_t i = 0; i < g->n_topics; i++)
		if (!strcmp(g->topics[i], topic))
			return 1;
	return 0;
}

/*
 * First sight of a topic in this process: its position is the stored offset, else the topic's first
 * retained message ("do better" item 1 of the RocketMQ notes: not its end), or for "from":"tail" on
 * a parent, the first message stored after the subscription began. A topic of a subscribed parent
 * gets a marker, so a restart finds it again: at once when the engine said it has news for the
 * group (@p mark_now), else (a topic found by a topic scan) once a message the group wants is seen
 * (before the topic is queued, marker_first(), or at the hand-out). The marker is written by the
 * commit pool; the topic hands nothing out until it is durable.
 */
static struct gw_gtopic *
gt_create(struct gw_group *g, const char *topic, int mark_now)
{
	struct gw *gw = g->gw;
	const struct gw_parent_conf *pc;
	struct gw_gtopic *gt;
	eng_topic_info info;
	uint64_t off;
	size_t k;
	int rc, stored;

	if ((rc = eng_topic_info_get(gw->db, topic, &info)) != 0) {
		if (rc != ENG_ENOTFOUND)
			LOG_WARN("group %s: topic %s: %s", g->name, topic, eng_strerror(rc));
		return NULL; /* nothing there: its first message will tell us */
	}
	rc = eng_offset_get(gw->db, g->name, topic, &off);
	if (rc && rc != ENG_ENOTFOUND) {
		LOG_WARN("group %s: offset of %s: %s", g->name, topic, eng_strerror(rc));
		return NULL;
	}
	stored = rc == 0;
	gt = xcalloc(1, sizeof(*gt));
	gt->g = g;
	strcpy(gt->name, topic);
	/* Explicit topics need no marker (the definition names them); a stored offset means one
	 * was written before the first hand-out. */
	gt->marked = has_explicit(g, topic) || stored;
	if (g->hcount + 1 > g->hcap / 4 * 3)
		tgrow(g);
	gt->committed = gt->next_read = gt->stored = gt->storing = stored ? off : info.first_offset;
	gaps_load(gt, gt->committed); /* acknowledged above it before a restart (no offset needed) */
	gw_dcounts_load(gt, gt->committed);
	if (!stored && g->from_tail && !has_explicit(g, topic))
		gt->skip_before_ms = g->since_ms;
	gt->end = info.next_offset;
	pc = gw_config_parent(gw->cfg, topic, (size_t)(strchr(topic, '/') - topic));
	gt->prio = pc && pc->priority < GW_PRIO_LEVELS ? pc->priority : 0;
	gt->last_used_ms = mono_ms();
	k = tslot(g, topic);
	gt->hnext = g->htab[k];
	g->htab[k] = gt;
	g->hcount++;
	if (mark_now)
		mark_async(gt);
	return gt;
}

static struct gw_gtopic *
gt_lookup(struct gw_group *g, const char *topic)
{
	struct gw_gtopic *gt = NULL;

	if (g->hcap)
		for (gt = g->htab[tslot(g, topic)]; gt; gt = gt->hnext)
			if (!strcmp(gt->name, topic))
				break;
	return gt;
}

struct gw_gtopic *
gw_gtopic_get(struct gw_group *g, const char *topic, int create)
{
	struct gw_gtopic *gt = gt_lookup(g, topic);

	if (!gt && create)
		gt = gt_create(g, topic, create != 2);
	if (gt && create) {
		gt->last_used_ms = mono_ms();
		kick(gt);
	}
	return gt;
}

struct gw_gtopic *
gw_gtopic_news(struct gw_group *g, const eng_ready *r)
{
	struct gw_gtopic *gt = gt_lookup(g, r->topic);

	if (!gt && !(gt = gt_create(g, r->topic, 1)))
		return NULL;
	if (r->next_offset < gt->next_read) {
		/* Deleted (0) or re-created: the next read sees the new range. */
		gt->end = UINT64_MAX;
	} else if (r->next_offset > gt->end) {
		gt->end = r->next_offset;
	}
	/* The usual case, a group that had read everything: the news starts where it stands, and
	 * the entry says that message's priority, so queueing the topic needs no read. */
	if (r->first_offset < r->next_offset && r->first_offset == gt->next_read)
		set_peek(gt, r->first_offset, r->first_priority);
	gt->last_used_ms = mono_ms();
	kick(gt);
	return gt;
}

void
gw_group_free_state(struct gw_group *g)
{
	for (size_t i = 0; i < g->hcap; i++) {
		while (g->htab && g->htab[i])
			gw_gtopic_drop(g->htab[i]);
	}
	free(g->htab);
	g->htab = NULL;
	g->hcap = g->hcount = 0;
	if (ev_is_active(&g->rate_w))
		ev_timer_stop(g->gw->loop, &g->rate_w);
	for (size_t i = 0; i < g->n_topics; i++)
		free(g->topics[i]);
	free(g->topics);
	g->topics = NULL;
	g->n_topics = 0;
}

/* ---- The window of read messages ------------------------------------------------------------------ */

static struct gw_entry *
win_find(const struct gw_gtopic *gt, uint64_t offset)
{
	uint32_t lo = 0, hi = gt->n_win;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (gt->win[mid].offset < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < gt->n_win && gt->win[lo].offset == offset ? &gt->win[lo] : NULL;
}

static struct gw_entry *
win_push(struct gw_gtopic *gt, uint64_t offset)
{
	struct gw_entry *e;

	if (gt->n_win == gt->cap_win) {
		gt->cap_win = gt->cap_win ? gt->cap_win * 2 : 4;
		gt->win = xrealloc(gt->win, gt->cap_win * sizeof(*gt->win));
	}
	e = &gt->win[gt->n_win++];
	memset(e, 0, sizeof(*e));
	e->offset = offset;
	e->prio = ENG_PRIORITY_NONE;
	gt->n_unacked++;
	return e;
}

/* Drop the acknowledged prefix; everything below the first unacknowledged entry is done. */
static void
advance(struct gw_gtopic *gt)
{
	uint32_t k = 0;

	while (k < gt->n_win && gt->win[k].state == GW_E_ACKED)
		gw_journal_settled(gt, &gt->win[k++]);
	if (k) {
		memmove(gt->win, gt->win + k, (gt->n_win - k) * sizeof(*gt->win));
		gt->n_win -= k;
	}
	gt->committed = gt->n_win ? gt->win[0].offset : gt->next_read;
	if (gt->cap_win > 64 && gt->n_win < gt->cap_win / 4) {
		gt->cap_win /= 2;
		gt->win = xrealloc(gt->win, gt->cap_win * sizeof(*gt->win));
	}
}

/* ---- Storing offsets: the commit pool (commits.h) ------------------------------------------------ */

struct commit_item {
	struct gw_commit c;           /* first: the pool hands this pointer back */
	struct gw_gtopic *gt;         /* holds a ref */
	struct gw_commit_wait *wait;  /* NULL, or a request waiting for it */
};

void
gw_commit_wait_free(struct gw_commit_wait *w)
{
	free(w);
}

static void
commit_done(struct gw_commit *c)
{
	struct commit_item *it = (struct commit_item *)c;
	struct gw_gtopic *gt = it->gt;
	struct gw_commit_wait *w = it->wait;

	if (c->rc)
		LOG_ERR("group %s: storing the offset of %s (%llu): %s", gt->g->name, gt->name,
			(unsigned long long)c->offset, eng_strerror(c->rc));
	else if (!gt->dead && !c->meta) {
		gt->stored = c->offset; /* one worker per topic, in order: this is the newest */
		gw_journal_stored(gt, c->offset);
	}
	if (w) {
		if (c->rc && !w->rc)
			w->rc = c->rc;
		if (!--w->left) {
			if (w->ctx)
				w->done(w);
			else
				gw_commit_wait_free(w);
		}
	}
	unref(gt);
	free(it);
}

/* Send @p gt's committed position to the pool if it is not there yet; @p w waits for it. */
static void
commit_async(struct gw_gtopic *gt, struct gw_commit_wait *w)
{
	struct commit_item *it;

	if (gt->dead || gt->g->gw->groups->closing)
		return;
	if (gt->committed == gt->storing && !w)
		return;
	it = xcalloc(1, sizeof(*it));
	strcpy(it->c.group, gt->g->name);
	strcpy(it->c.topic, gt->name);
	it->c.offset = gt->committed;
	it->c.done = commit_done;
	it->gt = gt;
	it->wait = w;
	gt->refs++;
	gt->storing = gt->committed;
	if (w)
		w->left++;
	gw_commits_submit(&it->c);
}

static void
mark_done(struct gw_commit *c)
{
	struct commit_item *it = (struct commit_item *)c;
	struct gw_gtopic *gt = it->gt;

	gt->marking = 0;
	if (c->rc) {
		/* Unmarked: the next attempt to hand something out tries again (not kick(), which
		 * would retry at once, for as long as the engine fails). */
		LOG_ERR("group %s: marking %s: %s", gt->g->name, gt->name, eng_strerror(c->rc));
		gt->peek_wanted = 0;
	} else {
		gt->marked = 1;
	}
	if (!gt->dead && !gt->g->gw->groups->closing) {
		kick(gt);
		gw_group_serve(gt->g);
	}
	unref(gt);
	free(it);
}

static void
mark_async(struct gw_gtopic *gt)
{
	struct commit_item *it;

	if (gt->marked || gt->marking || gt->dead || gt->g->gw->groups->closing)
		return;
	it = xcalloc(1, sizeof(*it));
	strcpy(it->c.group, gt->g->name);
	strcpy(it->c.topic, gt->name);
	it->c.meta = GW_COMMIT_META_ENSURE;
	marker_key(gt->g, gt->name, it->c.key, sizeof(it->c.key));
	it->c.done = mark_done;
	it->gt = gt;
	gt->refs++;
	gt->marking = 1;
	gw_commits_submit(&it->c);
}

static void
gaps_done(struct gw_commit *c)
{
	free(c->val);
	commit_done(c);
}

/* After acks moved things: record the acknowledged offsets the stored one cannot cover yet (or
 * drop the record when there are none), through the topic's worker, after its offset commit. */
static void
store_gaps(struct gw_gtopic *gt, struct gw_commit_wait *w)
{
	struct commit_item *it;
	struct gw_buf b;
	int any = 0;

	if (gt->dead || gt->g->gw->groups->closing)
		return;
	gw_buf_init(&b, 0);
	for (uint32_t i = 0; i < gt->n_win; i++) {
		if (gt->win[i].state != GW_E_ACKED)
			continue;
		if (any++)
			gw_buf_putc(&b, ',');
		gw_buf_u64(&b, gt->win[i].offset);
	}
	for (uint32_t i = 0; i < gt->n_acked_above; i++) {
		if (gt->acked_above[i] < gt->committed)
			continue; /* covered by the position now */
		if (any++)
			gw_buf_putc(&b, ',');
		gw_buf_u64(&b, gt->acked_above[i]);
	}
	if (!any && !gt->gaps_stored) {
		gw_buf_free(&b);
		return;
	}
	it = xcalloc(1, sizeof(*it));
	strcpy(it->c.group, gt->g->name);
	strcpy(it->c.topic, gt->name);
	gaps_key(gt->g, gt->name, it->c.key, sizeof(it->c.key));
	if (any) {
		it->c.meta = GW_COMMIT_META_PUT;
		it->c.val = xmalloc(b.len);
		memcpy(it->c.val, gw_buf_data(&b), b.len);
		it->c.len = b.len;
	} else {
		it->c.meta = GW_COMMIT_META_DELETE;
	}
	gw_buf_free(&b);
	it->c.done = gaps_done;
	it->gt = gt;
	it->wait = w;
	gt->refs++;
	gt->gaps_stored = any > 0;
	if (w)
		w->left++;
	gw_commits_submit(&it->c);
}

/* Store every moved offset now, on this thread, in batches (only at shutdown, when the pool has
 * stopped): a few synced writes, not one per topic. */
#define CLOSE_BATCH 1024

static void
commit_flush(struct gw *gw, eng_offset_entry *ents, struct gw_gtopic **gts, size_t n)
{
	int rc;

	if (!n)
		return;
	if ((rc = eng_offset_commit_batch(gw->db, ents, n)) != 0) {
		LOG_ERR("storing %zu offsets at shutdown: %s", n, eng_strerror(rc));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		gts[i]->stored = gts[i]->storing = gts[i]->committed;
		gw_journal_stored(gts[i], gts[i]->stored);
	}
}

static void
commit_all(struct gw *gw)
{
	eng_offset_entry *ents = xmalloc(CLOSE_BATCH * sizeof(*ents));
	struct gw_gtopic **gts = xmalloc(CLOSE_BATCH * sizeof(*gts));
	size_t n = 0;

	for (struct gw_group *g = gw->groups->list; g; g = g->next) {
		for (size_t i = 0; i < g->hcap; i++) {
			for (struct gw_gtopic *gt = g->htab[i]; gt; gt = gt->hnext) {
				if (gt->dead || gt->committed == gt->stored)
					continue;
				ents[n] = (eng_offset_entry){ g->name, gt->name, gt->committed };
				gts[n++] = gt;
				if (n == CLOSE_BATCH) {
					commit_flush(gw, ents, gts, n);
					n = 0;
				}
			}
		}
	}
	commit_flush(gw, ents, gts, n);
	free(ents);
	free(gts);
}

static void
set_acked(struct gw_gtopic *gt, struct gw_entry *e)
{
	if (e->state == GW_E_INFLIGHT)
		gt->g->inflight--;
	else if (e->state == GW_E_AVAIL)
		gt->n_avail--;
	if (e->state != GW_E_ACKED)
		gt->n_unacked--;
	e->state = GW_E_ACKED;
}

/* Every entry goes (the topic was re-created, or its position was reset): receipts die with them. */
static void
win_clear(struct gw_gtopic *gt)
{
	gt->g->inflight -= count_inflight(gt);
	for (uint32_t i = 0; i < gt->n_win; i++)
		gw_journal_forget(gt, &gt->win[i]);
	gt->n_win = gt->n_unacked = gt->n_avail = 0;
}

/* ---- Dead letters ---------------------------------------------------------------------------------- */

struct dlq_ctx {
	struct gw_gtopic *gt; /* holds a ref */
	uint64_t offset, nonce;
};

static void on_dlq(void *ctx, const eng_append_result *res);

/* Retry a dead letter later: the entry waits, then the serve path dead-letters it again. */
static void
dlq_later(struct gw_gtopic *gt, struct gw_entry *e)
{
	e->state = GW_E_DELAYED;
	e->due_ms = mono_ms() + DLQ_RETRY_MS;
	heap_push(gt->g->gw->groups, e->due_ms, gt, e->offset, e->nonce);
	heap_arm(gt->g->gw);
}

/*
 * Move a message that was delivered max_deliveries times to "<parent>/_dlq.<group>": the append
 * carries the original event and, as data, where it came from and the original data. Only once the
 * append is durable is the message treated as acknowledged.
 */
static void
dead_letter(struct gw_gtopic *gt, struct gw_entry *e)
{
	struct gw_group *g = gt->g;
	struct gw *gw = g->gw;
	char dlq[ENG_TOPIC_MAX + 1];
	eng_read_result res;
	struct gw_buf data;
	struct dlq_ctx *ctx;
	eng_msg_in m;
	int rc;

	if (e->state == GW_E_INFLIGHT)
		g->inflight--;
	else if (e->state == GW_E_AVAIL)
		gt->n_avail--;
	e->state = GW_E_DLQ;
	memset(&res, 0, sizeof(res));
	rc = eng_read(gw->db, gt->name, e->offset, 1, 1, &res);
	if (!rc && (!res.n || res.msgs[0].offset != e->offset) && res.first_offset <= e->offset) {
		/* Visible but not readable yet (the engine race serve_topic() describes). */
		eng_read_free(&res);
		dlq_later(gt, e);
		return;
	}
	if (rc || !res.n || res.msgs[0].offset != e->offset) {
		/* Gone from the log (retention, topic deleted) or unreadable: nothing to keep. */
		if (rc)
			LOG_WARN("group %s: dead letter %s@%llu unreadable: %s", g->name, gt->name,
				 (unsigned long long)e->offset, eng_strerror(rc));
		eng_read_free(&res);
		set_acked(gt, e);
		return;
	}
	snprintf(dlq, sizeof(dlq), "%.*s/" GW_DLQ_PREFIX "%s", (int)(strchr(gt->name, '/') - gt->name),
		 gt->name, g->name);
	gw_buf_init(&data, 0);
	for (int omit = 0; omit < 2; omit++) {
		gw_buf_reset(&data);
		gw_buf_puts(&data, "{\"topic\":");
		gw_buf_json_str(&data, gt->name, strlen(gt->name));
		gw_buf_printf(&data, ",\"offset\":%llu,\"event\":", (unsigned long long)e->offset);
		gw_buf_json_str(&data, res.msgs[0].event, strlen(res.msgs[0].event));
		gw_buf_puts(&data, ",\"group\":");
		gw_buf_json_str(&data, g->name, strlen(g->name));
		gw_buf_printf(&data, ",\"deliveries\":%u,\"time\":%llu,\"data\":", e->delivery,
			      (unsigned long long)res.msgs[0].time_ms);
		if (omit)
			gw_buf_puts(&data, "null,\"data_omitted\":true}");
		else {
			gw_put_payload(&data, res.msgs[0].data, res.msgs[0].len);
			gw_buf_putc(&data, '}');
		}
		ctx = xmalloc(sizeof(*ctx));
		*ctx = (struct dlq_ctx){ gt, e->offset, e->nonce };
		m.event = res.msgs[0].event;
		m.data = gw_buf_data(&data);
		m.len = data.len;
		m.key = NULL;
		m.has_priority = res.msgs[0].priority != ENG_PRIORITY_NONE; /* keeps its urgency */
		m.priority = m.has_priority ? (uint8_t)res.msgs[0].priority : 0;
		rc = eng_append(gw->db, dlq, &m, 1, ENG_NO_EXPECT, on_dlq, ctx);
		if (!rc) {
			gt->refs++;
			break;
		}
		free(ctx);
		if (rc != ENG_ETOOBIG)
			break;
	}
	gw_buf_free(&data);
	eng_read_free(&res);
	if (rc) {
		LOG_WARN("group %s: dead-lettering %s@%llu to %s: %s; retrying", g->name, gt->name,
			 (unsigned long long)e->offset, dlq, eng_strerror(rc));
		dlq_later(gt, e);
	}
}

static void
on_dlq(void *ctx_, const eng_append_result *res)
{
	struct dlq_ctx *ctx = ctx_;
	struct gw_gtopic *gt = ctx->gt;
	struct gw_entry *e = gt->dead ? NULL : win_find(gt, ctx->offset);

	if (e && e->nonce == ctx->nonce && e->state == GW_E_DLQ) {
		struct gw *gw = gt->g->gw;

		if (res->rc == 0) {
			set_acked(gt, e);
			gw->m.dead_lettered++;
			LOG_INFO("group %s: %s@%llu dead-lettered after %u deliveries", gt->g->name,
				 gt->name, (unsigned long long)ctx->offset, e->delivery);
			advance(gt);
			commit_async(gt, NULL);
			store_gaps(gt, NULL);
			kick(gt);
			if (!gw->groups->closing)
				gw_group_serve(gt->g);
		} else if (!gw->groups->closing) {
			LOG_WARN("group %s: dead letter of %s@%llu: %s; retrying", gt->g->name, gt->name,
				 (unsigned long long)ctx->offset, eng_strerror(res->rc));
			dlq_later(gt, e);
		}
	}
	unref(gt);
	free(ctx);
}

/* ---- Handing out --------------------------------------------------------------------------------- */

static int
wanted(const struct gw_group *g, const struct gw_gtopic *gt, const eng_msg_view *m)
{
	if (m->time_ms < gt->skip_before_ms)
		return 0;
	if (!g->n_events)
		return 1;
	for (size_t i = 0; i < g->n_events; i++)
		if (!strcmp(g->events[i], m->event))
			return 1;
	return 0;
}

static void
hand_out(struct gw_gtopic *gt, struct gw_entry *e, const eng_msg_view *m, struct gw_waiter *w)
{
	struct gw_group *g = gt->g;
	struct gw_groups *gs = g->gw->groups;
	struct gw_buf *b = &w->out;

	if (e->state == GW_E_AVAIL)
		gt->n_avail--;
	e->state = GW_E_INFLIGHT;
	e->delivery++;
	e->nonce = ++gs->nonce;
	e->due_ms = mono_ms() + g->invisible_ms;
	g->inflight++;
	heap_push(gs, e->due_ms, gt, e->offset, e->nonce);
	gw_journal_note(gt, e); /* written with the pop's record, before the reply */

	if (w->n_out)
		gw_buf_putc(b, ',');
	gw_buf_puts(b, "{\"topic\":\"");
	gw_buf_puts(b, gt->name);
	gw_buf_puts(b, "\",\"offset\":");
	gw_buf_u64(b, m->offset);
	gw_buf_puts(b, ",\"event\":\"");
	gw_buf_puts(b, m->event); /* event names need no escaping */
	gw_buf_puts(b, "\",\"data\":");
	gw_put_payload(b, m->data, m->len);
	gw_buf_puts(b, ",\"receipt\":");
	put_receipt(b, gs, g, gt, e);
	gw_buf_puts(b, ",\"delivery\":");
	gw_buf_u64(b, e->delivery);
	gw_buf_puts(b, ",\"time\":");
	gw_buf_u64(b, m->time_ms);
	if (m->priority != ENG_PRIORITY_NONE) {
		gw_buf_puts(b, ",\"priority\":");
		gw_buf_u64(b, (uint64_t)m->priority); /* 0..9 */
	}
	gw_buf_putc(b, '}');
	w->n_out++;

	if (w->n_handed == w->cap_handed) {
		w->cap_handed = w->cap_handed ? w->cap_handed * 2 : 16;
		w->handed = xrealloc(w->handed, w->cap_handed * sizeof(*w->handed));
	}
	w->handed[w->n_handed++] = (struct gw_handout){ gt, e->offset, e->nonce };
	gt->refs++;
	g->gw->m.popped_msgs++;
	if (e->delivery > 1)
		g->gw->m.redelivered_msgs++;
}

static int
over_budget(const struct gw_waiter *w)
{
	return w->n_out && w->out.len >= w->max_bytes;
}

/* ---- Reads that must be repeated ------------------------------------------------------------------ */

#define RETRY_S 0.002

static void
on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct gw *gw = t->data;
	struct gw_gtopic *list = gw->groups->retry;

	(void)loop;
	(void)revents;
	gw->groups->retry = NULL;
	while (list) {
		struct gw_gtopic *gt = list;

		list = gt->rnext;
		gt->rnext = NULL;
		gt->retrying = 0;
		if (!gt->dead) {
			kick(gt);
			gw_group_serve(gt->g);
		}
		unref(gt);
	}
}

static void
retry_later(struct gw_gtopic *gt)
{
	struct gw_groups *gs = gt->g->gw->groups;

	if (gt->retrying || gs->closing)
		return;
	if (++gt->retries % 500 == 0)
		LOG_WARN("group %s: %s@%llu is visible but still not readable after %u tries",
			 gt->g->name, gt->name, (unsigned long long)gt->next_read, gt->retries);
	gt->retrying = 1;
	gt->refs++;
	gt->rnext = gs->retry;
	gs->retry = gt;
	if (!ev_is_active(&gs->retry_w)) {
		ev_timer_set(&gs->retry_w, RETRY_S, 0);
		ev_timer_start(gt->g->gw->loop, &gs->retry_w);
	}
}

/* The topic's messages were re-created under it (its end is below our position): start over. */
static void
gt_reset(struct gw_gtopic *gt, uint64_t first, uint64_t next)
{
	LOG_INFO("group %s: %s was re-created (position %llu, now %llu..%llu); starting at %llu",
		 gt->g->name, gt->name, (unsigned long long)gt->next_read, (unsigned long long)first,
		 (unsigned long long)next, (unsigned long long)first);
	win_clear(gt);
	gt->committed = gt->next_read = first;
	gt->end = next;
	gt->peek_known = 0; /* the same offsets now hold other messages */
}

/*
 * How many messages the next eng_read of @p gt asks for: what can go out now (@p left of the pop's
 * share, free in-flight slots, window room), since every message read costs a log read and the
 * rest would only be read again at the next pop (with max_inflight_per_topic 1, reading 64 to hand
 * out 1 was most of a pop's cost). At least twice @p prev (the last read's count) when the loop
 * comes round again, i.e. the last read was used up by unwanted events, so a topic full of tokens
 * is still crossed in few reads. 1..READ_CHUNK.
 */
static size_t
read_count(const struct gw_gtopic *gt, uint32_t left, size_t prev)
{
	size_t room = left;

	if (gt->g->max_inflight - gt->n_unacked < room)
		room = gt->g->max_inflight - gt->n_unacked;
	if (WIN_CAP - gt->n_win < room)
		room = WIN_CAP - gt->n_win;
	if (prev * 2 > room)
		room = prev * 2;
	if (!room)
		room = 1;
	return room < READ_CHUNK ? room : READ_CHUNK;
}

/*
 * Hand out up to @p quota messages of @p gt into @p w: first those due for redelivery (in offset
 * order), then unread ones while in-flight slots are free, skipping events the group does not want.
 * @return how many. May drop @p gt (the topic is gone): the caller holds a ref.
 */
static uint32_t
serve_topic(struct gw_gtopic *gt, struct gw_waiter *w, uint32_t quota)
{
	struct gw_group *g = gt->g;
	struct gw *gw = g->gw;
	eng_read_result res;
	uint32_t n = 0;
	size_t chunk = 0;
	int rc;

	for (uint32_t i = 0; i < gt->n_win && n < quota && gt->n_avail && !over_budget(w); i++) {
		struct gw_entry *e = &gt->win[i];

		if (e->state != GW_E_AVAIL)
			continue;
		if (e->delivery >= g->max_deliveries) {
			dead_letter(gt, e);
			continue;
		}
		memset(&res, 0, sizeof(res));
		rc = eng_read(gw->db, gt->name, e->offset, 1, 1, &res);
		if (rc == ENG_ENOTFOUND) {
			eng_read_free(&res);
			gt_gone(gt);
			return n;
		}
		if (rc) {
			LOG_WARN("group %s: reading %s@%llu: %s", g->name, gt->name,
				 (unsigned long long)e->offset, eng_strerror(rc));
			eng_read_free(&res);
			return n;
		}
		if (res.n && res.msgs[0].offset == e->offset) {
			hand_out(gt, e, &res.msgs[0], w);
			n++;
		} else if (res.first_offset > e->offset) {
			set_acked(gt, e); /* fell out of retention: nothing left to deliver */
		} else {
			eng_read_free(&res);
			retry_later(gt); /* visible but not readable yet (see below) */
			break;
		}
		eng_read_free(&res);
	}
	while (n < quota && gt->n_unacked < g->max_inflight && gt->n_win < WIN_CAP &&
	       gt->next_read < gt->end && !over_budget(w)) {
		int stop = 0;

		memset(&res, 0, sizeof(res));
		chunk = read_count(gt, quota - n, chunk);
		/* One more than can go out: the message after them is seen here, and its priority
		 * decides the topic's next queue (set_peek below) without a read of its own when the
		 * ack frees the slot (with one message in flight per topic, a second read per message). */
		rc = eng_read(gw->db, gt->name, gt->next_read, chunk + 1,
			      w->max_bytes > w->out.len ? w->max_bytes - w->out.len : 1, &res);
		if (rc == ENG_ENOTFOUND) {
			eng_read_free(&res);
			gt_gone(gt);
			return n;
		}
		if (rc) {
			LOG_WARN("group %s: reading %s@%llu: %s", g->name, gt->name,
				 (unsigned long long)gt->next_read, eng_strerror(rc));
			eng_read_free(&res);
			gt->end = gt->next_read; /* try again at its next message */
			break;
		}
		if (gt->next_read > res.next_offset) {
			gt_reset(gt, res.first_offset, res.next_offset);
			eng_read_free(&res);
			continue;
		}
		if (res.below_retained && res.first_offset > gt->next_read)
			gt->next_read = res.first_offset; /* expired before the group read them */
		gt->end = res.next_offset;
		if (res.n)
			gt->retries = 0;
		for (size_t i = 0; i < res.n; i++) {
			const eng_msg_view *m = &res.msgs[i];
			struct gw_entry *e;

			if (!wanted(g, gt, m) || (gt->n_acked_above && acked_before(gt, m->offset))) {
				gt->next_read = m->offset + 1; /* unwanted, or acknowledged before a restart */
				continue;
			}
			if (n >= quota || gt->n_unacked >= g->max_inflight || gt->n_win >= WIN_CAP ||
			    over_budget(w)) {
				set_peek(gt, m->offset, m->priority); /* it decides the next queue */
				stop = 1;
				break;
			}
			if (!gt->marked) {
				mark_async(gt); /* this message waits until a restart can find it */
				set_peek(gt, m->offset, m->priority);
				stop = 1;
				break;
			}
			e = win_push(gt, m->offset);
			e->prio = (int8_t)m->priority;
			if (gt->n_dcounts && gw_dcounts_apply(gt, e)) {
				gt->next_read = m->offset + 1;
				dead_letter(gt, e); /* max_deliveries reached before a restart */
				continue;
			}
			hand_out(gt, e, m, w);
			gt->next_read = m->offset + 1;
			n++;
		}
		if (!res.n && gt->next_read < res.next_offset) {
			if (res.first_offset > gt->next_read) {
				gt->next_read = res.first_offset; /* the rest expired */
			} else {
				/*
				 * Visible but not found: the engine's sweep has moved the topic's open
				 * block into a RocksDB batch it has not written yet (a reader race in
				 * engine/src/read.c). The message is there; look again shortly
				 * rather than skip it.
				 */
				retry_later(gt);
				stop = 1;
			}
		}
		eng_read_free(&res);
		if (stop)
			break;
	}
	advance(gt);
	gt->last_used_ms = mono_ms();
	return n;
}

/* Pick the ready topic to serve next: highest priority, aged. */
static struct gw_gtopic *
pick(struct gw_group *g)
{
	struct gw_gtopic *best = NULL;
	uint64_t now = mono_ms(), best_score = 0;

	for (int p = GW_PRIO_LEVELS - 1; p >= 0; p--) {
		struct gw_gtopic *h = g->qhead[p];
		uint64_t score;

		if (!h)
			continue;
		score = (uint64_t)p * AGING_MS + (now - h->ready_since_ms);
		if (!best || score > best_score) {
			best = h;
			best_score = score;
		}
	}
	return best;
}

static void
refill(struct gw_group *g)
{
	uint64_t now = gw_mono_us();

	if (g->rate <= 0)
		return;
	g->tokens += (double)(now - g->tokens_us) / 1e6 * g->rate;
	if (g->tokens > g->burst)
		g->tokens = g->burst;
	g->tokens_us = now;
}

uint32_t
gw_group_fill(struct gw_group *g, struct gw_waiter *w)
{
	struct gw_gtopic *skipped = NULL, *gt;
	uint32_t budget = w->max > w->n_out ? w->max - w->n_out : 0, total = 0;

	if (g->rate > 0) {
		refill(g);
		if ((double)budget > floor(g->tokens))
			budget = g->tokens < 1 ? 0 : (uint32_t)floor(g->tokens);
	}
	while (budget && g->n_ready && !over_budget(w)) {
		uint32_t quota, n;

		gt = pick(g);
		dequeue(gt);
		/* An even share of what is left among the ready topics, at least one. */
		quota = budget / (uint32_t)(g->n_ready + 1);
		if (!quota)
			quota = 1;
		gt->refs++;
		n = serve_topic(gt, w, quota);
		budget -= n;
		total += n;
		if (n)
			kick(gt);
		else if (!gt->dead && can_send(gt) && !gt->queued) {
			/* Nothing came out (budget, or a read error): keep it ready, after this pop. */
			gt->qnext = skipped;
			skipped = gt;
			gt->refs++;
		}
		unref(gt);
	}
	while (skipped) {
		gt = skipped;
		skipped = gt->qnext;
		gt->qnext = NULL;
		kick(gt);
		unref(gt);
	}
	if (g->rate > 0)
		g->tokens -= total;
	gw_journal_write(g->gw); /* the counts of what it handed out, before the reply */
	return total;
}

/* ---- Waiters -------------------------------------------------------------------------------------- */

static void
on_rate(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	gw_group_serve(t->data);
}

/* Rate-limited with waiters and work: wake up when the next token is there. */
static void
arm_rate(struct gw_group *g)
{
	double wait;

	if (g->rate <= 0 || ev_is_active(&g->rate_w) || g->waiters.next == &g->waiters ||
	    !g->n_ready)
		return;
	refill(g);
	wait = g->tokens >= 1 ? 0.001 : (1 - g->tokens) / g->rate;
	ev_timer_init(&g->rate_w, on_rate, wait, 0);
	g->rate_w.data = g;
	ev_timer_start(g->gw->loop, &g->rate_w);
}

void
gw_group_serve(struct gw_group *g)
{
	if (g->deleted || g->gw->groups->closing)
		return;
	while (g->waiters.next != &g->waiters && g->n_ready) {
		struct gw_waiter *w = g->waiters.next;

		if (!gw_group_fill(g, w))
			break;
		gw_group_unpark(w);
		w->filled(w);
	}
	arm_rate(g);
}

void
gw_group_park(struct gw_group *g, struct gw_waiter *w)
{
	w->g = g;
	w->prev = g->waiters.prev;
	w->next = &g->waiters;
	g->waiters.prev->next = w;
	g->waiters.prev = w;
	w->parked = 1;
	g->n_waiters++;
	g->gw->m.pops_waiting++;
	arm_rate(g);
}

void
gw_group_unpark(struct gw_waiter *w)
{
	if (!w->parked)
		return;
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->prev = w->next = NULL;
	w->parked = 0;
	w->g->n_waiters--;
	w->g->gw->m.pops_waiting--;
}

static void
waiter_clear(struct gw_waiter *w)
{
	for (uint32_t i = 0; i < w->n_handed; i++)
		unref(w->handed[i].gt);
	free(w->handed);
	w->handed = NULL;
	w->n_handed = w->cap_handed = 0;
	gw_buf_free(&w->out);
	w->n_out = 0;
}

void
gw_waiter_done(struct gw_waiter *w)
{
	waiter_clear(w);
}

void
gw_waiter_release(struct gw_waiter *w)
{
	for (uint32_t i = 0; i < w->n_handed; i++) {
		struct gw_gtopic *gt = w->handed[i].gt;
		struct gw_entry *e = gt->dead ? NULL : win_find(gt, w->handed[i].offset);

		if (!e || e->nonce != w->handed[i].nonce || e->state != GW_E_INFLIGHT)
			continue;
		/* Never written: not a delivery. Its timer record goes stale (state changes). */
		e->state = GW_E_AVAIL;
		e->delivery--;
		gt->n_avail++;
		gt->g->inflight--;
		gt->g->gw->m.popped_msgs--;
		kick(gt);
		gw_group_serve(gt->g);
	}
	waiter_clear(w);
}

/* ---- Deadlines ------------------------------------------------------------------------------------ */

static void
on_heap(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct gw *gw = t->data;
	struct gw_groups *gs = gw->groups;
	uint64_t now = mono_ms();

	(void)loop;
	(void)revents;
	while (gs->n_heap && gs->heap[0].due_ms <= now) {
		struct gw_timer_rec rec = heap_pop(gs);
		struct gw_gtopic *gt = rec.gt;
		struct gw_entry *e = gt->dead ? NULL : win_find(gt, rec.offset);

		if (e && e->nonce == rec.nonce && e->due_ms <= now &&
		    (e->state == GW_E_INFLIGHT || e->state == GW_E_DELAYED)) {
			struct gw_group *g = gt->g;

			if (e->state == GW_E_INFLIGHT) {
				g->inflight--;
				gw->m.visibility_timeouts++;
				if (e->delivery >= g->max_deliveries) {
					e->state = GW_E_AVAIL; /* for dead_letter's bookkeeping */
					gt->n_avail++;
					dead_letter(gt, e);
					goto next;
				}
			}
			e->state = GW_E_AVAIL;
			gt->n_avail++;
			kick(gt);
			gw_group_serve(g);
		}
next:
		unref(gt);
	}
	heap_arm(gw);
}

static void
heap_arm(struct gw *gw)
{
	struct gw_groups *gs = gw->groups;
	uint64_t now = mono_ms();
	double after;

	if (!gs->n_heap || gs->closing) {
		if (ev_is_active(&gs->heap_w))
			ev_timer_stop(gw->loop, &gs->heap_w);
		return;
	}
	after = gs->heap[0].due_ms > now ? (double)(gs->heap[0].due_ms - now) / 1e3 : 0;
	if (ev_is_active(&gs->heap_w))
		ev_timer_stop(gw->loop, &gs->heap_w);
	ev_timer_set(&gs->heap_w, after, 0);
	ev_timer_start(gw->loop, &gs->heap_w);
}

/* Once a second: store offsets that moved over skipped events only, forget idle drained states,
 * and write the journal's deletes that no pop took along. */
static void
on_house(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct gw *gw = t->data;
	uint64_t now = mono_ms();

	(void)loop;
	(void)revents;
	for (struct gw_group *g = gw->groups->list; g; g = g->next) {
		for (size_t i = 0; i < g->hcap; i++) {
			for (struct gw_gtopic *gt = g->htab[i], *nx; gt; gt = nx) {
				nx = gt->hnext;
				/* An unmarked state (found by a topic scan, nothing handed out) keeps no
				 * position: storing it would cost a sync per topic for no progress. */
				if (gt->committed != gt->stored && gt->marked)
					commit_async(gt, NULL);
				if (gt->n_win || gt->queued || gt->refs ||
				    (gt->committed != gt->stored && gt->marked) ||
				    now - gt->last_used_ms <= IDLE_EVICT_MS)
					continue;
				gw_gtopic_drop(gt); /* its count record goes with it (gw_dcounts_drop) */
			}
		}
	}
	gw_journal_flush(gw);
	heap_arm(gw); /* the clock may have jumped past due records while the loop was busy */
}

void
gw_consume_init(struct gw *gw)
{
	struct gw_groups *gs = gw->groups;

	ev_timer_init(&gs->heap_w, on_heap, 1, 0);
	gs->heap_w.data = gw;
	ev_timer_init(&gs->retry_w, on_retry, RETRY_S, 0);
	gs->retry_w.data = gw;
	ev_timer_init(&gs->house_w, on_house, 1, 1);
	gs->house_w.data = gw;
	ev_timer_start(gw->loop, &gs->house_w);
}

void
gw_groups_close(struct gw *gw)
{
	struct gw_groups *gs = gw->groups;

	if (!gs)
		return;
	gw_commits_stop(); /* stores what is queued, runs the completions */
	commit_all(gw);
	gw_journal_flush(gw); /* the records that every stored position released */
	for (struct gw_group *g = gs->list; g; g = g->next) {
		if (ev_is_active(&g->rate_w))
			ev_timer_stop(gw->loop, &g->rate_w);
	}
	gs->closing = 1;
	if (ev_is_active(&gs->heap_w))
		ev_timer_stop(gw->loop, &gs->heap_w);
	if (ev_is_active(&gs->house_w))
		ev_timer_stop(gw->loop, &gs->house_w);
	if (ev_is_active(&gs->scan_w))
		ev_timer_stop(gw->loop, &gs->scan_w);
	if (ev_is_active(&gs->retry_w))
		ev_timer_stop(gw->loop, &gs->retry_w);
}

void
gw_consume_free(struct gw *gw)
{
	struct gw_groups *gs = gw->groups;

	/* The groups are gone and every topic state they had is on the dead list (the timer
	 * records still point at them): free the records without touching them, then the states. */
	free(gs->heap);
	gs->heap = NULL;
	gs->n_heap = 0;
	gw_dcounts_free(gw);
	gs->retry = NULL; /* its states are on the dead list too */
	while (gs->dead) {
		struct gw_gtopic *gt = gs->dead;

		gs->dead = gt->dnext;
		gt_free(gt);
	}
}

/* ---- Ack, nack ------------------------------------------------------------------------------------- */

struct settle {
	struct gw_group *g;
	json_t *root;                 /* NULL when the fast path read the body */
	struct gw_buf spans;          /* the receipts (struct gw_span; p NULL: not a string) */
	size_t n_receipts;
	struct gw_gtopic **touched;
	size_t n_touched;
	struct gw_buf errors;
	size_t n_errors;
	struct gw_error first;  /* the first refusal */
	uint32_t ok;
};

static void
refuse(struct settle *s, const struct gw_span *receipt, unsigned status, const char *code,
       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
refuse(struct settle *s, const struct gw_span *receipt, unsigned status, const char *code,
       const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!s->n_errors)
		gw_error_set(&s->first, status, code, "%s", msg);
	gw_buf_puts(&s->errors, s->n_errors++ ? ",{\"receipt\":" : "{\"receipt\":");
	if (receipt->p && receipt->len <= 512)
		gw_buf_json_str(&s->errors, receipt->p, receipt->len);
	else
		gw_buf_puts(&s->errors, "null");
	gw_buf_puts(&s->errors, ",\"code\":");
	gw_buf_json_str(&s->errors, code, strlen(code));
	gw_buf_puts(&s->errors, ",\"message\":");
	gw_buf_json_str(&s->errors, msg, strlen(msg));
	gw_buf_putc(&s->errors, '}');
}

/* The receipts of a body jansson read: every member of the array, strings or not. */
static void
spans_of(struct settle *s, json_t *receipts)
{
	size_t i;
	json_t *v;

	gw_buf_reserve(&s->spans, json_array_size(receipts) * sizeof(struct gw_span));
	json_array_foreach(receipts, i, v) {
		struct gw_span sp = { json_string_value(v), json_string_length(v) };

		gw_buf_append(&s->spans, &sp, sizeof(sp));
	}
	s->n_receipts = json_array_size(receipts);
}

/*
 * Parse {"receipts":[...], <extra>}; @p extra names the one other member allowed (or NULL). The
 * usual body, receipts only, is read by gw_settle_scan(); anything else by jansson, which also
 * gives every refusal its message.
 */
static int
settle_begin(struct settle *s, struct gw_group *g, const char *body, size_t len, const char *extra,
	     struct gw_error *e)
{
	json_error_t jerr;
	const char *key;
	json_t *v, *receipts;

	memset(s, 0, sizeof(*s));
	s->g = g;
	gw_buf_init(&s->errors, 0);
	gw_buf_init(&s->spans, 0);
	s->n_receipts = gw_settle_scan(body, len, RECEIPTS_MAX, &s->spans);
	if (s->n_receipts)
		goto found;
	s->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!s->root) {
		gw_error_set(e, 400, "bad_json", "%s", jerr.text);
		return -1;
	}
	if (!json_is_object(s->root)) {
		gw_error_set(e, 400, "bad_json", "the body must be a JSON object");
		return -1;
	}
	json_object_foreach(s->root, key, v) {
		if (strcmp(key, "receipts") && (!extra || strcmp(key, extra))) {
			gw_error_set(e, 400, "bad_request", "unknown member \"%s\"", key);
			return -1;
		}
	}
	receipts = json_object_get(s->root, "receipts");
	if (!json_is_array(receipts) || !json_array_size(receipts) ||
	    json_array_size(receipts) > RECEIPTS_MAX) {
		gw_error_set(e, 400, "bad_request",
			     "\"receipts\" must be an array of 1 to %d receipts", RECEIPTS_MAX);
		return -1;
	}
	spans_of(s, receipts);
found:
	s->touched = xcalloc(s->n_receipts, sizeof(*s->touched));
	return 0;
}

static const struct gw_span *
settle_receipt(const struct settle *s, size_t i)
{
	return (const struct gw_span *)gw_buf_data(&s->spans) + i;
}

/* Check one receipt; returns its entry (and topic) if it names the current hand-out. */
static struct gw_entry *
settle_find(struct settle *s, const struct gw_span *str, struct gw_gtopic **gtp)
{
	struct gw_group *g = s->g;
	struct gw_gtopic *gt;
	struct gw_entry *e;
	struct receipt r;

	if (!str->p || receipt_parse(str->p, str->len, &r)) {
		refuse(s, str, 400, "bad_receipt", "not a receipt");
		return NULL;
	}
	if (r.mac != receipt_mac(g->gw->groups, g->name, r.topic, r.offset, r.delivery, r.nonce)) {
		refuse(s, str, 400, "bad_receipt",
		       "not a receipt of group %s (forged, altered, or issued before the gateway restarted)",
		       g->name);
		return NULL;
	}
	gt = gw_gtopic_get(g, r.topic, 0);
	e = gt ? win_find(gt, r.offset) : NULL;
	if (!e || e->state == GW_E_ACKED) {
		refuse(s, str, 409, "stale_receipt", "%s@%llu is not in flight: already acknowledged%s",
		       r.topic, (unsigned long long)r.offset,
		       gt ? "" : " (or the topic left the group)");
		return NULL;
	}
	if (e->nonce != r.nonce) {
		refuse(s, str, 409, "stale_receipt",
		       "%s@%llu was delivered again since this receipt (delivery %u is current, the receipt is for delivery %u)",
		       r.topic, (unsigned long long)r.offset, e->delivery, r.delivery);
		return NULL;
	}
	if (e->state == GW_E_DLQ) {
		refuse(s, str, 409, "stale_receipt", "%s@%llu is being moved to the dead-letter topic",
		       r.topic, (unsigned long long)r.offset);
		return NULL;
	}
	*gtp = gt;
	return e;
}

static void
touch(struct settle *s, struct gw_gtopic *gt)
{
	for (size_t i = 0; i < s->n_touched; i++)
		if (s->touched[i] == gt)
			return;
	s->touched[s->n_touched++] = gt;
	gt->refs++;
}

/* Finish: reply body and status; commit and wake what the settles freed. */
static int
settle_end(struct settle *s, const char *verb, struct gw_commit_wait **wait, struct gw_buf *out,
	   unsigned *status, struct gw_error *e)
{
	struct gw_group *g = s->g;
	struct gw_commit_wait *w = wait ? xcalloc(1, sizeof(*w)) : NULL;

	(void)e;
	for (size_t i = 0; i < s->n_touched; i++) {
		struct gw_gtopic *gt = s->touched[i];
		uint64_t before = gt->committed;

		advance(gt);
		/* An ack is answered once the positions it moved are stored (the pool does it), and
		 * the acknowledged offsets they cannot cover yet. Every offset first, then the gap
		 * records: the serial commit thread stores consecutive offsets with one batch. */
		if (gt->committed != before || gt->committed != gt->storing)
			commit_async(gt, w);
	}
	for (size_t i = 0; i < s->n_touched; i++) {
		struct gw_gtopic *gt = s->touched[i];

		if (wait)
			store_gaps(gt, w);
		gt->last_used_ms = mono_ms();
		kick(gt);
		unref(gt);
	}
	gw_group_serve(g);
	if (w && !w->left) {
		gw_commit_wait_free(w);
		w = NULL;
	}
	if (wait)
		*wait = w;
	/* Members only: the caller wraps them in an object, or appends them to an error object. */
	gw_buf_putc(out, '"');
	gw_buf_puts(out, verb);
	gw_buf_puts(out, "\":");
	gw_buf_u64(out, s->ok);
	gw_buf_puts(out, ",\"errors\":[");
	gw_buf_append(out, gw_buf_data(&s->errors), s->errors.len);
	gw_buf_puts(out, "]");
	if (!s->ok && s->n_errors) {
		/* Nothing was settled: the reply is the first refusal, with every detail. */
		*status = s->first.status;
		*e = s->first;
	} else {
		*status = 200;
	}
	return 0;
}

static void
settle_free(struct settle *s)
{
	free(s->touched);
	gw_buf_free(&s->errors);
	gw_buf_free(&s->spans);
	json_decref(s->root);
}

int
gw_group_ack(struct gw_group *g, const char *body, size_t len, struct gw_buf *out, unsigned *status,
	     struct gw_error *e, struct gw_commit_wait **wait)
{
	struct settle s;
	int rc = -1;

	if (settle_begin(&s, g, body, len, NULL, e))
		goto out;
	for (size_t i = 0; i < s.n_receipts; i++) {
		struct gw_gtopic *gt;
		struct gw_entry *en = settle_find(&s, settle_receipt(&s, i), &gt);

		if (!en)
			continue;
		set_acked(gt, en);
		touch(&s, gt);
		s.ok++;
	}
	g->gw->m.acked_msgs += s.ok;
	rc = settle_end(&s, "acked", wait, out, status, e);
out:
	settle_free(&s);
	return rc;
}

int
gw_group_nack(struct gw_group *g, const char *body, size_t len, struct gw_buf *out,
	      unsigned *status, struct gw_error *e)
{
	struct gw_groups *gs = g->gw->groups;
	json_t *d;
	uint64_t delay = 0;
	struct settle s;
	int rc = -1;

	if (settle_begin(&s, g, body, len, "delay_ms", e))
		goto out;
	if (s.root && (d = json_object_get(s.root, "delay_ms"))) {
		if (!json_is_integer(d) || json_integer_value(d) < 0 ||
		    json_integer_value(d) > NACK_DELAY_MAX_MS) {
			gw_error_set(e, 400, "bad_request", "\"delay_ms\" must be an integer from 0 to %u",
				     NACK_DELAY_MAX_MS);
			goto out;
		}
		delay = (uint64_t)json_integer_value(d);
	}
	for (size_t i = 0; i < s.n_receipts; i++) {
		struct gw_gtopic *gt;
		struct gw_entry *en = settle_find(&s, settle_receipt(&s, i), &gt);

		if (!en)
			continue;
		s.ok++;
		/* Take it out of the counters of its current state, then settle it anew. */
		if (en->state == GW_E_INFLIGHT)
			g->inflight--;
		else if (en->state == GW_E_AVAIL)
			gt->n_avail--;
		if (en->delivery >= g->max_deliveries) {
			en->state = GW_E_AVAIL; /* dead_letter() takes it from AVAIL */
			gt->n_avail++;
			dead_letter(gt, en);
		} else if (delay) {
			en->state = GW_E_DELAYED;
			en->due_ms = mono_ms() + delay;
			heap_push(gs, en->due_ms, gt, en->offset, en->nonce);
		} else {
			en->state = GW_E_AVAIL;
			gt->n_avail++;
		}
		touch(&s, gt);
	}
	heap_arm(g->gw);
	g->gw->m.nacked_msgs += s.ok;
	rc = settle_end(&s, "nacked", NULL, out, status, e);
out:
	settle_free(&s);
	return rc;
}

/* ---- Offsets -------------------------------------------------------------------------------------- */

int
gw_group_offset_get(struct gw *gw, const char *name, struct gw_group *g, const char *topic,
		    struct gw_buf *out, struct gw_error *e)
{
	struct gw_gtopic *gt = g ? gw_gtopic_get(g, topic, 0) : NULL;
	eng_topic_info info;
	uint64_t off = 0;
	int rc, has_off = 0, has_info;

	rc = eng_topic_info_get(gw->db, topic, &info);
	if (rc && rc != ENG_ENOTFOUND) {
		gw_error_from_eng(rc, e);
		return -1;
	}
	has_info = rc == 0;
	if (gt) {
		off = gt->committed;
		has_off = 1;
	} else if ((rc = eng_offset_get(gw->db, name, topic, &off)) == 0) {
		has_off = 1;
	} else if (rc != ENG_ENOTFOUND) {
		gw_error_from_eng(rc, e);
		return -1;
	}
	gw_buf_puts(out, "{\"group\":");
	gw_buf_json_str(out, name, strlen(name));
	gw_buf_printf(out, ",\"topic\":\"%s\",\"offset\":", topic);
	if (has_off)
		gw_buf_u64(out, off);
	else
		gw_buf_puts(out, "null");
	gw_buf_puts(out, ",\"first_offset\":");
	if (has_info)
		gw_buf_u64(out, info.first_offset);
	else
		gw_buf_puts(out, "null");
	gw_buf_puts(out, ",\"next_offset\":");
	if (has_info)
		gw_buf_u64(out, info.next_offset);
	else
		gw_buf_puts(out, "null");
	gw_buf_printf(out, ",\"inflight\":%u,\"subscribed\":%s}\n", gt ? count_inflight(gt) : 0,
		      g && gw_group_wants_topic(g, topic) ? "true" : "false");
	return 0;
}

int
gw_group_offset_put(struct gw *gw, const char *name, struct gw_group *g, const char *topic,
		    const char *body, size_t len, struct gw_buf *out, struct gw_error *e,
		    struct gw_commit_wait **wait)
{
	json_error_t jerr;
	json_t *root, *off, *from;
	struct gw_gtopic *gt;
	eng_topic_info info;
	uint64_t target;
	int rc, has_info;

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		gw_error_set(e, 400, "bad_json", "%s", jerr.text);
		return -1;
	}
	off = json_object_get(root, "offset");
	from = json_object_get(root, "from");
	if (!json_is_object(root) || json_object_size(root) != 1 || (!off && !from) ||
	    (off && (!json_is_integer(off) || json_integer_value(off) < 0)) ||
	    (from && (!json_is_string(from) || (strcmp(json_string_value(from), "first") &&
						strcmp(json_string_value(from), "tail"))))) {
		json_decref(root);
		gw_error_set(e, 400, "bad_request",
			     "the body must be {\"offset\":N} or {\"from\":\"first\"|\"tail\"}");
		return -1;
	}
	rc = eng_topic_info_get(gw->db, topic, &info);
	if (rc && rc != ENG_ENOTFOUND) {
		json_decref(root);
		gw_error_from_eng(rc, e);
		return -1;
	}
	has_info = rc == 0;
	if (!has_info)
		memset(&info, 0, sizeof(info));
	if (off)
		target = (uint64_t)json_integer_value(off);
	else
		target = !strcmp(json_string_value(from), "tail") ? info.next_offset : info.first_offset;
	json_decref(root);
	*wait = NULL;
	if (g && (gt = gw_gtopic_get(g, topic, 0)) != NULL) {
		/* A topic with live state: the commit must queue behind its acks' (same worker). */
		struct gw_commit_wait *w = xcalloc(1, sizeof(*w));

		win_clear(gt);
		free(gt->acked_above);
		gt->acked_above = NULL;
		gt->n_acked_above = 0;
		gt->committed = gt->next_read = target;
		gt->skip_before_ms = 0;
		gt->peek_known = 0;
		if (has_info)
			gt->end = info.next_offset;
		commit_async(gt, w);
		store_gaps(gt, w); /* drops the gap record, if there was one */
		*wait = w;
		kick(gt);
		gw_group_serve(g);
		LOG_INFO("group %s: position in %s set to %llu", g->name, topic,
			 (unsigned long long)target);
		return gw_group_offset_get(gw, name, g, topic, out, e);
	}
	if ((rc = eng_offset_commit(gw->db, name, topic, target)) != 0) {
		gw_error_from_eng(rc, e);
		return -1;
	}
	if (g) {
		char key[ENG_META_KEY_MAX + 1];

		gaps_key(g, topic, key, sizeof(key)); /* acknowledged-above offsets: moot now */
		eng_meta_delete(gw->db, key);
	}
	if (!g) {
		/* Not a pull group: a name whose offsets streams store (progress.h). */
		LOG_INFO("group %s: position in %s set to %llu", name, topic, (unsigned long long)target);
		return gw_group_offset_get(gw, name, NULL, topic, out, e);
	}
	if (gw_group_wants_topic(g, topic) && has_info) {
		gt = gw_gtopic_get(g, topic, 1);
		gw_group_serve(g);
	}
	LOG_INFO("group %s: position in %s set to %llu", g->name, topic, (unsigned long long)target);
	return gw_group_offset_get(gw, name, g, topic, out, e);
}
