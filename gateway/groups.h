/*
 * groups.h - consumer groups: the pull side of the gateway (issue 4). Workers pop messages of many
 * lite topics in one request, acknowledge them in batches, and get unacknowledged ones again after
 * a visibility timeout; the engine's subscription and ready sets say which topics have news.
 *
 * Service thread only (the libev loop that lws runs on). Three files implement it:
 *   groups.c   definitions (PUT/GET/DELETE, subscriptions), their persistence in the engine's host
 *              metadata, restore at startup, and the hand-over from the engine's ready set;
 *   consume.c  per-topic consumer state, pop (round robin over ready topics, priorities with
 *              aging: a topic's priority is its next message's own, else its parent's; the group's
 *              token bucket), receipts, ack/nack, redelivery timers, dead letters and offsets;
 *   dcounts.c  delivery counts that survive restarts (the journal and its fold).
 * pull.c is the HTTP face (routes, bodies, long-poll waiters).
 *
 * Durable state, all through engine.h:
 *   "grp/<name>"          the group's definition (JSON), eng_meta_*;
 *   "gtp/<id>/<topic>"    a marker: the group has (or had) work in this topic of a subscribed
 *                         parent, so a restart finds the topics it had not finished at once (the
 *                         topic scan below finds them too, and the others, a page at a time);
 *   eng_offset_*(group, topic)   the group's position: every offset below it is acknowledged (or
 *                         was skipped: an event the group does not want);
 *   "gta/<id>/<topic>"    offsets acknowledged above the stored one (consume.c, gaps_key);
 *   "gdj/<id>/<seq>"      the delivery-count journal: one record per pop with the counts of
 *                         everything it handed out (one unsynced eng_meta_write before the reply),
 *                         deleted once none of its counts is current (dcounts.c);
 *   "gdc/<id>/<topic>"    delivery counts of the topic's handed-out, unacknowledged messages
 *                         ("offset:count,..."), folded from the journal at startup (and written
 *                         when a topic leaves a group's definition with messages in flight), read
 *                         when the topic's state is made, dropped with the state.
 * In-flight messages and receipts live in memory: after a restart every message that was in flight
 * is handed out again (at-least-once), with its delivery count continued from the records.
 *
 * The topic scan: a group that takes a parent (created, restored at startup, or after the engine's
 * ready set overflowed) lists the parent's existing lite topics with eng_topic_scan, SCAN_PAGE names
 * at a time on the helper thread (bg.h), which also drops those with nothing below their end for
 * the group (stored offset, else first retained, at or past the next offset). The service thread
 * takes each page's survivors as topics with news and asks for the next page. Topics that grow
 * meanwhile come through the ready set as usual (the subscription is made before the scan starts).
 */
#ifndef GW_GROUPS_H
#define GW_GROUPS_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "gw.h"

#define GW_GROUP_NAME_MAX 64          /* [A-Za-z0-9_.:-]{1,64}, not starting with '.' */
#define GW_GROUP_EVENTS_MAX 16        /* event names in one group's filter */
#define GW_GROUP_SUB_BASE (1ull << 62)/* engine subscriber ids of groups: base + group id */
#define GW_PRIO_LEVELS 10             /* priorities 0..9, 9 served first */
#define GW_DLQ_PREFIX "_dlq."         /* dead letters of group g go to <parent>/_dlq.<g> */
#define GW_COMMIT_THREADS 16           /* offset commit threads (commits.h) */

struct gw_group;
struct gw_gtopic;

/* Where one message of a topic stands for its group. */
enum gw_entry_state {
	GW_E_INFLIGHT = 1, /* handed out; invisible until due_ms */
	GW_E_AVAIL,        /* timed out or nacked: the next pop hands it out again */
	GW_E_DELAYED,      /* nacked with a delay: becomes GW_E_AVAIL at due_ms */
	GW_E_DLQ,          /* being appended to the dead-letter topic */
	GW_E_ACKED,        /* acknowledged; waits for the messages before it */
};

/* A record of the delivery-count journal (dcounts.c): the counts of one pop's hand-outs. */
struct gw_jrec {
	uint64_t seq;       /* its key: "gdj/<gid>/<seq>" */
	uint32_t gid;
	uint32_t live;      /* entries whose current count it holds, +1 while its pop is being filled;
			       deleted (and freed) at 0 */
};

