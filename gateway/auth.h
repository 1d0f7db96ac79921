/*
 * auth.h - authorization policy: who may publish, stream, consume and administer (docs/security.md).
 *
 * With config auth.mode "none" every check passes. With "jwt", every API request and WebSocket
 * upgrade carries a token (Authorization: Bearer, ?access_token=, or the configured cookie) that
 * jwt.c verifies; its "litegate" claim then decides each action on each topic or group. A token
 * that is missing or invalid gets 401 with WWW-Authenticate; a valid one that does not cover the
 * action gets 403. Streams end when their token expires.
 *
 * Service thread only (the keys are built at startup and read-only afterwards).
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stdint.h>

#include "gw.h"
#include "jwt.h"
#include "route.h"

enum gw_auth_action {
	GW_AUTH_NONE = 0,  /* no check (health, CORS preflight) */
	GW_AUTH_CONNECT,   /* a valid token, whatever its scope (a WebSocket upgrade) */
	GW_AUTH_PUBLISH,   /* on a topic: litegate.publish */
	GW_AUTH_SUBSCRIBE, /* on a topic: litegate.subscribe (SSE, WebSocket, history, topic info) */
	GW_AUTH_CONSUME,   /* on a consumer group: litegate.consume (pop, ack, nack, read its state) */
	GW_AUTH_METRICS,   /* litegate.metrics (or admin): /metrics */
	GW_AUTH_ADMIN,     /* litegate.admin: deletes, group administration */
};

/* Who made a request: what a connection keeps of a verified token. NULL stands for "auth is off". */
struct gw_principal {
	int64_t exp;           /* the token's exp, seconds since the epoch */
	char *sub;             /* the token's sub, or NULL (for logs) */
	struct gw_scope scope; /* what it may do */
};

/**
 * @brief Build the key set from the config (HS256 secrets, PEM files read now). Startup, before
 *        the loop runs.
 * @param[out] err a message naming the key on failure.
 * @return 0, or -1.
 */
int gw_auth_open(const struct gw_config *cfg, char *err, size_t errsz);
/** @brief Release the key set. */
void gw_auth_close(void);
/** @brief Is a token required (mode "jwt")? */
int gw_auth_enabled(void);

/**
 * @brief Find and verify the request's token (headers must still be attached).
 * @param[out] out the principal (owned: gw_principal_free()); NULL with auth off.
 * @param[out] e on failure: 401 unauthorized (no token) or invalid_token (bad or expired).
 * @return 0 or -1.
 */
int gw_auth_authenticate(struct gw *gw, struct lws *wsi, struct gw_principal **out,
			 struct gw_error *e);

/**
 * @brief May @p p do @p a on @p name (a topic for publish/subscribe, a group for consume)?
 * @param[out] e on refusal: 403 forbidden.
 * @return 0 (allowed, always with auth off) or -1.
 */
int gw_auth_allow(struct gw *gw, const struct gw_principal *p, enum gw_auth_action a,
		  const char *name, struct gw_error *e);

void gw_principal_free(struct gw_principal *p);

/**
 * @brief Write a 401/403 as a whole response, with WWW-Authenticate, and finish or close the
 *        transaction. @return what the lws callback should return.
 */
int gw_auth_fail(struct gw *gw, struct lws *wsi, const struct gw_error *e, unsigned flags);

/* Flag for gw_auth_http()/gw_auth_fail(): the request is a WebSocket upgrade (checked at
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, before lws has noted the request's HTTP version). */
#define GW_AUTH_UPGRADE 0x100u

/**
 * @brief Authenticate and authorize one HTTP request in one call.
 * @param name the topic or group the action is on (ignored for CONNECT and ADMIN).
 * @param[out] exp the token's exp (0 with auth off or for GW_AUTH_NONE).
 * @param[out] ret when refused: the value for the lws callback to return.
 * @return 0 to go on, 1 when a refusal was written.
 */
int gw_auth_http(struct gw *gw, struct lws *wsi, enum gw_auth_action a, const char *name,
		 unsigned flags, int64_t *exp, int *ret);

/**
 * @brief The check for an API route of http.c: maps the route and method to an action (health and
 *        preflights need none; a plain GET of /v1/ws is left to the upgrade) and, for an event
 *        stream, keeps the token's exp in the pss for gw_sse_start().
 * @return 0 to go on, 1 when a refusal was written (*ret is what the callback returns).
 */
struct gw_http_pss;
int gw_auth_route(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, enum gw_route_kind kind,
		  enum gw_method m, const char *topic, unsigned flags, int *ret);

/**
 * @brief End @p sub's stream when its token expires: at @p exp (seconds) plus the configured
 *        leeway, sub->expired is set and a WRITEABLE asked for, where the transport sends a last
 *        error and closes. No-op with @p exp 0 (auth off). The timer stops in gw_sub_unregister().
 */
void gw_sub_expire_at(struct gw *gw, struct gw_sub *sub, int64_t exp);

/**
 * @brief `litegate token ...`: sign an HS256 token for development and print it (token.c).
 * @param argv argv[0] is "token". @return the process exit status.
 */
int gw_token_main(int argc, char **argv);

#endif /* GW_AUTH_H */
