/*
 * pull.h - the client of the gateway's pull API (issue 4: consumer groups, pop, ack, nack).
 *
 * Everything the worker knows about that API is in pull.c, written against the text because
 * the gateway does not serve it yet: when the real endpoints differ, this pair of files is what to
 * adjust. The rest of the worker sees only popped messages and receipts.
 *
 *   PUT  /v1/groups/{group}       {"parent","events","max_inflight_per_topic","invisible_ms",
 *                                  "max_deliveries"}
 *   POST /v1/groups/{group}/pop   {"max","wait_ms"} -> {"messages":[{"topic","offset","event",
 *                                  "data","receipt","delivery"}]}   (long poll)
 *   POST /v1/groups/{group}/ack   {"receipts":[...]}
 *   POST /v1/groups/{group}/nack  {"receipts":[...]}   (visible again at once)
 *
 * Threads: every call is a blocking HTTP request on the caller's own handles; any thread.
 */
#ifndef WK_PULL_H
#define WK_PULL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* What the worker's group subscribes to and how the gateway hands messages out. */
struct wk_group_def {
	const char *parent;              /* "chatbot" */
	const char *const *events;       /* {"prompt","cancel"} */
	size_t n_events;
	unsigned max_inflight_per_topic; /* 1: a session's prompts strictly one after another */
	unsigned invisible_ms;           /* redelivery after a worker vanished mid-turn */
	unsigned max_deliveries;         /* then the prompt goes to the dead-letter topic */
};

/* One popped message. */
struct wk_pull_msg {
	char *topic;       /* "<parent>/<id>"; owned */
	uint64_t offset;
	char *event;       /* owned */
	json_t *data;      /* owned reference; JSON null when absent */
	char *receipt;     /* owned; what ack/nack take */
	unsigned delivery; /* 1 the first time, more on redelivery */
	int bad;           /* the entry has a receipt but other members are malformed: ack it away */
};

/**
 * @brief Create or update the consumer group (PUT /v1/groups/{group}).
 * @return WK_OK, WK_ENOAPI (404/405: the gateway has no pull API), WK_ESTATUS, WK_ETRANSPORT,
 *         WK_ESTOPPED.
 */
int wk_pull_group_put(const char *gateway, const char *group, const struct wk_group_def *def,
		      struct wk_stop *stop);

/**
 * @brief Long-poll for up to @p max messages, waiting up to @p wait_ms when none is ready.
 * @param[out] out array of *n messages (owned: wk_pull_msgs_free), set only on WK_OK; an empty
 *        list (n == 0) when the wait ended with nothing.
 * @return WK_OK, WK_ENOAPI, WK_ESTATUS, WK_EPROTO, WK_ETRANSPORT, WK_ESTOPPED.
 */
int wk_pull_pop(const char *gateway, const char *group, unsigned max, unsigned wait_ms,
		struct wk_stop *stop, struct wk_pull_msg **out, size_t *n);

void wk_pull_msgs_free(struct wk_pull_msg *msgs, size_t n);

/** @brief Acknowledge messages by receipt. @return WK_OK, WK_ENOAPI, WK_ESTATUS, WK_ETRANSPORT. */
int wk_pull_ack(const char *gateway, const char *group, const char *const *receipts, size_t n,
		struct wk_stop *stop);

/** @brief Hand messages back for immediate redelivery. @return as wk_pull_ack. */
int wk_pull_nack(const char *gateway, const char *group, const char *const *receipts, size_t n,
		 struct wk_stop *stop);

/** @brief 1 if @p name can be a group name: [A-Za-z0-9_.:-]{1,64}, not starting with '.'. */
int wk_pull_group_name_ok(const char *name);

#endif /* WK_PULL_H */
