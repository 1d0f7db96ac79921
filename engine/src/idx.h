/*
 * idx.h - the RocksDB index: consume queues, topic metadata, consumer offsets, the dispatch
 * checkpoint (layout in idx_keys.h). RocksDB's errptr never leaves idx.c: failures become codes.
 *
 * Threads: RocksDB is thread-safe; batches are built and written by the engine's writer thread
 * (and by recovery before it starts), reads come from any thread. Index writes skip the WAL:
 * the CommitLog is the WAL, and the checkpoint travels in the same batch as what it covers.
 */
#ifndef LITEGATE_IDX_H
#define LITEGATE_IDX_H
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef struct idx idx;
typedef struct idx_batch idx_batch;

typedef struct idx_entry {
	uint64_t pos;     /* log position of the record */
	uint32_t len;     /* record length */
	uint64_t time_ms; /* store time */
} idx_entry;

typedef struct idx_topic_meta {
	uint64_t id;
	uint64_t created_ms;
	uint64_t first_offset; /* first retained (moved by deletes of old data) */
	uint64_t create_pos;   /* log position of the topic's create record */
} idx_topic_meta;

/** @brief Open or create the index in @p dir. @param[out] fresh 1 if it did not exist. */
int idx_open(const char *dir, int *fresh, idx **out);
/** @brief Flush memtables (cq and topics before the checkpoint) and close. Accepts NULL. */
void idx_close(idx *ix);

/** @brief A write batch bound to @p ix's column families. */
idx_batch *idx_batch_new(idx *ix);
void idx_batch_free(idx_batch *b);
void idx_batch_clear(idx_batch *b);
/** @brief Put a run of @p n entries for offsets first.. of topic @p tid. */
void idx_batch_cq_run(idx_batch *b, uint64_t tid, uint64_t first, const idx_entry *e, size_t n);
/** @brief Delete topic @p tid's runs whose first offset is >= @p from (recovery re-writes them,
 *  so the last run always holds the topic's end). */
void idx_batch_cq_trim(idx_batch *b, uint64_t tid, uint64_t from);
void idx_batch_topic_put(idx_batch *b, const char *name, const idx_topic_meta *m);
/** @brief Remove a topic: its meta, id mapping, consume queue and consumer offsets. */
void idx_batch_topic_del(idx_batch *b, const char *name, uint64_t tid);
void idx_batch_checkpoint(idx_batch *b, uint64_t pos, uint64_t next_tid);
/** @brief Write the batch atomically, without the WAL. @return 0 or ENG_EFAILED. */
int idx_batch_write(idx *ix, idx_batch *b);

/** @brief The checkpoint; both 0 if never written. */
int idx_checkpoint_get(idx *ix, uint64_t *pos, uint64_t *next_tid);
/** @brief @return 0, ENG_ENOTFOUND, ENG_EFAILED. */
int idx_topic_get(idx *ix, const char *name, idx_topic_meta *m);
/** @brief Next offset and last store time of topic @p tid from its last run. 0/0 if none. */
int idx_cq_last(idx *ix, uint64_t tid, uint64_t *next_offset, uint64_t *last_time_ms);

/** @brief The first offset of topic @p tid's earliest run holding an entry stored at or after
 *  @p since_ms (UINT64_MAX if none): where a scan of recent messages starts. */
int idx_cq_since(idx *ix, uint64_t tid, uint64_t since_ms, uint64_t *from);

/** Visit every topic; return non-zero from @p fn to stop. */
typedef int (*idx_topic_fn)(void *ctx, const char *name, const idx_topic_meta *m);
int idx_topics_scan(idx *ix, idx_topic_fn fn, void *ctx);
/** Visit topics whose names start with @p prefix and sort after @p after, in name order. */
int idx_topics_scan_from(idx *ix, const char *prefix, const char *after, idx_topic_fn fn, void *ctx);
/** @brief Number of topics (an estimate from RocksDB is not good enough for tests: counts). */
uint64_t idx_topics_count(idx *ix);

/* A forward cursor over one topic's consume queue, yielding each offset once, in order. */
typedef struct idx_cursor idx_cursor;
int idx_cursor_open(idx *ix, uint64_t tid, uint64_t from, idx_cursor **out);
/** @return 1 and the entry of offset *off, 0 at the end (or a gap), or negative code. The first
 *  entry may be past @p from when the older ones are gone (its offset says where it is). */
int idx_cursor_next(idx_cursor *c, uint64_t *off, idx_entry *e);
/** @brief The entries of the run the last idx_cursor_next() yielded from, from that entry on (at
 *  most @p max), into @p out; *first = the offset of out[0]. @return how many (0 before a yield).
 *  Valid only right after a yield: the next call may leave the run. */
size_t idx_cursor_run_rest(const idx_cursor *c, uint64_t *first, idx_entry *out, size_t max);
void idx_cursor_close(idx_cursor *c);

/* Host metadata (engine.h eng_meta_*): column family "default", key 'm' | key, WAL and synced. */
int idx_meta_put(idx *ix, const char *key, const void *val, size_t len);
int idx_meta_delete(idx *ix, const char *key);
/** @brief Puts and deletes in one WriteBatch, WAL'd but not synced (eng_meta_write). */
int idx_meta_write(idx *ix, const eng_meta_op *ops, size_t n);
int idx_meta_get(idx *ix, const char *key, void **val, size_t *len);
typedef int (*idx_meta_fn)(void *ctx, const char *key, const void *val, size_t len);
int idx_meta_scan(idx *ix, const char *prefix, idx_meta_fn fn, void *ctx);

/** @brief Durable consumer offset put (as idx_offset_put_many). */
int idx_offset_put(idx *ix, const char *group, const char *topic, uint64_t off);
int idx_offset_get(idx *ix, const char *group, const char *topic, uint64_t *off);
/** @brief Several offset puts in one WriteBatch, durable on return: written with the WAL, then the
 *  WAL synced (not a sync=true write, which would hold every other writer for the sync). */
int idx_offset_put_many(idx *ix, const char *const *groups, const char *const *topics,
			const uint64_t *offs, size_t n);
int idx_offset_delete_group(idx *ix, const char *group);
#endif
