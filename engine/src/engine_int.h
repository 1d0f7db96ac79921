/*
 * engine_int.h - the engine's shared internals: the state of an open engine, the types its modules
 * pass around, and the functions they call across files. Never installed, never included outside
 * engine/src (the gateway sees only engine.h).
 *
 * Locks (never two at once, except q_mu alone in the writer's wait):
 *   q_mu  the append queue (host threads push, the writer takes everything at once)
 *   t_mu  the active-topic cache (the writer inserts and evicts; readers copy fields out)
 *   s_mu  subscriptions and the ready set (host threads and the writer)
 *   c_mu  finished requests waiting for eng_poll_completions()
 */
#ifndef LITEGATE_ENGINE_INT_H
#define LITEGATE_ENGINE_INT_H
#include "engine.h"

#include "cl.h"
#include "hmap.h"
#include "idx.h"
#include "names.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_MSG (1u << 20)
#define LIMIT_MAX_MSG (16u << 20)
#define DAY_MS (24ull * 3600 * 1000)
/* An open block goes to RocksDB when it holds this many entries, or when the sweep passes it: */
#define BLOCK_ENTRIES 64
/* once per cycle, which bounds how much of the log recovery re-dispatches after a crash. */
#define SWEEP_CYCLE_MS 5000
/* Entries a topic keeps of the run its readers last took from RocksDB (see topic.rrun). */
#define RRUN_MAX 64

typedef struct parent_def {
	char name[ENG_PARENT_MAX + 1];
	size_t len;
	uint32_t max_msg;
	uint64_t ttl_ms, max_retained;
	uint8_t priority;
	uint64_t dedup_window_ms;
	uint32_t dedup_max;
} parent_def;

/* A producer key remembered in a topic's dedup index (writer only). */
typedef struct dd_node {
	hnode hn;
	struct dd_node *next;   /* insertion order: the oldest is forgotten first */
	uint64_t offset;        /* the message's offset, or a request's first offset */
	uint32_t count;         /* messages of the request (request keys) */
	uint64_t time_ms;
	uint8_t is_req, len;
	char key[];
} dd_node;

/* An active lite topic. Only the writer creates, changes the write-side fields of, and frees
 * one; readers look it up under t_mu and copy what they need. */
typedef struct topic {
	hnode hn;                  /* keyed by name */
	uint64_t tid;
	uint64_t next;             /* next offset to assign (writer only) */
	uint64_t visible;          /* offsets below are durable and indexed (t_mu) */
	uint64_t first;            /* first retained offset from the metadata (t_mu) */
	uint64_t created_ms, last_write_ms; /* (t_mu) */
	uint64_t last_used_mono;   /* for eviction (writer) */
	const parent_def *parent;
	/* The open block: index entries of offsets blk_first.. that are in the log but not yet in
	 * RocksDB. The writer appends and flushes it (under t_mu, as readers copy from it). */
	uint64_t blk_first;
	idx_entry *blk;
	size_t blk_n, blk_cap;
	size_t blk_staged;         /* the first blk_staged entries are in the index batch being
				      written: they leave the block only once the write succeeded,
				      so a reader always finds them in one place or the other */
	/* The readers' part (t_mu; readers write it too): when a reader last looked the topic up
	 * (the sweep evicts a topic idle for writes and reads), and the entries of the consume-queue
	 * run a reader last took from RocksDB, from the offset it read on (rrun_first.., at most
	 * RRUN_MAX): the next read of the same offsets (a consumer reads one message, then the next)
	 * copies them from here instead of opening a RocksDB iterator. Offset -> entry never
	 * changes for a topic id, and the writer frees it with the topic, so it cannot go stale;
	 * entries whose segment retention deleted are refused by the read as the index's are. */
	uint64_t last_read_mono;
	idx_entry *rrun;
	uint64_t rrun_first;
	size_t rrun_n;
	/* Per-batch scratch (writer only). */
	struct topic *batch_next;
	int in_batch, fresh;
	uint64_t batch_first;      /* the batch's first new offset, and that message's priority */
	int batch_first_prio;      /* (0..9 or ENG_PRIORITY_NONE), for the ready set */
	/* The dedup index of producer keys, built from the log on the first keyed append. */
	int dd_loaded;
	hmap dd;
	dd_node *dd_head, *dd_tail;
	const char *events[8];     /* distinct event names appended in this batch */
	size_t n_events;           /* > 8 means "too many to list": match every filter */
	char name[];
} topic;