/* One wanted message between a topic's committed offset and its read position. */
struct gw_entry {
	uint64_t offset;
	uint64_t nonce;     /* of its current hand-out: a receipt must carry it */
	uint64_t due_ms;    /* monotonic ms: INFLIGHT invisible until, DELAYED visible at */
	struct gw_jrec *jrec; /* the journal record holding its current count, or NULL */
	uint32_t delivery;  /* hand-outs so far (1 the first time) */
	uint8_t state;      /* enum gw_entry_state */
	int8_t prio;        /* the message's own priority, or ENG_PRIORITY_NONE */
};

/* A delivery count stored before a restart (dcounts.c, "gdc/" records). */
struct gw_dcount {
	uint64_t offset;
	uint32_t delivery;
};

/* An acknowledged entry that left the window while its position was not stored yet: its journal
 * record keeps the count until the position is durable (dcounts.c). */
struct gw_jpend {
	uint64_t offset;
	struct gw_jrec *jrec;
};

/*
 * A group's consumer state in one lite topic. Exists while the topic has work for the group (and a
 * few seconds after); rebuilt from the stored offset when news comes again.
 *
 * Offsets: [0, committed) acknowledged or skipped; [committed, next_read) read: the wanted ones are
 * in win[] (in offset order), the others were skipped; [next_read, end) not read yet.
 */
struct gw_gtopic {
	struct gw_gtopic *hnext;         /* group's hash chain */
	struct gw_gtopic *qprev, *qnext; /* ready queue of its priority, while queued */
	struct gw_gtopic *dnext;         /* the dead list, once dead */
	struct gw_gtopic *rnext;         /* the retry list, while retrying */
	struct gw_group *g;
	uint64_t committed;              /* next offset to acknowledge (in memory) */
	uint64_t stored;                 /* what eng_offset_commit last stored (or found) */
	uint64_t storing;                /* the last position sent to the commit pool (commits.h) */
	uint64_t next_read;              /* next offset to read from the log */
	uint64_t end;                    /* the topic's next offset as last seen */
	uint64_t skip_before_ms;         /* "from":"tail" on a parent: skip what was stored before */
	uint64_t ready_since_ms;         /* when it joined its ready queue (for aging) */
	uint64_t last_used_ms;           /* for idle eviction */
	struct gw_entry *win;            /* wanted messages read and not yet committed */
	uint32_t n_win, cap_win;
	uint32_t n_unacked;              /* entries not ACKED (in flight, available, delayed, dlq) */
	uint32_t n_avail;                /* entries AVAIL */
	uint32_t refs;                   /* timers, hand-outs, appends and retries that point here */
	uint32_t retries;                /* reads in a row that found a visible message missing */
	uint8_t prio;                    /* 0..9: its parent's priority */
	uint8_t qprio;                   /* the ready queue it is in, while queued (consume.c, kick) */
	int8_t peek_prio;                /* the priority of the message at peek_off (or NONE) */
	uint64_t peek_off;               /* valid while peek_known and equal to next_read */
	unsigned peek_known : 1;
	unsigned peek_wanted : 1;        /* peek() found the message at peek_off is one to hand out */
	unsigned queued : 1;             /* in a ready queue */
	unsigned dead : 1;               /* left its group (unsubscribed, deleted, gone): freed at refs 0 */
	unsigned retrying : 1;           /* on the retry list: read again in a moment */
	unsigned marked : 1;             /* a restart can find it: marker written, or explicit topic */
	unsigned marking : 1;            /* its marker is being written (commit pool): hand out nothing */
	unsigned gaps_stored : 1;        /* a gap record may exist in the engine (consume.c, gaps_key) */
	uint64_t *acked_above;           /* offsets acknowledged above the stored one before a restart */
	uint32_t n_acked_above;
	struct gw_dcount *dcounts;       /* delivery counts of unacknowledged messages, as stored
					    before a restart: taken when they are read again */
	uint32_t n_dcounts;
	struct gw_jpend *jpend;          /* acknowledged, not stored yet (see struct gw_jpend) */
	uint32_t n_jpend, cap_jpend;
	unsigned dc_stored : 1;          /* a "gdc/" record may exist in the engine */
	unsigned gone : 1;               /* the topic was deleted: its records go, none is written */
	char name[ENG_TOPIC_MAX + 1];
};

