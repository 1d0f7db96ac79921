/*
 * idx_keys.h - the RocksDB key layout of the index. Integers in keys are big-endian so that byte
 * order is numeric order (as Redis' streamEncodeID); values are little-endian fixed-width.
 *
 * Column family "cq" (consume queue): one entry per run of a topic's offsets: a block of up to
 *   64 entries, or fewer when a checkpoint or the topic's eviction writes its open block early. key = be64(topic id) | be64(first offset of the run)
 *   value = u32 count | count x { u64 log position, u32 record length, u64 store time ms }
 *   Runs of one topic are contiguous and ordered; after a crash, recovery may write a run that
 *   overlaps an older one, so readers take each offset once, in order.
 * Column family "topics": key = 't' | topic name  -> topic meta (u64 id, u64 created ms,
 *   u64 first retained offset, u64 log position of its create record)
 * Column family "offsets" (consumer offsets, written with the WAL and synced):
 *   key = topic name | 0x00 | group -> u64 next offset. Topic first, so deleting a topic deletes
 *   its offsets with one range delete.
 * Column family "default": key "checkpoint" -> u64 log position up to which every record is
 *   dispatched | u64 next topic id. Written in the same WriteBatch as the entries it covers.
 *   key = 'm' | host key -> host value (eng_meta_*), written with the WAL and synced.
 */
#ifndef LITEGATE_IDX_KEYS_H
#define LITEGATE_IDX_KEYS_H
#include <stdint.h>
#include <string.h>

#define IDX_CQ_KEY 16
#define IDX_ENTRY 20 /* bytes per consume-queue entry inside a run */

static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}
static inline uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}
static inline void idx_cq_key(uint8_t k[IDX_CQ_KEY], uint64_t tid, uint64_t off)
{
	be64_put(k, tid);
	be64_put(k + 8, off);
}
#endif
