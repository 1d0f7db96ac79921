/*
 * engine.h - litegate's embedded storage engine: the one header the gateway may include.
 *
 * One append-only CommitLog holds every message of every lite topic in arrival order; RocksDB holds
 * each topic's consume queue (topic, offset -> log position), topic metadata, consumer offsets and the
 * dispatch checkpoint. The log is the truth: the index is rebuilt from it after any crash.
 *
 * Threads. The engine owns one writer thread (group commit) and one maintenance thread (retention).
 * Every function here may be called from any host thread unless its note says otherwise; the gateway
 * calls them from its single service thread. Append completions are queued by the writer and run
 * inside eng_poll_completions(), on the thread that calls it: the host waits on eng_notify_fd() (or
 * on the wake callback) and then polls. Nothing in this API blocks on disk except eng_read(),
 * eng_topic_info(), the consumer offset calls and open/close, which touch the page cache or RocksDB's
 * block cache (reads of recent data; no fsync).
 *
 * Errors. Every fallible function returns int: 0 on success, a positive errno value, or a negative
 * ENG_E* code. eng_strerror() names both.
 *
 * Ownership. Out-parameters are set only on success. Pointers returned inside a result struct are
 * owned by that struct until its _free call. Input buffers are copied before a call returns.
 */
#ifndef LITEGATE_ENGINE_H
#define LITEGATE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Error codes (negative; positive values are errno) ---------------------------------------- */
#define ENG_OK 0
#define ENG_EBADNAME (-30900)     /* topic, parent or event name is not well formed */
#define ENG_ENOPARENT (-30901)    /* the topic's parent is not declared */
#define ENG_ETOOBIG (-30902)      /* message larger than its parent's max_message_bytes */
#define ENG_ENOTFOUND (-30903)    /* no such topic (or no stored offset) */
#define ENG_ECORRUPT (-30904)     /* a record failed its CRC or framing check where data must be */
#define ENG_EFULL (-30905)        /* no space left on the log's device (sticky, like ENG_EFAILED) */
#define ENG_EFAILED (-30906)      /* an earlier write or fsync failed; appends refused until reopen */
#define ENG_ECLOSING (-30907)     /* the engine is closing */
#define ENG_EMISMATCH (-30908)    /* expected_offset did not equal the topic's next offset */
#define ENG_EINVAL (-30909)       /* a bad argument (count 0, bad config value, ...) */
#define ENG_EBUSY (-30910)        /* the append queue is over its byte limit: retry later */

/** @brief A static message for a code (engine code or errno). Never NULL. */
const char *eng_strerror(int rc);

/* ---- Names -------------------------------------------------------------------------------------- */
#define ENG_PARENT_MAX 32  /* [a-z][a-z0-9_-]{0,31} */
#define ENG_ID_MAX 128     /* [A-Za-z0-9_.:-]{1,128}, not starting with '.' */
#define ENG_TOPIC_MAX (ENG_PARENT_MAX + 1 + ENG_ID_MAX)
#define ENG_EVENT_MAX 64   /* [A-Za-z0-9_.:-]{1,64} */
#define ENG_KEY_MAX 128    /* producer idempotency key: [A-Za-z0-9_.:-]{1,128} */

/** @brief 0 if @p topic is a well-formed "<parent>/<id>", else ENG_EBADNAME. Declared or not. */
int eng_topic_name_check(const char *topic, size_t len);
/** @brief 0 if @p event is a well-formed event name (1..64 of [A-Za-z0-9_.:-]), else ENG_EBADNAME. */
int eng_event_name_check(const char *event, size_t len);

/* ---- Configuration ------------------------------------------------------------------------------ */
enum eng_durability {
	ENG_DURABLE_FSYNC = 0, /* an append completes after its batch is fdatasync'ed (default) */
	ENG_DURABLE_INTERVAL,  /* fdatasync every interval_ms; an append completes after write() */
	ENG_DURABLE_NONE,      /* never fdatasync (the OS decides); completes after write() */
};

/** A declared parent: every lite topic "<name>/<id>" takes these limits. */
typedef struct eng_parent {
	const char *name;          /* [a-z][a-z0-9_-]{0,31}; copied at open */
	uint32_t max_message_bytes;/* payload limit; 0 = 1 MiB default; at most 16 MiB */
	uint64_t idle_ttl_ms;      /* expire a topic this long after its last write; 0 = 24 h default */
	uint64_t max_retained;     /* keep at most this many messages per topic; 0 = unlimited */
	uint8_t priority;          /* 0..9, used by consumers that schedule by priority */
	uint64_t dedup_window_ms;  /* remember producer keys this long; 0 = 10 min default */
	uint32_t dedup_max_keys;   /* and at most this many per topic (oldest forgotten first);
				      0 = 100,000 default */
} eng_parent;