/* A parked pop request (pull.c embeds one per request). */
struct gw_waiter {
	struct gw_waiter *prev, *next;   /* the group's waiters, oldest first, while parked */
	struct gw_group *g;
	uint32_t max;                    /* messages wanted */
	size_t max_bytes;                /* payload budget of the reply */
	struct gw_buf out;               /* the messages, as comma-separated JSON objects */
	uint32_t n_out;
	struct gw_handout *handed;       /* what it was given, to take back if it is never written */
	uint32_t n_handed, cap_handed;
	void (*filled)(struct gw_waiter *w); /* a parked waiter got messages (or must answer now) */
	unsigned parked : 1;
};

struct gw_handout {
	struct gw_gtopic *gt;            /* holds a ref */
	uint64_t offset, nonce;
};

/* A group: its definition and its consumer state. */
struct gw_group {
	struct gw_group *next;           /* gw->groups->list */
	struct gw *gw;
	char name[GW_GROUP_NAME_MAX + 1];
	uint32_t id;                     /* stable across restarts: engine sub id and marker keys */
	/* definition */
	char parent[ENG_PARENT_MAX + 1]; /* "" = no whole-parent subscription */
	char events[GW_GROUP_EVENTS_MAX][ENG_EVENT_MAX + 1];
	size_t n_events;                 /* 0 = every event */
	char **topics;                   /* explicit lite topics */
	size_t n_topics;
	uint32_t max_inflight;           /* per topic */
	uint32_t invisible_ms;
	uint32_t max_deliveries;
	int from_tail;                   /* a topic seen for the first time starts at its end */
	uint64_t since_ms;               /* wall clock: when the parent subscription began */
	uint64_t created_ms;
	double rate, burst;              /* token bucket; rate 0 = unlimited */
	/* state */
	struct gw_gtopic **htab;         /* topic name -> state */
	size_t hcap, hcount;
	struct gw_gtopic *qhead[GW_PRIO_LEVELS], *qtail[GW_PRIO_LEVELS];
	size_t n_ready;                  /* topics queued */
	struct gw_waiter waiters;        /* sentinel */
	size_t n_waiters;
	double tokens;                   /* token bucket level */
	uint64_t tokens_us;              /* when it was last topped up (monotonic) */
	ev_timer rate_w;                 /* wakes waiters when tokens come back */
	uint64_t inflight;               /* entries in flight over all topics (for GET) */
	uint32_t scan_gen;               /* bumped by each topic scan: an older scan's pages are dropped */
	size_t scan_found;               /* topics with work the running scan found so far */
	unsigned scanning : 1;           /* a topic scan is running */
	unsigned deleted : 1;
};

/* The module's state, hung off struct gw. */
struct gw_groups {
	struct gw_group *list;
	struct gw_group *graveyard;      /* deleted groups, freed at exit (dead topics may point here) */
	struct gw_gtopic *dead;          /* dead topic states still referenced */
	uint32_t next_id;
	struct gw_timer_rec *heap;       /* visibility and nack-delay deadlines, a binary min-heap */
	size_t n_heap, cap_heap;
	ev_timer heap_w;                 /* armed for the earliest deadline */
	ev_timer house_w;                /* 1 s: store skipped-over offsets, evict idle topic states */
	ev_timer scan_w;                 /* the loop's first turn: restored groups' topic scans */
	struct gw_gtopic *retry;         /* topics to read again shortly (see retry_later) */
	ev_timer retry_w;
	uint64_t nonce;                  /* hand-out counter */
	uint8_t key[16];                 /* receipt MAC key, random per process */
	/* The delivery-count journal (dcounts.c) */
	uint64_t jseq;                   /* the next record's number */
	struct gw_jrec *jcur;            /* the record of the pop being filled, or NULL */
	struct gw_buf jval;              /* ... its value so far */
	const struct gw_gtopic *jlast;   /* ... the topic of its last line */
	struct gw_buf jdel;              /* keys to delete with the next write, NUL-terminated */
	size_t n_jdel;
	eng_meta_op *jops;               /* scratch for that write */
	size_t cap_jops;
	unsigned closing : 1;            /* the engine is closing: store nothing more */
};

