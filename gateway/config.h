/*
 * config.h - the gateway's configuration: one struct filled once at startup from a JSON file
 * (schemas/config.schema.json) and the command line, then treated as immutable.
 *
 * Main thread only, before the event loop starts; afterwards every thread only reads it.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <engine.h>

#include "xff.h"

#define GW_VERSION "0.1.0"
#define GW_DEFAULT_CONFIG "conf/litegate.json"

/* A publish rate limit (token buckets, pubrate.h): 0 = no limit on that dimension. */
struct gw_rate_conf {
	double msgs_per_s;          /* messages per second, sustained */
	double bytes_per_s;         /* payload bytes per second, sustained */
	double burst_msgs;          /* bucket sizes; 0 = one second's worth */
	double burst_bytes;
};

/* publish_limits.per_parent: one parent's limit. */
struct gw_parent_rate {
	char *parent;
	struct gw_rate_conf rate;
};

/* One declared parent: every lite topic "<name>/<id>" takes these limits. */
struct gw_parent_conf {
	char *name;                 /* [a-z][a-z0-9_-]{0,31} */
	uint32_t max_message_bytes; /* payload limit of one message */
	uint64_t idle_ttl_s;        /* a topic expires this long after its last write */
	uint64_t max_retained;      /* messages kept per topic; 0 = unlimited */
	uint8_t priority;           /* 0..9 */
	uint64_t dedup_window_s;    /* producer keys are remembered this long (idempotent retries) */
	uint32_t dedup_max_keys;    /* and at most this many per lite topic */
};

/* One verification key of auth.mode "jwt": a secret (HS256) or a public key file (RS256, ES256). */
struct gw_auth_key_conf {
	char *kid;                  /* the "kid" tokens name it by; NULL = none */
	char *secret;               /* HS256 secret bytes, or NULL */
	size_t secret_len;
	char *path;                 /* PEM public key or certificate file, or NULL */
};

enum {
	GW_AUTH_MODE_NONE = 0,      /* no tokens: every request is allowed (loopback defaults) */
	GW_AUTH_MODE_JWT,           /* every API request needs a valid token (auth.h) */
};

struct gw_config {
	char *listen_host;          /* address to bind: "127.0.0.1", "::1", "0.0.0.0" */
	int listen_port;            /* 1..65535 */
	char *data_dir;             /* engine directory, relative paths against the working directory */
	char *static_root;          /* directory served at /; NULL = none */
	int log_level;              /* GW_LOG_* */

	enum eng_durability durability;
	uint32_t fsync_interval_ms; /* for durability "interval" */
	uint64_t segment_bytes;     /* log segment size */
	uint64_t retention_s;       /* delete log segments older than this */
	uint64_t log_max_bytes;     /* delete oldest segments past this size; 0 = no cap */
	uint64_t queue_max_bytes;   /* pending append bytes before 429 */
	uint32_t ready_max;         /* the engine's ready-set capacity (eng_config.ready_max) */

	struct gw_parent_conf *parents;
	size_t n_parents;

	char **cors_origins;        /* allowed Origin values; "*" allows any */
	size_t n_cors_origins;
	int security_headers;       /* lws's best-practice security headers on every response */

	uint32_t heartbeat_s;       /* SSE ':' comment / WebSocket ping interval */
	uint32_t sse_retry_ms;      /* the retry: field sent first on every SSE stream */

	size_t max_unsent_bytes;    /* per connection: bytes formatted per write, so lws holds no more */
	size_t max_body_bytes;      /* application/json and text/plain bodies */
	size_t max_line_bytes;      /* one NDJSON line */
	size_t max_batch;           /* messages in one JSON array */
	size_t max_ws_message_bytes;/* one reassembled WebSocket message */
	size_t max_ws_topics;       /* subscriptions per WebSocket */
	size_t history_max;         /* messages in one history reply (the limit= cap) */
	size_t history_max_bytes;   /* payload bytes in one history reply */
	uint32_t max_fds;           /* connections lws can track (sizes its fd table) */
	uint32_t max_header_pool;   /* header tables in use at once (one per request in flight) */
	uint32_t max_connections;   /* open connections; past it new ones get 503 (conn.c) */
	uint32_t max_connections_per_ip; /* open connections from one client address; then 429 */
	int per_ip_loopback;             /* apply max_connections_per_ip to loopback peers too */
	struct gw_cidr *trusted_proxies; /* peers whose X-Forwarded-For names the client (xff.h) */
	size_t n_trusted_proxies;
	uint32_t max_header_bytes;  /* request line and headers of one request; then 431 (414) */