/** Host log sink: the engine never prints. level: 0 error, 1 warning, 2 info, 3 debug. */
typedef void (*eng_log_fn)(void *ctx, int level, const char *msg);
/** Called by the writer thread every time it queued completions or ready topics, right after it
 *  made eng_notify_fd() readable (both, always: a host uses whichever suits its loop). Must be
 *  thread-safe and quick (lws_cancel_service, for example). */
typedef void (*eng_wake_fn)(void *ctx);

typedef struct eng_config {
	const char *dir;               /* data directory; created if missing. Holds log/ and index/ */
	enum eng_durability durability;
	uint32_t interval_ms;          /* for ENG_DURABLE_INTERVAL; 0 = 10 ms */
	uint64_t segment_bytes;        /* log segment size; 0 = 1 GiB */
	uint64_t retention_ms;         /* delete segments whose records are all older; 0 = 72 h */
	uint64_t log_max_bytes;        /* delete oldest segments while the log is larger; 0 = no cap */
	uint64_t maintenance_ms;       /* how often retention runs; 0 = 60 s */
	uint64_t queue_max_bytes;      /* pending append bytes before ENG_EBUSY; 0 = 256 MiB */
	uint32_t ready_max;            /* ready-set capacity in (subscriber, topic) pairs; 0 = 65536 */
	uint32_t topic_cache_idle_ms;  /* evict a topic's in-memory state once neither written nor read
					  for this long; 0 = 10 s */
	const eng_parent *parents;     /* declared parents, copied at open */
	size_t n_parents;
	eng_log_fn log;                /* optional */
	eng_wake_fn wake;              /* optional */
	void *cb_ctx;                  /* passed to log and wake */
	/* Test seam: when non-zero, the log's file I/O goes through a fault-injecting layer: it
	 * fails the Nth write (fail_write_after) or fsync (fail_fsync_after) with fail_errno. */
	uint64_t fail_write_after, fail_fsync_after;
	int fail_errno;
} eng_config;

/** @brief A config with every field at its default (dir NULL, no parents). */
void eng_config_init(eng_config *cfg);

/* ---- Open and close ----------------------------------------------------------------------------- */
typedef struct eng_db eng_db;

/**
 * @brief Open (or create) the engine in cfg->dir: scan the log after the index checkpoint, keep
 *        every whole record up to the first one that fails its checks and truncate from there (a
 *        torn tail; see docs/storage.md, "Recovery", for why damage after the checkpoint is
 *        treated as one), re-dispatch what was kept (all of the log if the index directory is
 *        gone), then start the writer and maintenance threads. Damage before the checkpoint is
 *        not looked for here: eng_read reports it as ENG_ECORRUPT and never returns the bytes.
 * @param[in] cfg copied; need not outlive the call.
 * @param[out] out the engine, set only on success.
 * @return 0, ENG_EINVAL for a bad config, ENG_ECORRUPT for an unreadable index entry, errno.
 */
int eng_open(const eng_config *cfg, eng_db **out);

/**
 * @brief Stop accepting appends, finish every queued one (their completions are delivered inside
 *        this call, on the caller's thread), fsync, close. Accepts NULL.
 */
void eng_close(eng_db *db);

/* ---- Appending ---------------------------------------------------------------------------------- */
#define ENG_PRIORITY_NONE (-1) /* a message published without a priority */
#define ENG_PRIORITY_MAX 9
typedef struct eng_msg_in {
	const char *event; /* NULL = "message" */
	const void *data;  /* payload bytes (the gateway stores compact JSON) */
	size_t len;
	const char *key;   /* optional producer idempotency key, stored in the record; NULL = none */
	int has_priority;  /* 1: the message carries @ref priority; 0 (a zeroed struct): none */
	uint8_t priority;  /* 0..9 (9 most urgent), stored in the record; above 9 is ENG_EINVAL */
} eng_msg_in;