/* OP_REDECLARE: log a topic's create record again before retention deletes the segment that
 * holds it (expected = that segment's end), so the log alone can always name the topic. */
enum req_op { OP_APPEND, OP_REDECLARE, OP_DELETE, OP_EXPIRE, OP_BARRIER };

typedef struct msg_ref {
	uint32_t ev_off, ev_len, key_off, key_len, data_off;
	uint32_t len;
	uint32_t prio;      /* as the record stores it: CL_PRIO_NONE or priority + 1 */
	uint32_t reserved_; /* the per-message results (uint64_t) follow an array of these */
} msg_ref;
_Static_assert(sizeof(msg_ref) % 8 == 0, "msg_ref arrays must keep uint64_t alignment after them");

typedef struct req {
	struct req *next;
	enum req_op op;
	char topic[ENG_TOPIC_MAX + 1];
	const parent_def *parent;
	uint64_t expected;        /* ENG_NO_EXPECT, or for OP_EXPIRE the idle cut-off time */
	eng_append_fn done;
	void *ctx;
	eng_append_result res;
	size_t bytes;             /* counted against queue_max_bytes */
	/* Synchronous ops (delete, barrier) wait on the db's done_cv. */
	int waited, finished;
	size_t n;
	msg_ref *msgs;
	uint8_t *blob;
	char rkey[ENG_KEY_MAX + 1]; /* the request's key, "" if none */
	int keyed;                  /* any key at all: per-message results below are kept */
	uint64_t *offsets;          /* per message (when keyed) */
	uint8_t *dup;
} req;

typedef struct topic_subs {
	hnode hn;
	uint64_t *subs;
	size_t n, cap;
	char name[];
} topic_subs;

typedef struct parent_sub {
	struct parent_sub *next;
	uint64_t sub;
	char parent[ENG_PARENT_MAX + 1];
	size_t n_events;
	char (*events)[ENG_EVENT_MAX + 1];
} parent_sub;

typedef struct ready_node {
	hnode hn;                 /* keyed by (sub, topic) for deduplication */
	struct ready_node *next;  /* FIFO order */
	uint64_t sub, next_offset;
	uint64_t first_offset;    /* the first message that made it ready, and its priority */
	int first_priority;
	uint32_t flags;
	char topic[ENG_TOPIC_MAX + 1];
} ready_node;

typedef struct sub_topics {     /* per subscriber: the topics it names, for eng_unsub_all */
	hnode hn;
	uint64_t sub;
	char **names;
	size_t n, cap;
} sub_topics;

struct eng_db {
	eng_config cfg;
	char *dir;
	parent_def *parents;
	size_t n_parents;
	cl_log *log;
	idx *ix;
	int efd;

	pthread_mutex_t q_mu;
	pthread_cond_t q_cv;      /* the writer waits for work */
	pthread_cond_t done_cv;   /* synchronous requests wait for the writer */
	req *q_head, *q_tail;
	size_t q_bytes;
	int closing;
	int failed;               /* sticky: ENG_EFULL / ENG_EFAILED (read under q_mu or atomically) */
	pthread_t writer, maint;
	int maint_stop;
	pthread_mutex_t m_mu;
	pthread_cond_t m_cv;

	pthread_mutex_t t_mu;
	hmap topics;
	uint64_t next_tid;        /* writer only */
	uint64_t last_sync_mono, last_sweep_mono; /* writer only */
	int sweep_active;         /* the tc_sweep (see tc_sweep()), writer only */
	size_t sweep_nb, sweep_bucket;
	uint64_t sweep_start;
	idx_batch *batch;         /* writer only */
	topic **staged;           /* topics whose blocks are in the batch (writer only) */
	size_t n_staged, cap_staged;

