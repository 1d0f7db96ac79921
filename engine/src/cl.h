/*
 * cl.h - the CommitLog: segmented, append-only files holding every record of every topic.
 *
 * A log position is a 64-bit byte address across all segments; a segment file is named by the
 * position of its first byte (20 decimal digits) so segments can be found, ordered and deleted
 * without an index. A record never spans two segments.
 *
 * Record layout (little-endian, 48-byte header, no padding):
 *   0 u32 magic 'LGR1'      4 u32 total length     8 u32 CRC32C of bytes [12, total)
 *  12 u16 flags (type | CL_F_MORE)  14 u8 event length  15 u8 message key length
 *  16 u64 topic id         24 u64 offset in topic  32 u64 store time (ms)  40 u32 payload length
 *  44 u8 request key length  45 u8 message priority (0 = none, else priority + 1: 1..10)
 *  46-47 reserved (0)
 *  48 event bytes, message key bytes, request key bytes, payload bytes
 * A message key is the producer's id of one message; a request key (on the first record of an
 * atomic append only) is the id of the whole request. Both feed the dedup index.
 * Byte 45 was reserved (0) before priorities existed, so older logs read as "no priority"; a value
 * above 10 (or non-zero reserved bytes) is refused as corruption, as any other impossible field.
 *
 * Threads: one writer (cl_add/cl_flush/cl_sync/roll) and any number of readers (cl_read), plus the
 * maintenance thread (cl_delete_head). Segment list changes take the rwlock; readers hold it shared.
 * The write side is the writer thread's alone. Errors are sticky: after a failed write or sync,
 * every cl_add/cl_flush/cl_sync returns the same error until the log is reopened.
 */
#ifndef LITEGATE_CL_H
#define LITEGATE_CL_H

#include <stddef.h>
#include <stdint.h>

#define CL_MAGIC 0x3152474Cu /* "LGR1" read as little-endian */
#define CL_HDR 48u
#define CL_PRIO_NONE 0u      /* byte 45: no priority set */
#define CL_PRIO_STORED_MAX 10u /* byte 45 of priority 9 (stored = priority + 1) */

enum cl_rec_type {
	CL_REC_MSG = 0,          /* a message of a topic */
	CL_REC_TOPIC_CREATE = 1, /* payload = topic name; topic id = the new id */
	CL_REC_TOPIC_DELETE = 2, /* payload = topic name; topic id = the deleted id */
};
#define CL_TYPE_MASK 0x000f
#define CL_F_MORE 0x0010 /* another record of the same atomic append follows */

/** A decoded record; pointers borrow the buffer that was decoded. */
typedef struct cl_rec {
	uint32_t total;
	uint16_t flags;
	uint64_t topic_id, offset, time_ms;
	const char *event;
	uint8_t event_len;
	const char *key;
	uint8_t key_len;
	const char *rkey;
	uint8_t rkey_len;
	const uint8_t *payload;
	uint32_t payload_len;
	uint8_t prio;            /* as stored: CL_PRIO_NONE, or priority + 1 */
} cl_rec;

/** Fault injection for tests (see eng_config). Zero = off. */
typedef struct cl_faults {
	uint64_t fail_write_after, fail_fsync_after; /* fail the Nth write()/fdatasync() (1-based) */
	int fail_errno;
} cl_faults;

typedef struct cl_log cl_log;

/** @brief Record size for the given lengths (key = both keys' lengths together). */
static inline uint32_t cl_rec_size(size_t ev, size_t key, size_t payload)
{
	return (uint32_t)(CL_HDR + ev + key + payload);
}

/**
 * @brief Decode the record at @p buf (of @p avail bytes).
 * @return 0 and *out; 1 if the record is incomplete (avail too small: a torn tail); ENG_ECORRUPT
 *         if magic, length or CRC are wrong.
 */
int cl_decode(const uint8_t *buf, size_t avail, cl_rec *out);

/** @brief Encode a record into @p dst (cl_rec_size bytes), without a request key. */
void cl_encode(uint8_t *dst, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
	       const char *ev, size_t ev_len, const char *key, size_t key_len, const void *payload,
	       size_t payload_len);