	uint32_t keepalive_s;       /* idle keep-alive HTTP connections are closed after this */
	uint32_t body_timeout_s;    /* a request body may pause this long between reads */
	uint32_t header_timeout_s;  /* a request's line and headers must arrive within this; then 408 */
	uint32_t request_timeout_s; /* a Content-Length body must arrive whole within this; then 408 */
	uint32_t stall_timeout_s;   /* a stream that cannot be written for this long is dropped */
	uint32_t shutdown_grace_s;  /* SIGTERM: wait at most this long for in-flight publishes */

	/* Authorization (auth.c, docs/security.md): config group "auth". */
	int auth_mode;              /* GW_AUTH_MODE_NONE (default) or GW_AUTH_MODE_JWT */
	struct gw_auth_key_conf *auth_keys; /* HS256 secrets and public key files, in config order */
	size_t n_auth_keys;
	char *auth_audience;        /* the "aud" every token must carry; NULL = tokens carry none */
	uint32_t auth_leeway_s;     /* clock skew allowed on exp and nbf */
	char *auth_cookie;          /* name of a cookie that may carry the token; NULL = none */

	/* TLS (main.c): config group "tls"; both set = HTTPS and WSS on the listening port. */
	char *tls_cert;             /* PEM certificate (chain) file */
	char *tls_key;              /* PEM private key file */
	int tls_http2;              /* "tls.http2": offer h2 by ALPN as well as http/1.1 (default 1) */

	/* Test seam (config group "testing", never in production configs): passed to the engine's
	 * fault-injecting I/O layer, so tests can see 507 and the degraded /healthz. */
	uint64_t fail_write_after;  /* fail the Nth log write; 0 = never */
	uint64_t fail_fsync_after;  /* fail the Nth log fsync; 0 = never */
	uint32_t fail_errno;        /* errno of the injected failures (28 = ENOSPC) */

	struct gw_rate_conf client_publish;    /* publish_limits.per_client: per client address */
	struct gw_parent_rate *parent_publish; /* publish_limits.per_parent */
	size_t n_parent_publish;

	char *source;               /* where the config came from, for logs: a path or "defaults" */
};

/* CLI results. */
enum {
	GW_CFG_RUN = 0,   /* start the server */
	GW_CFG_EXIT0 = 1, /* --help or --version printed: exit 0 */
	GW_CFG_ERROR = 2, /* message printed: exit 2 */
};

/**
 * @brief Build the configuration from argv: defaults, then the file (--config, or conf/litegate.json
 *        when it exists), then the flags that override it.
 * @param[out] cfg filled on GW_CFG_RUN; release with gw_config_free().
 * @return GW_CFG_RUN, GW_CFG_EXIT0 or GW_CFG_ERROR (a message naming the field was printed).
 */
int gw_config_from_args(int argc, char **argv, struct gw_config *cfg);

/** @brief Defaults only (no file). */
void gw_config_defaults(struct gw_config *cfg);

/**
 * @brief Apply a JSON config text on top of @p cfg.
 * @param[out] err on failure, a message naming the field ("limits.max_body_bytes: ...").
 * @return 0 or -1.
 */
int gw_config_apply_json(struct gw_config *cfg, const char *text, size_t len, char *err,
			 size_t errsz);

/** @brief The parent's settings, or NULL if @p name (of @p len bytes) is not declared. */
const struct gw_parent_conf *gw_config_parent(const struct gw_config *cfg, const char *name,
					      size_t len);

void gw_config_free(struct gw_config *cfg);

#endif /* GW_CONFIG_H */