	pthread_mutex_t s_mu;
	hmap tsubs;               /* topic name -> topic_subs */
	hmap subtopics;           /* sub id -> sub_topics */
	parent_sub *psubs;
	hmap ready_map;
	ready_node *ready_head, *ready_tail;
	size_t ready_n;

	pthread_mutex_t c_mu;
	req *c_head, *c_tail;

	char *reserve_path;       /* space held back for RocksDB when the disk fills (see below) */

	eng_stats st;             /* counters, updated with __atomic */
};

#define STAT_ADD(db, f, v) __atomic_add_fetch(&(db)->st.f, (v), __ATOMIC_RELAXED)


/* The entries of one topic from an offset on, in order: from the topic's open block in the cache
 * when the reader is within it, else from RocksDB until it reaches the block. */
typedef struct rd_src {
	eng_db *db;
	const char *name;
	uint64_t tid, want, limit;  /* next offset to yield; stop before limit (the visible end) */
	idx_cursor *c;              /* open only while reading behind the open block */
	uint64_t rrun_end;          /* offsets below were offered to the topic's rrun by this read */
	int cursor_done;
	uint64_t opened_at;         /* want + 1 when the cursor was last opened; 0 = never */
	int opens;                  /* cursors opened at that offset */
	int yielded;                /* the first entry may be past want (retention): see idx_cursor */
	idx_entry mem[64];          /* entries copied out of the open block */
	size_t mem_n, mem_i;
	uint64_t mem_first;
} rd_src;

typedef struct topic_view {
	uint64_t tid, first, next, created, last_write;
	const parent_def *parent;
} topic_view;

/* ---- Functions shared across the engine's files --------------------------------------------- */
/* engine.c */
const parent_def *db_find_parent(const eng_db *db, const char *name, size_t len);
/* Log through the host's callback, if any (the engine never prints). */
void db_log(eng_db *db, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint64_t db_mono_ms(void);
uint64_t db_now_ms(void);
int db_topic_parent(const eng_db *db, const char *name, size_t *len_out, const parent_def **p);
void db_wake_host(eng_db *db);

/* subs.c */
void subs_free_all(eng_db *db);
size_t subs_notify_topic(eng_db *db, const topic *t, uint64_t next, uint64_t first, int first_prio);

/* topics.c: the writer's view of topics (tc_load creates nothing; tc_create logs a create
 * record), open blocks (push/stage under t_mu), and the sweep after each commit. */
int tc_eq(const hnode *n, const void *key);
uint64_t tc_hash(const char *s);
void tc_blk_push(topic *t, uint64_t pos, uint32_t len, uint64_t time);
void tc_blk_stage(eng_db *db, topic *t);
/* After the index batch was written (@ok) or not: staged entries leave their blocks, or stay. */
void tc_blk_settle(eng_db *db, int ok);
int tc_create(eng_db *db, const char *name, const parent_def *p, uint64_t now, topic **out);
void tc_forget(eng_db *db, topic *t);
void tc_free(topic *t);
int tc_load(eng_db *db, const char *name, const parent_def *p, topic **out);
void tc_note_event(topic *t, const char *ev);
void tc_sweep(eng_db *db, uint64_t mono, int whole);

/* dedup.c */
void dd_add(topic *t, int is_req, const char *key, size_t len, uint64_t offset, uint32_t count,
	    uint64_t time_ms, uint64_t now);
dd_node *dd_find(topic *t, int is_req, const char *key, size_t len, uint64_t now);
int dd_load(eng_db *db, topic *t, uint64_t now);

/* writer.c */
int wr_enqueue(eng_db *db, req *r, int wait);
void *wr_main(void *arg);
void wr_reserve_take(eng_db *db);
int wr_sync_op(eng_db *db, enum req_op op, const char *topic_name, uint64_t arg);

/* read.c */
int rd_next(rd_src *s, uint64_t *off, idx_entry *e);
/* Done with @s: closes its cursor. */
void rd_end(rd_src *s);

/* retention.c */
void *ret_main(void *arg);

/* recovery.c */
int rec_recover(eng_db *db, const char *index_dir);

#endif