/** Result of an append, passed to its completion. Offsets are valid when rc == 0. */
typedef struct eng_append_result {
	int rc;                /* 0, ENG_EMISMATCH, ENG_EFULL, ENG_EFAILED, ENG_ECLOSING, errno */
	uint64_t first_offset; /* offset of the first message (of the first request, if a duplicate) */
	uint32_t count;        /* messages of this request now stored (appended or found) */
	uint64_t next_offset;  /* the topic's next offset after this append (or at the mismatch) */
	int duplicate;         /* 1: nothing appended, every message was stored before (the request
				  key, or every message key, was seen within the dedup window) */
	uint32_t n_dups;       /* messages found by their key instead of appended */
	/* When the request carried any key: per input message, its offset and whether it was a
	 * duplicate. Borrowed: valid only during the completion callback. NULL otherwise. */
	const uint64_t *offsets;
	const uint8_t *dup;
} eng_append_result;

typedef void (*eng_append_fn)(void *ctx, const eng_append_result *res);

#define ENG_NO_EXPECT UINT64_MAX

/**
 * @brief Queue an atomic append of @p n messages to @p topic, in order, with contiguous offsets.
 *        Returns at once: the write happens on the writer thread. @p done runs later inside
 *        eng_poll_completions() once the messages are durable under the configured policy (and
 *        visible to readers), or with an error.
 * @param[in] expected_offset ENG_NO_EXPECT, or append only if the topic's next offset equals it
 *        (0 = the topic must not exist yet); otherwise done gets ENG_EMISMATCH and nothing is written.
 * @return 0 (done will run exactly once), or ENG_EBADNAME, ENG_ENOPARENT, ENG_ETOOBIG, ENG_EINVAL
 *         (also a priority above ENG_PRIORITY_MAX),
 *         ENG_EFULL/ENG_EFAILED (sticky), ENG_ECLOSING, ENG_EBUSY - then done never runs.
 * @note Messages and names are copied before return.
 */
int eng_append(eng_db *db, const char *topic, const eng_msg_in *msgs, size_t n,
	       uint64_t expected_offset, eng_append_fn done, void *ctx);

/** Options of eng_append_ex(). Zero-initialise, then set what is needed. */
typedef struct eng_append_opts {
	int has_expected;          /* apply expected_offset (see eng_append) */
	uint64_t expected_offset;
	const char *request_key;   /* the producer's key of the whole request (Idempotency-Key):
				      if seen in this topic within the dedup window, nothing is
				      appended and the result repeats the first request's offsets */
} eng_append_opts;

/**
 * @brief eng_append with options. Keys are checked before the expected offset: a retried request
 *        whose first attempt was appended is answered as a duplicate, not as a mismatch. Message
 *        keys (eng_msg_in.key) are deduplicated one by one: the new messages of a batch are
 *        appended contiguously, the others reported with their earlier offsets.
 * @return as eng_append; ENG_EBADNAME also for a malformed request key.
 */
int eng_append_ex(eng_db *db, const char *topic, const eng_msg_in *msgs, size_t n,
		  const eng_append_opts *opts, eng_append_fn done, void *ctx);

/** @brief An fd (eventfd) that becomes readable when completions or ready topics wait. */
int eng_notify_fd(const eng_db *db);

/**
 * @brief Run every queued append completion on the calling thread, and clear the notify fd.
 * @return the number of completions run.
 */
size_t eng_poll_completions(eng_db *db);

/* ---- Reading ------------------------------------------------------------------------------------ */
typedef struct eng_msg_view {
	uint64_t offset;
	uint64_t time_ms;     /* store time, ms since the epoch */
	const char *event;    /* NUL-terminated */
	const char *key;      /* NUL-terminated; "" when the message had none */
	const void *data;
	uint32_t len;
	int priority;         /* 0..9 as published, or ENG_PRIORITY_NONE (-1) when it had none */
} eng_msg_view;

typedef struct eng_read_result {
	eng_msg_view *msgs;     /* in offset order, dense from the first returned offset */
	size_t n;
	uint64_t first_offset;  /* the topic's first retained offset */
	uint64_t next_offset;   /* the topic's next offset (end of visible data) */
	uint64_t next;          /* where the next read should start: after the last returned; with
				   none returned, max(from, first_offset) (the next message to come,
				   when from is at or past the end) */
	int below_retained;     /* 1 if the requested offset was below first_offset (reading started
				   at first_offset instead) */
	void *_buf;             /* owns msgs and their bytes */
} eng_read_result;

/**
 * @brief Read up to @p max_count messages (and about @p max_bytes of payload, at least one message)
 *        of @p topic from @p from, in offset order, only what is visible (durable).
 * @param[out] out filled on success; release with eng_read_free(). Reading at or past the end
 *        returns n == 0 with next_offset.
 * @return 0, ENG_ENOTFOUND (no such topic), ENG_EBADNAME, ENG_ECORRUPT, errno.
 */