/* ---- Lifecycle (main.c) ------------------------------------------------------------------------ */
/** @brief Restore every group from the engine and subscribe it. @return 0, or -1 (logged). */
int gw_groups_open(struct gw *gw);
/** @brief SIGTERM: answer every parked pop now (with what it has, usually nothing). */
void gw_groups_drain(struct gw *gw);
/** @brief Before eng_close: store pending offsets, stop timers. */
void gw_groups_close(struct gw *gw);
/** @brief After eng_close: free everything. */
void gw_groups_free(struct gw *gw);

/* ---- From the engine's ready set (subs.c) ------------------------------------------------------ */
static inline int
gw_groups_owns(uint64_t sub)
{
	return sub >= GW_GROUP_SUB_BASE;
}
void gw_groups_on_ready(struct gw *gw, const eng_ready *r);
/** @brief The engine says @p r->topic has news for @p g: make or update its state (end, and the
 *  priority of its first new message) and queue it if it has work. @return it, or NULL. */
struct gw_gtopic *gw_gtopic_news(struct gw_group *g, const eng_ready *r);

/* ---- Definitions (groups.c) --------------------------------------------------------------------- */
int gw_group_name_ok(const char *s, size_t len);
struct gw_group *gw_group_find(struct gw *gw, const char *name);
/**
 * @brief PUT /v1/groups/{name}: create or replace the definition. Replacing keeps the consumer
 *        state of topics that stay subscribed.
 * @param[out] out the group as GET shows it; @param[out] status 200 or 201.
 * @return 0, or -1 with @p e set.
 */
int gw_group_put(struct gw *gw, const char *name, const char *body, size_t len, struct gw_buf *out,
		 unsigned *status, struct gw_error *e);
/** @brief The group as JSON (definition and live counters). */
void gw_group_describe(const struct gw_group *g, struct gw_buf *out);
/** @brief Every group, as {"groups":[...]}. */
void gw_groups_list(struct gw *gw, struct gw_buf *out);
/** @brief Delete the group, its offsets and markers; parked pops get 404. */
int gw_group_delete(struct gw *gw, struct gw_group *g, struct gw_error *e);
/** @brief POST .../subscriptions {"add":[topics],"remove":[topics],"from":"first"|"tail"}. */
int gw_group_subscriptions(struct gw *gw, struct gw_group *g, const char *body, size_t len,
			   struct gw_buf *out, struct gw_error *e);

/* ---- Consuming (consume.c) ---------------------------------------------------------------------- */
/*
 * Offsets are stored by the commit pool (commits.h), off the service thread. A request that must
 * not be answered before its offsets are durable (ack, offset PUT) gets one of these: done runs
 * (service thread) once every commit it waits for is over; ctx NULL means nobody waits any more.
 */
struct gw_commit_wait {
	unsigned left;                   /* commits still running */
	int rc;                          /* the first failure, 0 if none */
	void (*done)(struct gw_commit_wait *w);
	void *ctx;
};
void gw_commit_wait_free(struct gw_commit_wait *w);

/**
 * @brief Fill @p w with up to w->max ready messages now (no waiting).
 * @return how many it got.
 */
uint32_t gw_group_fill(struct gw_group *g, struct gw_waiter *w);
/** @brief Park @p w until messages come (then w->filled runs) or gw_group_unpark. */
void gw_group_park(struct gw_group *g, struct gw_waiter *w);
void gw_group_unpark(struct gw_waiter *w);
/** @brief The reply was written: the hand-outs are final. Frees the waiter's buffers. */
void gw_waiter_done(struct gw_waiter *w);
/** @brief The reply will never be written: hand the messages back (their delivery not counted). */
void gw_waiter_release(struct gw_waiter *w);

/**
 * @brief POST .../ack {"receipts":[...]}.
 * @param[out] out the reply's members ("acked":N,"errors":[...], no braces).
 * @param[out] status 200, or the first refusal's when every receipt was refused.
 * @param[out] wait NULL, or (owned by the caller once done ran: gw_commit_wait_free) what to
 *        wait for before answering: the stored offsets moved and the commits are running.
 */