/** @brief The same with a request key (@p rkey_len 0..255) and a stored priority @p prio
 *  (CL_PRIO_NONE or 1..CL_PRIO_STORED_MAX). */
void cl_encode_rk(uint8_t *dst, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
		  const char *ev, size_t ev_len, const char *key, size_t key_len, const char *rkey,
		  size_t rkey_len, uint8_t prio, const void *payload, size_t payload_len);

/** @brief Open or create the log in @p dir (created if missing). */
int cl_open(const char *dir, uint64_t segment_bytes, const cl_faults *faults, cl_log **out);
/** @brief Flush, sync and close. Accepts NULL. */
void cl_close(cl_log *log);

/** Called by cl_scan for each whole record; return non-zero to stop with that code. */
typedef int (*cl_scan_fn)(void *ctx, uint64_t pos, const cl_rec *rec);
/**
 * @brief Recovery: read every record from @p from to the end, in order, calling @p fn. A torn or
 *        corrupt tail of the last segment is truncated (as is a trailing atomic append that lacks
 *        its last record); the write position is set after the last whole record.
 *        Call once, after cl_open and before any cl_add.
 * @param[out] truncated bytes cut from the tail (may be NULL).
 */
int cl_scan(cl_log *log, uint64_t from, cl_scan_fn fn, void *ctx, uint64_t *truncated);

/**
 * @brief Add a record to the pending write buffer, rolling to a new segment first if it would
 *        not fit in the current one. @param[out] pos its log position. Writer thread only.
 */
int cl_add(cl_log *log, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
	   const char *ev, size_t ev_len, const char *key, size_t key_len, const void *payload,
	   size_t payload_len, uint64_t *pos);
/** @brief cl_add with a request key and a stored priority (as cl_encode_rk). */
int cl_add_rk(cl_log *log, uint16_t flags, uint64_t topic_id, uint64_t offset, uint64_t time_ms,
	      const char *ev, size_t ev_len, const char *key, size_t key_len, const char *rkey,
	      size_t rkey_len, uint8_t prio, const void *payload, size_t payload_len, uint64_t *pos);
/**
 * @brief Roll to a new segment now if @p bytes more would not fit in the current one, so the
 *        records of one atomic append land in one segment (unless they are larger than a segment).
 */
int cl_reserve(cl_log *log, uint64_t bytes);
/** @brief write() the pending buffer. After it, records are readable by cl_read. */
int cl_flush(cl_log *log);
/** @brief fdatasync the current segment (and any rolled since the last sync). */
int cl_sync(cl_log *log);
/** @brief The sticky error, or 0. */
int cl_failed(const cl_log *log);

/** @brief Read @p len bytes at @p pos (one segment) into @p buf. Any thread. */
int cl_read(cl_log *log, uint64_t pos, size_t len, void *buf);

/** @brief Position of the first retained byte, and the end of written data. Any thread. */
uint64_t cl_start(cl_log *log);
uint64_t cl_end(cl_log *log);
/** @brief Total bytes and number of segments. Any thread. */
void cl_size(cl_log *log, uint64_t *bytes, uint64_t *segments);

/**
 * @brief Delete whole segments, oldest first, while (all their records are older than
 *        @p older_than_ms by file mtime) or (the log is larger than @p max_bytes, 0 = no cap),
 *        and the segment ends at or below @p limit. The segment being written is never deleted.
 *        With @p dry_run, delete nothing and only say where the log would then start.
 * @param[out] new_start the first kept position.
 * @return number of segments deleted (or that would be), or negative code.
 */
int cl_delete_head(cl_log *log, uint64_t older_than_ms, uint64_t max_bytes, uint64_t limit,
		   int dry_run, uint64_t *new_start);

/**
 * @brief Test seam for power-loss tests: truncate every segment to what the last completed
 *        fdatasync covered, as a power loss would, then close without syncing. Frees @p log.
 */
void cl_crash_drop_unsynced(cl_log *log);

#endif
