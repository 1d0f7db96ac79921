/*
 * commits.h - a small pool of threads that store consumer offsets (eng_offset_commit) and group
 * markers (eng_meta_put), so the service thread never waits on RocksDB's synced write (DESIGN.md
 * invariant 5).
 *
 * engine.h has one offset per call and each call syncs RocksDB's WAL (about 0.35 ms here). Several
 * threads calling at once let RocksDB write their records in one group and sync once, so the pool
 * stores several times more offsets per second than one thread could. Commits of one (group, topic)
 * always go to the same thread, in order, so a stored position never moves back.
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
/** @brief Queue @p c on its (group, topic)'s worker. */
void gw_commits_submit(struct gw_commit *c);
/** @brief Store everything queued, run every done callback, join the workers. Idempotent. */
void gw_commits_stop(void);

#endif /* GW_COMMITS_H */