int eng_read(eng_db *db, const char *topic, uint64_t from, size_t max_count, size_t max_bytes,
	     eng_read_result *out);
/** @brief Release a read result. Accepts a zeroed struct. */
void eng_read_free(eng_read_result *res);

typedef struct eng_topic_info {
	uint64_t first_offset;   /* first retained */
	uint64_t next_offset;    /* next to be assigned */
	uint64_t created_ms;
	uint64_t last_write_ms;
	uint8_t priority;        /* the parent's */
} eng_topic_info;

/** @brief A topic's metadata. @return 0, ENG_ENOTFOUND, ENG_EBADNAME, errno. */
int eng_topic_info_get(eng_db *db, const char *topic, eng_topic_info *out);

/** Called by eng_topic_scan for each topic; return non-zero to stop (eng_topic_scan returns it). */
typedef int (*eng_topic_fn)(void *ctx, const char *topic, uint64_t created_ms);

/**
 * @brief Visit, in name order, up to @p max lite topics of @p parent whose names sort after
 *        @p after ("" or NULL = from the first). Page through millions by passing the last name
 *        seen. Reads RocksDB (the block cache): call it in pages, not for every topic at once, from
 *        a thread that may wait that long.
 * @return 0 (or the callback's non-zero), ENG_EBADNAME, ENG_ENOPARENT, errno.
 */
int eng_topic_scan(eng_db *db, const char *parent, const char *after, size_t max, eng_topic_fn fn,
		   void *ctx);

/**
 * @brief Delete a lite topic: its messages become unreadable, its metadata and consumer offsets go.
 *        Goes through the writer (a tombstone record is logged, so a rebuild does not resurrect it).
 *        Blocks the caller until done (rare, administrative).
 * @return 0, ENG_ENOTFOUND, ENG_EBADNAME, errno.
 */
int eng_topic_delete(eng_db *db, const char *topic);

/* ---- Subscription set and ready set ------------------------------------------------------------- */
/**
 * Hosts register interest and are told, without polling, which (subscriber, topic) pairs have new
 * visible messages. Subscriber ids are the host's (e.g. a connection number); 0 is reserved.
 * The ready set is deduplicated: a subscriber with unread news in a topic appears once however many
 * messages landed. It is bounded (ready_max); when full, the subscriber is flagged ENG_READY_OVERFLOW
 * and should re-check all its topics.
 */
#define ENG_READY_OVERFLOW 1u

typedef struct eng_ready {
	uint64_t sub;                 /* subscriber id */
	uint32_t flags;               /* ENG_READY_OVERFLOW: topic is empty, re-check everything */
	uint64_t next_offset;         /* the topic's next offset at notification time */
	uint64_t first_offset;        /* the first message appended since the entry was queued (equal
					 to next_offset when none was: a deletion), and its priority
					 (0..9, ENG_PRIORITY_NONE): lets a scheduler order topics
					 without reading them */
	int first_priority;
	char topic[ENG_TOPIC_MAX + 1];
} eng_ready;

/** @brief Subscribe @p sub to one lite topic (it need not exist yet). @return 0, ENG_EBADNAME, ENG_ENOPARENT. */
int eng_sub_topic(eng_db *db, uint64_t sub, const char *topic);
/**
 * @brief Subscribe @p sub to every lite topic of @p parent, only to messages whose event is one of
 *        @p events (n_events 0 = all events). @return 0, ENG_EBADNAME, ENG_ENOPARENT.
 */
int eng_sub_parent(eng_db *db, uint64_t sub, const char *parent, const char *const *events,
		   size_t n_events);
/** @brief Remove one subscription of @p sub (a topic or a parent name). @return 0, ENG_ENOTFOUND. */
int eng_unsub(eng_db *db, uint64_t sub, const char *topic_or_parent);
/** @brief Remove every subscription of @p sub and its pending ready entries. */
void eng_unsub_all(eng_db *db, uint64_t sub);
/**
 * @brief Take up to @p max ready entries, oldest first.
 * @return how many were written to @p out.
 */
size_t eng_ready_take(eng_db *db, eng_ready *out, size_t max);

/* ---- Consumer offsets --------------------------------------------------------------------------- */
/** @brief Durably store @p group's position in @p topic (the next offset it will consume). */
int eng_offset_commit(eng_db *db, const char *group, const char *topic, uint64_t offset);
typedef struct eng_offset_entry {
	const char *group;
	const char *topic;
	uint64_t offset;
} eng_offset_entry;

