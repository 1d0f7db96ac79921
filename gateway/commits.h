/*
 * commits.h - a small pool of threads that store consumer offsets (eng_offset_commit) and group
 * markers (eng_meta_put), so the service thread never waits on RocksDB's synced write (DESIGN.md
 * invariant 5).
 *
 * Offsets, and the gap records that go with them (META_PUT, META_DELETE), go to one serial thread,
 * in submission order: it stores every offset queued at its head with one eng_offset_commit_batch
 * (one synced write, however many topics and requests), so an ack of 32 topics costs one sync, and
 * while one batch syncs the next accumulates. One thread in order means a stored position never
 * moves back and a topic's gap record lands after its offset. Markers (META_ENSURE, one synced
 * eng_meta_put per topic the first time it is handed out) go to the other threads, by (group,
 * topic), where concurrent calls let RocksDB sync several at once.
 *
 * gw_commits_submit() and the done callbacks run on the service thread; the workers touch only
 * their items and the engine. Finished items come back through an ev_async.
 */
#ifndef GW_COMMITS_H
#define GW_COMMITS_H

#include <stdint.h>

#include <engine.h>

struct gw;

#define GW_COMMIT_GROUP_MAX 64 /* GW_GROUP_NAME_MAX */

enum {
	GW_COMMIT_META_ENSURE = 1, /* eng_meta_put(key, "1") unless key exists */
	GW_COMMIT_META_PUT,        /* eng_meta_put(key, val, len) */
	GW_COMMIT_META_DELETE,     /* eng_meta_delete(key) */
};

/* One offset to store (or, with meta, one host-metadata marker to make sure of). The caller owns
 * it; done() runs once, on the service thread. */
struct gw_commit {
	struct gw_commit *next;                /* the pool's queues */
	char group[GW_COMMIT_GROUP_MAX + 1];   /* group and topic also choose the worker */
	char topic[ENG_TOPIC_MAX + 1];
	uint64_t offset;
	int meta;                              /* 0: store offset; else a GW_COMMIT_META_* on key */
	char key[ENG_META_KEY_MAX + 1];
	char *val;                             /* GW_COMMIT_META_PUT: the value (the owner frees it) */
	size_t len;
	int rc;                                /* eng_offset_commit's result, for done() */
	void (*done)(struct gw_commit *c);
};

/** @brief Start @p threads workers on @p gw's loop. @return 0 or an errno. */
int gw_commits_start(struct gw *gw, unsigned threads);
/** @brief Queue @p c: offsets and gap records on the serial thread, markers on their (group, topic)'s. */
void gw_commits_submit(struct gw_commit *c);
/** @brief Store everything queued, run every done callback, join the workers. Idempotent. */
void gw_commits_stop(void);

#endif /* GW_COMMITS_H */
