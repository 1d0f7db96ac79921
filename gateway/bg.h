/*
 * bg.h - one helper thread for the few engine calls that block (eng_topic_delete waits for the
 * writer and its sync; consumer groups' topic scans read RocksDB a page at a time, groups.h), so
 * the service thread never waits on disk (DESIGN.md invariant 5).
 *
 * gw_bg_submit() and the done callbacks run on the service thread; work callbacks run on the
 * helper thread and touch nothing but their job and the engine. Finished jobs come back through a
 * mutex-protected list and an ev_async, libev's thread-safe wake-up.
 */
#ifndef GW_BG_H
#define GW_BG_H

struct gw;

struct gw_job {
	void (*work)(struct gw_job *job); /* helper thread: the blocking call */
	void (*done)(struct gw_job *job); /* service thread: use the result; may free the job */
	struct gw_job *next;              /* queue link (owned by bg.c) */
};

/** @brief Start the helper thread. @return 0 or an errno. */
int gw_bg_start(struct gw *gw);
/** @brief Queue @p job; its done callback runs later on the service thread. */
void gw_bg_submit(struct gw_job *job);
/** @brief Finish queued work, run the remaining done callbacks, join the thread. Idempotent. */
void gw_bg_stop(void);

#endif /* GW_BG_H */