/**
 * @brief Store several positions atomically with one synced write (a pop-and-ack batch across many
 *        topics costs one fsync, not one per topic). Blocks the caller until durable. Atomic for
 *        a crash (all or none); a reader on another thread may see some positions a moment
 *        before the others (the index's unordered writes, docs/storage.md).
 * @return 0, or the first entry's error (ENG_EBADNAME, ENG_ENOPARENT) with nothing stored, errno.
 */
int eng_offset_commit_batch(eng_db *db, const eng_offset_entry *entries, size_t n);

/** @brief Read @p group's stored position in @p topic. @return 0, ENG_ENOTFOUND, errno. */
int eng_offset_get(eng_db *db, const char *group, const char *topic, uint64_t *out);
/** @brief Forget every stored offset of @p group. */
int eng_offset_delete_group(eng_db *db, const char *group);

/* ---- Host metadata ------------------------------------------------------------------------------ */
/**
 * Small durable records of the host's own (consumer group definitions, for example), kept in the
 * index with RocksDB's WAL and synced. Not for messages: a few KiB each, a few thousand in all.
 */
#define ENG_META_KEY_MAX 256

/** @brief Store @p len bytes under @p key (1..256 bytes, NUL-terminated). Durable on return. */
int eng_meta_put(eng_db *db, const char *key, const void *val, size_t len);
/** @brief Remove @p key (absent is fine). Durable on return. */
int eng_meta_delete(eng_db *db, const char *key);
/** One change of eng_meta_write: put @p len bytes of @p val under @p key, or delete @p key (val NULL). */
typedef struct eng_meta_op {
	const char *key;
	const void *val;
	size_t len;
} eng_meta_op;

/**
 * @brief Apply @p n puts and deletes atomically in one write that is logged (RocksDB's WAL) but not
 *        synced: cheap enough for a hot path (no fsync), it survives a crash of the process
 *        (SIGKILL) but may be lost with the machine (power loss, kernel crash) unless a later synced
 *        write (eng_meta_put/delete, an offset commit) went out after it. For records that may
 *        trail by a moment, such as a consumer's delivery counts. Atomic for a crash; a reader
 *        on another thread may see part of it while it is applied.
 * @return 0, ENG_EINVAL for a bad key (nothing applied), errno.
 */
int eng_meta_write(eng_db *db, const eng_meta_op *ops, size_t n);
/**
 * @brief Read @p key. @param[out] val owned by the caller, release with free(); @param[out] len.
 * @return 0, ENG_ENOTFOUND, errno.
 */
int eng_meta_get(eng_db *db, const char *key, void **val, size_t *len);
/** Called for each record of a scan; return non-zero to stop (eng_meta_scan returns it). */
typedef int (*eng_meta_fn)(void *ctx, const char *key, const void *val, size_t len);
/** @brief Visit every record whose key starts with @p prefix, in key order. */
int eng_meta_scan(eng_db *db, const char *prefix, eng_meta_fn fn, void *ctx);

/* ---- Introspection ------------------------------------------------------------------------------ */
typedef struct eng_stats {
	uint64_t appended_msgs;     /* since open */
	uint64_t appended_bytes;    /* record bytes, since open */
	uint64_t batches;           /* group commits since open */
	uint64_t fsyncs;
	uint64_t log_bytes;         /* bytes in retained segments */
	uint64_t segments;
	uint64_t topics;            /* lite topics that exist */
	uint64_t cached_topics;     /* lite topics with in-memory state now */
	uint64_t index_seeks;       /* RocksDB iterators opened by reads (behind a topic's open block
				       and outside the run its readers last read), since open */
	uint64_t log_reads;         /* preads of the log by reads (records adjacent in the log are
				       read with one), since open */
	uint64_t log_records_read;  /* records those preads read, since open */
	uint64_t expired_topics;    /* since open */
	uint64_t duplicates;        /* messages not appended because their key was seen, since open */
	uint64_t recovered_bytes;   /* re-dispatched at open */
	uint64_t recovery_us;       /* time spent re-dispatching at open */
	int failed;                 /* 0, or the sticky error refusing appends */
} eng_stats;

/** @brief A snapshot of counters. */
void eng_stats_get(eng_db *db, eng_stats *out);

/** @brief Run retention now (topic expiry and segment deletion) with @p now_ms as the clock.
 *  Normally the maintenance thread does this; tests call it to control time. */
int eng_maintain(eng_db *db, uint64_t now_ms);

#ifdef __cplusplus
}
#endif
#endif /* LITEGATE_ENGINE_H */