int gw_group_ack(struct gw_group *g, const char *body, size_t len, struct gw_buf *out,
		 unsigned *status, struct gw_error *e, struct gw_commit_wait **wait);
/** @brief POST .../nack {"receipts":[...],"delay_ms":N}. */
int gw_group_nack(struct gw_group *g, const char *body, size_t len, struct gw_buf *out,
		  unsigned *status, struct gw_error *e);
/** @brief GET .../offsets?topic=T. @p g NULL: @p name is no pull group, only stored offsets
 *  (those SSE and WebSocket streams store for a group name, progress.h). */
int gw_group_offset_get(struct gw *gw, const char *name, struct gw_group *g, const char *topic,
			struct gw_buf *out, struct gw_error *e);
/** @brief PUT .../offsets?topic=T {"offset":N} or {"from":"first"|"tail"}; @p g as above.
 *  @param[out] wait as for gw_group_ack (set for a pull group: its commit is ordered with acks). */
int gw_group_offset_put(struct gw *gw, const char *name, struct gw_group *g, const char *topic,
			const char *body, size_t len, struct gw_buf *out, struct gw_error *e,
			struct gw_commit_wait **wait);

/* Internal, shared by groups.c and consume.c. @p create of gw_gtopic_get: 0 look up, 1 make it
 * (the engine said the topic has news: marked at once), 2 make it lazily (from a topic scan:
 * marked once a wanted message is seen, before the topic is queued). */
struct gw_gtopic *gw_gtopic_get(struct gw_group *g, const char *topic, int create);
void gw_gtopic_drop(struct gw_gtopic *gt);
void gw_group_serve(struct gw_group *g);
void gw_group_recheck(struct gw_group *g);
void gw_group_free_state(struct gw_group *g);
int gw_group_wants_topic(const struct gw_group *g, const char *topic);
void gw_consume_init(struct gw *gw);
void gw_consume_free(struct gw *gw);

/* ---- Delivery counts (dcounts.c; consume.c calls these) ---------------------------------------- */
/** @brief Startup, before any topic state exists: fold the journal into per-topic records and
 *  delete it (one unsynced write). Failures are logged: counts may then restart lower. */
void gw_journal_fold(struct gw *gw);
/** @brief @p e was just handed out (delivery counted): its count goes into the pop's record. */
void gw_journal_note(struct gw_gtopic *gt, struct gw_entry *e);
/** @brief End of a fill: write the pop's record, if it handed anything out, with the deletes due,
 *  in one unsynced write. */
void gw_journal_write(struct gw *gw);
/** @brief Write the deletes due even without a record (housekeeping, shutdown). */
void gw_journal_flush(struct gw *gw);
/** @brief @p e (acknowledged) leaves the window: its record is released once the position is
 *  stored past it (gw_journal_stored). */
void gw_journal_settled(struct gw_gtopic *gt, struct gw_entry *e);
/** @brief @p e leaves the window for good (its position was reset): release its record now. */
void gw_journal_forget(struct gw_gtopic *gt, struct gw_entry *e);
/** @brief The position @p stored is durable: release the records of entries below it. */
void gw_journal_stored(struct gw_gtopic *gt, uint64_t stored);
/** @brief The state of @p gt is being dropped: keep the counts of its messages in flight in its
 *  record (unless the group or topic is gone, or the engine closing), delete a record that holds
 *  none, release its journal records. */
void gw_dcounts_drop(struct gw_gtopic *gt);
/** @brief Read @p gt's "gdc/" record when its state is made (counts below @p stored are over). */
void gw_dcounts_load(struct gw_gtopic *gt, uint64_t stored);
/** @brief @p e is read again after a restart: continue its count. @return 1 if it had reached
 *  max_deliveries (it goes to the dead letters). */
int gw_dcounts_apply(struct gw_gtopic *gt, struct gw_entry *e);
/** @brief "gdc/<id>/<topic>" into @p key. */
void gw_dcounts_key(const struct gw_group *g, const char *topic, char *key, size_t sz);
void gw_dcounts_free(struct gw *gw);
/** @brief consume.c: read a decimal number of at most @p max digits at *@p p (moved past it), for
 *  the gateway's own records. @return its digits. */
size_t gw_read_decimal(const char **p, const char *end, size_t max, uint64_t *v);

#endif /* GW_GROUPS_H */
