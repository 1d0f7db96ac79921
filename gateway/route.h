/*
 * route.h - the HTTP API's URL space as a pure parser: path -> route, query string -> parameters,
 * plus the name rules for parents, ids and events.
 *
 * Pure code over (buf, len), no lws, so a libFuzzer target can call it. The service thread calls it
 * once per request with the path and query that lws has already percent-decoded.
 */
#ifndef GW_ROUTE_H
#define GW_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include <engine.h>

enum gw_route_kind {
	GW_R_NOTFOUND = 0,
	GW_R_TOPIC,    /* /v1/topics/{parent}/{id}            GET, DELETE */
	GW_R_MESSAGES, /* /v1/topics/{parent}/{id}/messages   GET (history), POST (publish) */
	GW_R_EVENTS,   /* /v1/topics/{parent}/{id}/events     GET (SSE) */
	GW_R_WS,       /* /v1/ws                              GET with Upgrade: websocket */
	GW_R_HEALTHZ,  /* /healthz                            GET */
	GW_R_METRICS,  /* /metrics                            GET */
};

enum gw_method {
	GW_M_GET = 1 << 0,
	GW_M_POST = 1 << 1,
	GW_M_DELETE = 1 << 2,
	GW_M_OPTIONS = 1 << 3,
	GW_M_HEAD = 1 << 4,
	GW_M_PUT = 1 << 5,
	GW_M_PATCH = 1 << 6,
};

/* The parent every /v1/sessions/{id} path names. */
#define GW_SESSION_PARENT "chatbot"

struct gw_route {
	enum gw_route_kind kind;
	char topic[ENG_TOPIC_MAX + 1]; /* "<parent>/<id>", NUL-terminated, for topic routes */
	size_t parent_len;             /* bytes of the parent in topic */
	const char *bad;               /* non-NULL: the path has the right shape but a name is malformed */
};

/**
 * @brief Map a decoded path (no query) to a route.
 * @return the kind (also in out->kind); GW_R_NOTFOUND for any path outside the API.
 */
enum gw_route_kind gw_route_parse(const char *path, size_t len, struct gw_route *out);

/** @brief Methods a route accepts, as a GW_M_* mask (OPTIONS is always accepted, for CORS). */
unsigned gw_route_methods(enum gw_route_kind kind);
/** @brief The Allow header value for a route, e.g. "GET, POST, OPTIONS". */
const char *gw_route_allow(enum gw_route_kind kind);

/* Query parameters the API knows; unknown ones are ignored, as HTTP caches and proxies add some. */
struct gw_query {
	int has_from;            /* from=N or from=tail */
	int from_tail;           /* from=tail */
	uint64_t from;
	int has_last_event_id;   /* last_event_id=N */
	uint64_t last_event_id;
	int has_limit;           /* limit=N */
	uint64_t limit;
	int has_expected_offset; /* expected_offset=N (a conditional publish) */
	uint64_t expected_offset;
	int has_priority;        /* priority=P (0..9): a publish's default message priority */
	uint8_t priority;
	const char *bad;         /* after -1: the parameter that is malformed */
};

/** @brief Parse "a=b&c=d" (values already percent-decoded). @return 0, or -1 with q->bad set. */
int gw_query_parse(const char *s, size_t len, struct gw_query *q);

/** @brief Strict decimal uint64 (no sign, no spaces, no overflow, 1..20 digits). @return 0 or -1. */
int gw_parse_u64(const char *s, size_t len, uint64_t *out);

/* Name rules (the engine checks them again; these let the gateway answer 400 before queueing). */
int gw_name_parent_ok(const char *s, size_t len); /* [a-z][a-z0-9_-]{0,31} */
int gw_name_id_ok(const char *s, size_t len);     /* [A-Za-z0-9_.:-]{1,128}, not starting with '.' */
int gw_name_event_ok(const char *s, size_t len);  /* [A-Za-z0-9_.:-]{1,64} */
int gw_name_key_ok(const char *s, size_t len);    /* [A-Za-z0-9_.:-]{1,128} */
/** @brief "<parent>/<id>" as a whole. */
int gw_name_topic_ok(const char *s, size_t len);

#endif /* GW_ROUTE_H */
