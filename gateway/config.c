/*
 * config.c - defaults, the JSON config file (jansson) and command-line flags. Main thread, at
 * startup only (see config.h).
 *
 * Every key is described once in a table (name, type, place in gw_config, range), so loading,
 * range checks and error messages that name the field all come from the same line.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "route.h"
#include "xalloc.h"

#define KiB 1024ull
#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

struct gw_config;
static void free_publimits(struct gw_config *cfg);
static int load_publimits(struct gw_config *cfg, json_t *o, char *err, size_t errsz);

static const char *const default_origins[] = { "http://localhost:8080", "http://127.0.0.1:8080" };

void
gw_config_defaults(struct gw_config *cfg)
{
	/* The single initializer of every default: conf/litegate.json repeats these values. */
	static const struct gw_config defaults = {
		.listen_port = 8080,
		.log_level = GW_LOG_INFO,
		.durability = ENG_DURABLE_FSYNC,
		.fsync_interval_ms = 10,
		.segment_bytes = 1 * GiB,
		.retention_s = 72 * 3600,
		.log_max_bytes = 0,
		.queue_max_bytes = 256 * MiB,
		.ready_max = 65536,
		.security_headers = 1,
		.heartbeat_s = 15,
		.sse_retry_ms = 2000,
		.max_unsent_bytes = 256 * KiB,
		.max_body_bytes = 8 * MiB,
		.max_line_bytes = 1 * MiB + 4 * KiB,
		.max_batch = 1000,
		.max_ws_message_bytes = 1 * MiB + 4 * KiB,
		.max_ws_topics = 1024,
		.history_max = 1000,
		.history_max_bytes = 4 * MiB,
		.max_fds = 131072,
		.max_header_pool = 4096,
		.max_connections = 100000,
		.max_connections_per_ip = 1000,
		.max_header_bytes = 8192,
		.keepalive_s = 30,
		.body_timeout_s = 60,
		.header_timeout_s = 10,
		.request_timeout_s = 120,
		.stall_timeout_s = 60,
		.shutdown_grace_s = 10,
		.auth_mode = GW_AUTH_MODE_NONE,
		.auth_leeway_s = 30,
	};

	*cfg = defaults;
	cfg->listen_host = xstrdup("127.0.0.1");
	cfg->data_dir = xstrdup("./data");
	cfg->static_root = xstrdup("web-demo");
	cfg->n_parents = 2;
	cfg->parents = xcalloc(2, sizeof(*cfg->parents));
	cfg->parents[0] = (struct gw_parent_conf){ xstrdup("chatbot"), 1 * MiB, 86400, 0, 5, 600, 100000 };
	cfg->parents[1] = (struct gw_parent_conf){ xstrdup("agent"), 1 * MiB, 86400, 0, 5, 600, 100000 };
	cfg->n_cors_origins = 2;
	cfg->cors_origins = xcalloc(2, sizeof(char *));
	for (size_t i = 0; i < 2; i++)
		cfg->cors_origins[i] = xstrdup(default_origins[i]);
	cfg->source = xstrdup("defaults");
}

static void
free_parents(struct gw_config *cfg)
{
	for (size_t i = 0; i < cfg->n_parents; i++)
		free(cfg->parents[i].name);
	free(cfg->parents);
	cfg->parents = NULL;
	cfg->n_parents = 0;
}

static void
free_origins(struct gw_config *cfg)
{
	for (size_t i = 0; i < cfg->n_cors_origins; i++)
		free(cfg->cors_origins[i]);
	free(cfg->cors_origins);
	cfg->cors_origins = NULL;
	cfg->n_cors_origins = 0;
}

static void
free_auth(struct gw_config *cfg)
{
	for (size_t i = 0; i < cfg->n_auth_keys; i++) {
		free(cfg->auth_keys[i].kid);
		if (cfg->auth_keys[i].secret)
			memset(cfg->auth_keys[i].secret, 0, cfg->auth_keys[i].secret_len);
		free(cfg->auth_keys[i].secret);
		free(cfg->auth_keys[i].path);
	}
	free(cfg->auth_keys);
	free(cfg->auth_audience);
	free(cfg->auth_cookie);
	cfg->auth_keys = NULL;
	cfg->n_auth_keys = 0;
	cfg->auth_audience = cfg->auth_cookie = NULL;
}

void
gw_config_free(struct gw_config *cfg)
{
	free_auth(cfg);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->listen_host);
	free(cfg->data_dir);
	free(cfg->static_root);
	free(cfg->source);
	free_parents(cfg);
	free_origins(cfg);
	free_publimits(cfg);
	free(cfg->trusted_proxies);
	memset(cfg, 0, sizeof(*cfg));
}

const struct gw_parent_conf *
gw_config_parent(const struct gw_config *cfg, const char *name, size_t len)
{
	for (size_t i = 0; i < cfg->n_parents; i++)
		if (strlen(cfg->parents[i].name) == len && !memcmp(cfg->parents[i].name, name, len))
			return &cfg->parents[i];
	return NULL;
}

/* ---- Field table ------------------------------------------------------------------------------ */

enum ftype {
	T_STR,        /* char *, non-empty */
	T_STR_NULL,   /* char *, may be null or "" (= NULL) */
	T_U32,
	T_U64,
	T_SIZE,
	T_BOOL,       /* int 0/1 */
	T_LISTEN,     /* "host:port" into listen_host/listen_port */
	T_DURABILITY, /* "fsync" | "interval" | "none" */
	T_LOGLEVEL,   /* "error" | "warn" | "info" | "debug" */
	T_PARENTS,
	T_ORIGINS,
	T_AUTH,       /* the "auth" object (load_auth) */
	T_TLS,        /* the "tls" object (load_tls) */
	T_PUBLIMITS,  /* the "publish_limits" object (load_publimits) */
	T_PROXIES,    /* limits.trusted_proxies: addresses and CIDR blocks (load_proxies) */
	T_GROUP,      /* nested object; its fields follow with the group's prefix */
};

struct field {
	const char *name; /* full dotted name, e.g. "limits.max_body_bytes" */
	enum ftype type;
	size_t off;
	uint64_t min, max;
};

#define F(n, t, member, lo, hi) { n, t, offsetof(struct gw_config, member), lo, hi }
#define G(n) { n, T_GROUP, 0, 0, 0 }

static const struct field fields[] = {
	F("listen", T_LISTEN, listen_host, 0, 0),
	F("data_dir", T_STR, data_dir, 0, 0),
	F("static_root", T_STR_NULL, static_root, 0, 0),
	F("log_level", T_LOGLEVEL, log_level, 0, 0),
	F("durability", T_DURABILITY, durability, 0, 0),
	F("fsync_interval_ms", T_U32, fsync_interval_ms, 1, 60000),
	F("parents", T_PARENTS, parents, 0, 0),
	F("cors_origins", T_ORIGINS, cors_origins, 0, 0),
	F("security_headers", T_BOOL, security_headers, 0, 1),
	F("auth", T_AUTH, auth_mode, 0, 0),
	F("tls", T_TLS, tls_cert, 0, 0),
	F("publish_limits", T_PUBLIMITS, client_publish, 0, 0),
	F("heartbeat_s", T_U32, heartbeat_s, 1, 3600),
	F("sse_retry_ms", T_U32, sse_retry_ms, 0, 3600000),
	F("max_unsent_bytes", T_SIZE, max_unsent_bytes, 4 * KiB, 64 * MiB),
	G("storage"),
	F("storage.segment_bytes", T_U64, segment_bytes, 1 * MiB, 64 * GiB),
	F("storage.retention_s", T_U64, retention_s, 1, 3650ull * 86400),
	F("storage.log_max_bytes", T_U64, log_max_bytes, 0, UINT64_MAX),
	F("storage.queue_max_bytes", T_U64, queue_max_bytes, 1 * KiB, 64 * GiB),
	F("storage.ready_max", T_U32, ready_max, 1, 16 * 1024 * 1024),
	G("limits"),
	F("limits.max_body_bytes", T_SIZE, max_body_bytes, 1 * KiB, 1 * GiB),
	F("limits.max_line_bytes", T_SIZE, max_line_bytes, 1 * KiB, 32 * MiB),
	F("limits.max_batch", T_SIZE, max_batch, 1, 1000000),
	F("limits.max_ws_message_bytes", T_SIZE, max_ws_message_bytes, 1 * KiB, 32 * MiB),
	F("limits.max_ws_topics", T_SIZE, max_ws_topics, 1, 1000000),
	F("limits.history_max", T_SIZE, history_max, 1, 100000),
	F("limits.history_max_bytes", T_SIZE, history_max_bytes, 1 * KiB, 1 * GiB),
	F("limits.max_fds", T_U32, max_fds, 64, 16 * 1024 * 1024),
	F("limits.max_header_pool", T_U32, max_header_pool, 8, 1000000),
	F("limits.max_connections", T_U32, max_connections, 1, 16 * 1024 * 1024),
	F("limits.max_connections_per_ip", T_U32, max_connections_per_ip, 1, 16 * 1024 * 1024),
	F("limits.per_ip_loopback", T_BOOL, per_ip_loopback, 0, 1),
	F("limits.trusted_proxies", T_PROXIES, trusted_proxies, 0, 0),
	F("limits.max_header_bytes", T_U32, max_header_bytes, 1024, 1024 * 1024),
	G("timeouts"),
	F("timeouts.keepalive_s", T_U32, keepalive_s, 1, 86400),
	F("timeouts.body_s", T_U32, body_timeout_s, 1, 86400),
	F("timeouts.header_s", T_U32, header_timeout_s, 1, 3600),
	F("timeouts.request_s", T_U32, request_timeout_s, 1, 86400),
	F("timeouts.stall_s", T_U32, stall_timeout_s, 1, 86400),
	F("timeouts.shutdown_grace_s", T_U32, shutdown_grace_s, 0, 3600),
	G("testing"),
	F("testing.fail_write_after", T_U64, fail_write_after, 0, UINT64_MAX),
	F("testing.fail_fsync_after", T_U64, fail_fsync_after, 0, UINT64_MAX),
	F("testing.fail_errno", T_U32, fail_errno, 0, 4095),
};

#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static int
ferr(char *err, size_t errsz, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
ferr(char *err, size_t errsz, const char *field, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errsz, "%s: ", field);

	if (n < 0 || (size_t)n >= errsz)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errsz - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* "host:port" or "[v6]:port". */
static int
parse_listen(const char *s, char **host, int *port)
{
	const char *colon;
	char *end;
	long p;
	size_t hlen;
	const char *h = s;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hlen = (size_t)(colon - s);
	}
	if (!hlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
		return -1;
	free(*host);
	*host = xstrndup(h, hlen);
	*port = (int)p;
	return 0;
}

static int
parse_durability(const char *s, enum eng_durability *out)
{
	if (!strcmp(s, "fsync"))
		*out = ENG_DURABLE_FSYNC;
	else if (!strcmp(s, "interval"))
		*out = ENG_DURABLE_INTERVAL;
	else if (!strcmp(s, "none"))
		*out = ENG_DURABLE_NONE;
	else
		return -1;
	return 0;
}

static int
get_uint(json_t *v, const struct field *f, uint64_t *out, char *err, size_t errsz)
{
	json_int_t i;

	if (!json_is_integer(v))
		return ferr(err, errsz, f->name, "must be an integer");
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < f->min || (uint64_t)i > f->max)
		return ferr(err, errsz, f->name, "must be between %llu and %llu",
			    (unsigned long long)f->min, (unsigned long long)f->max);
	*out = (uint64_t)i;
	return 0;
}

static int
load_parents(struct gw_config *cfg, json_t *arr, char *err, size_t errsz)
{
	static const char *const known[] = { "name", "max_message_bytes", "idle_ttl_s", "max_retained",
					     "priority", "dedup_window_s", "dedup_max_keys" };
	const size_t n_known = sizeof(known) / sizeof(known[0]);
	struct gw_parent_conf *ps;
	size_t n, i;
	json_t *p;

	if (!json_is_array(arr) || !(n = json_array_size(arr)))
		return ferr(err, errsz, "parents", "must be a non-empty array of parent objects");
	if (n > 256)
		return ferr(err, errsz, "parents", "at most 256 parents");
	ps = xcalloc(n, sizeof(*ps));
	json_array_foreach(arr, i, p) {
		char name[64];
		const char *key;
		json_t *v;

		snprintf(name, sizeof(name), "parents[%zu]", i);
		ps[i] = (struct gw_parent_conf){ NULL, 1 * MiB, 86400, 0, 5, 600, 100000 };
		if (!json_is_object(p)) {
			ferr(err, errsz, name, "must be an object");
			goto fail;
		}
		json_object_foreach(p, key, v) {
			size_t k;
			char fname[96];
			uint64_t u;

			for (k = 0; k < n_known && strcmp(key, known[k]); k++)
				;
			snprintf(fname, sizeof(fname), "%s.%s", name, key);
			if (k == n_known) {
				ferr(err, errsz, fname, "unknown field");
				goto fail;
			}
			if (k == 0) {
				const char *s = json_string_value(v);

				if (!s || !gw_name_parent_ok(s, strlen(s))) {
					ferr(err, errsz, fname, "must match [a-z][a-z0-9_-]{0,31}");
					goto fail;
				}
				for (size_t j = 0; j < i; j++) {
					if (!strcmp(ps[j].name, s)) {
						ferr(err, errsz, fname, "parent \"%s\" declared twice", s);
						goto fail;
					}
				}
				ps[i].name = xstrdup(s);
				continue;
			}
			{
				static const uint64_t lo[] = { 0, 1, 1, 0, 0, 1, 1 };
				static const uint64_t hi[] = { 0, 16 * MiB, 3650ull * 86400, UINT64_MAX, 9,
							       7 * 86400, 10000000 };
				struct field f = { fname, T_U64, 0, lo[k], hi[k] };

				if (get_uint(v, &f, &u, err, errsz))
					goto fail;
			}
			if (k == 1)
				ps[i].max_message_bytes = (uint32_t)u;
			else if (k == 2)
				ps[i].idle_ttl_s = u;
			else if (k == 3)
				ps[i].max_retained = u;
			else if (k == 4)
				ps[i].priority = (uint8_t)u;
			else if (k == 5)
				ps[i].dedup_window_s = u;
			else
				ps[i].dedup_max_keys = (uint32_t)u;
		}
		if (!ps[i].name) {
			ferr(err, errsz, name, "missing \"name\"");
			goto fail;
		}
	}
	free_parents(cfg);
	cfg->parents = ps;
	cfg->n_parents = n;
	return 0;
fail:
	for (i = 0; i < n; i++)
		free(ps[i].name);
	free(ps);
	return -1;
}

static int
load_origins(struct gw_config *cfg, json_t *arr, char *err, size_t errsz)
{
	size_t n, i;
	json_t *v;
	char **o;

	if (!json_is_array(arr))
		return ferr(err, errsz, "cors_origins", "must be an array of strings");
	n = json_array_size(arr);
	o = xcalloc(n ? n : 1, sizeof(char *));
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);

		if (!s || !*s || strlen(s) > 256 || strpbrk(s, "\r\n ")) {
			for (size_t j = 0; j < i; j++)
				free(o[j]);
			free(o);
			return ferr(err, errsz, "cors_origins",
				    "item %zu must be an origin like \"https://app.example\" or \"*\"", i);
		}
		o[i] = xstrdup(s);
	}
	free_origins(cfg);
	cfg->cors_origins = o;
	cfg->n_cors_origins = n;
	return 0;
}

#define TRUSTED_PROXIES_MAX 256

static int
load_proxies(struct gw_config *cfg, json_t *arr, char *err, size_t errsz)
{
	struct gw_cidr *set;
	size_t n, i;
	json_t *v;

	if (!json_is_array(arr) || (n = json_array_size(arr)) > TRUSTED_PROXIES_MAX)
		return ferr(err, errsz, "limits.trusted_proxies",
			    "must be an array of at most %d addresses or CIDR blocks",
			    TRUSTED_PROXIES_MAX);
	set = xcalloc(n ? n : 1, sizeof(*set));
	json_array_foreach(arr, i, v) {
		const char *s = json_string_value(v);

		if (!s || gw_cidr_parse(s, strlen(s), &set[i])) {
			free(set);
			return ferr(err, errsz, "limits.trusted_proxies",
				    "item %zu must be an address or a CIDR block like \"10.0.0.0/8\"", i);
		}
	}
	free(cfg->trusted_proxies);
	cfg->trusted_proxies = set;
	cfg->n_trusted_proxies = n;
	return 0;
}

/* A cookie name is an RFC 6265 token. */
static int
cookie_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c))
			return 0;
	}
	return 1;
}

/* One entry of auth.hs256_secrets (a string, or {"kid","secret"}) or auth.public_keys (a path, or
 * {"kid","path"}). */
static int
load_auth_key(struct gw_auth_key_conf *k, json_t *v, int secret, const char *name, char *err,
	      size_t errsz)
{
	const char *what = secret ? "secret" : "path", *key, *s = NULL;
	char fname[192];
	json_t *m;

	if (json_is_string(v)) {
		s = json_string_value(v);
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, m) {
			snprintf(fname, sizeof(fname), "%s.%s", name, key);
			if (!strcmp(key, "kid")) {
				const char *kid = json_string_value(m);
				size_t kl = kid ? strlen(kid) : 0;

				if (!kid || kl < 1 || kl > 128)
					return ferr(err, errsz, fname, "must be a string of 1 to 128 bytes");
				for (size_t i = 0; i < kl; i++)
					if ((unsigned char)kid[i] < 0x20 || (unsigned char)kid[i] > 0x7e)
						return ferr(err, errsz, fname, "must be printable ASCII");
				k->kid = xstrdup(kid);
			} else if (!strcmp(key, what)) {
				if (!(s = json_string_value(m)))
					return ferr(err, errsz, fname, "must be a string");
			} else {
				return ferr(err, errsz, fname, "unknown field");
			}
		}
		if (!s)
			return ferr(err, errsz, name, "missing \"%s\"", what);
	} else {
		return ferr(err, errsz, name, secret ? "must be a secret string or {\"kid\",\"secret\"}"
						     : "must be a PEM file path or {\"kid\",\"path\"}");
	}
	if (secret) {
		size_t n = json_is_string(v) ? json_string_length(v)
					     : json_string_length(json_object_get(v, "secret"));

		/* RFC 7518 3.2: an HS256 key must be at least as long as the hash. */
		if (n < 32)
			return ferr(err, errsz, name, "an HS256 secret needs at least 32 bytes");
		k->secret = xmalloc(n);
		memcpy(k->secret, s, n);
		k->secret_len = n;
	} else {
		if (!*s)
			return ferr(err, errsz, name, "must be a non-empty path");
		k->path = xstrdup(s);
	}
	return 0;
}

static int
load_auth(struct gw_config *cfg, json_t *obj, char *err, size_t errsz)
{
	struct gw_config a;
	const char *key;
	json_t *v;
	int has_mode = 0;

	if (!json_is_object(obj))
		return ferr(err, errsz, "auth", "must be an object like {\"mode\":\"none\"}");
	memset(&a, 0, sizeof(a));
	a.auth_leeway_s = 30;
	json_object_foreach(obj, key, v) {
		char fname[64];

		snprintf(fname, sizeof(fname), "auth.%s", key);
		if (!strcmp(key, "mode")) {
			const char *s = json_string_value(v);

			if (s && !strcmp(s, "none"))
				a.auth_mode = GW_AUTH_MODE_NONE;
			else if (s && !strcmp(s, "jwt"))
				a.auth_mode = GW_AUTH_MODE_JWT;
			else
				goto bad_mode;
			has_mode = 1;
		} else if (!strcmp(key, "hs256_secrets") || !strcmp(key, "public_keys")) {
			int secret = key[0] == 'h';
			size_t i;
			json_t *it;

			if (!json_is_array(v) || json_array_size(v) > 64) {
				ferr(err, errsz, fname, "must be an array of at most 64 keys");
				goto fail;
			}
			a.auth_keys = xrealloc(a.auth_keys, (a.n_auth_keys + json_array_size(v) + 1) *
								  sizeof(*a.auth_keys));
			json_array_foreach(v, i, it) {
				struct gw_auth_key_conf *k = &a.auth_keys[a.n_auth_keys];
				char iname[100];

				memset(k, 0, sizeof(*k));
				a.n_auth_keys++;
				snprintf(iname, sizeof(iname), "%s[%zu]", fname, i);
				if (load_auth_key(k, it, secret, iname, err, errsz))
					goto fail;
				for (size_t j = 0; k->kid && j + 1 < a.n_auth_keys; j++) {
					if (a.auth_keys[j].kid && !strcmp(a.auth_keys[j].kid, k->kid)) {
						ferr(err, errsz, iname, "kid \"%s\" used twice", k->kid);
						goto fail;
					}
				}
			}
		} else if (!strcmp(key, "audience")) {
			const char *s = json_string_value(v);

			if (!json_is_null(v) && (!s || !*s)) {
				ferr(err, errsz, fname, "must be a non-empty string or null");
				goto fail;
			}
			free(a.auth_audience);
			a.auth_audience = s ? xstrdup(s) : NULL;
		} else if (!strcmp(key, "leeway_s")) {
			struct field f = { "auth.leeway_s", T_U32, 0, 0, 3600 };
			uint64_t u;

			if (get_uint(v, &f, &u, err, errsz))
				goto fail;
			a.auth_leeway_s = (uint32_t)u;
		} else if (!strcmp(key, "cookie")) {
			const char *s = json_string_value(v);

			if (!json_is_null(v) && (!s || !cookie_name_ok(s))) {
				ferr(err, errsz, fname, "must be a cookie name (1 to 64 token characters) or null");
				goto fail;
			}
			free(a.auth_cookie);
			a.auth_cookie = s ? xstrdup(s) : NULL;
		} else {
			ferr(err, errsz, fname, "unknown field");
			goto fail;
		}
	}
	if (!has_mode) {
bad_mode:
		ferr(err, errsz, "auth.mode", "must be \"none\" or \"jwt\"");
		goto fail;
	}
	if (a.auth_mode == GW_AUTH_MODE_JWT && !a.n_auth_keys) {
		ferr(err, errsz, "auth", "mode \"jwt\" needs hs256_secrets or public_keys");
		goto fail;
	}
	free_auth(cfg);
	cfg->auth_mode = a.auth_mode;
	cfg->auth_keys = a.auth_keys;
	cfg->n_auth_keys = a.n_auth_keys;
	cfg->auth_audience = a.auth_audience;
	cfg->auth_leeway_s = a.auth_leeway_s;
	cfg->auth_cookie = a.auth_cookie;
	return 0;
fail:
	free_auth(&a);
	return -1;
}

static int
load_tls(struct gw_config *cfg, json_t *obj, char *err, size_t errsz)
{
	const char *key, *cert = NULL, *pkey = NULL;
	int http2 = 1;
	json_t *v;

	if (json_is_null(obj)) {
		free(cfg->tls_cert);
		free(cfg->tls_key);
		cfg->tls_cert = cfg->tls_key = NULL;
		return 0;
	}
	if (!json_is_object(obj))
		return ferr(err, errsz, "tls", "must be {\"cert\":PATH,\"key\":PATH,\"http2\":BOOL} or null");
	json_object_foreach(obj, key, v) {
		char fname[64];
		const char *s = json_string_value(v);

		snprintf(fname, sizeof(fname), "tls.%s", key);
		if (!strcmp(key, "http2")) {
			if (!json_is_boolean(v))
				return ferr(err, errsz, fname, "must be true or false");
			http2 = json_is_true(v);
			continue;
		}
		if (strcmp(key, "cert") && strcmp(key, "key"))
			return ferr(err, errsz, fname, "unknown field");
		if (!s || !*s)
			return ferr(err, errsz, fname, "must be a non-empty path");
		if (key[0] == 'c')
			cert = s;
		else
			pkey = s;
	}
	if (!cert || !pkey)
		return ferr(err, errsz, "tls", "needs both \"cert\" and \"key\"");
	free(cfg->tls_cert);
	free(cfg->tls_key);
	cfg->tls_cert = xstrdup(cert);
	cfg->tls_key = xstrdup(pkey);
	cfg->tls_http2 = http2;
	return 0;
}

static int
load_field(struct gw_config *cfg, const struct field *f, json_t *v, char *err, size_t errsz)
{
	void *at = (char *)cfg + f->off;
	const char *s;
	uint64_t u;

	switch (f->type) {
	case T_STR:
		if (!(s = json_string_value(v)) || !*s)
			return ferr(err, errsz, f->name, "must be a non-empty string");
		free(*(char **)at);
		*(char **)at = xstrdup(s);
		return 0;
	case T_STR_NULL:
		if (!json_is_null(v) && !json_is_string(v))
			return ferr(err, errsz, f->name, "must be a string or null");
		s = json_string_value(v);
		free(*(char **)at);
		*(char **)at = s && *s ? xstrdup(s) : NULL;
		return 0;
	case T_U32:
	case T_U64:
	case T_SIZE:
		if (get_uint(v, f, &u, err, errsz))
			return -1;
		if (f->type == T_U32)
			*(uint32_t *)at = (uint32_t)u;
		else if (f->type == T_U64)
			*(uint64_t *)at = u;
		else
			*(size_t *)at = (size_t)u;
		return 0;
	case T_BOOL:
		if (!json_is_boolean(v))
			return ferr(err, errsz, f->name, "must be true or false");
		*(int *)at = json_is_true(v);
		return 0;
	case T_LISTEN:
		if (!(s = json_string_value(v)) || parse_listen(s, &cfg->listen_host, &cfg->listen_port))
			return ferr(err, errsz, f->name, "must be \"ADDRESS:PORT\" (port 1..65535)");
		return 0;
	case T_DURABILITY:
		if (!(s = json_string_value(v)) || parse_durability(s, &cfg->durability))
			return ferr(err, errsz, f->name, "must be \"fsync\", \"interval\" or \"none\"");
		return 0;
	case T_LOGLEVEL:
		if (!(s = json_string_value(v)) || gw_log_level_parse(s, &cfg->log_level))
			return ferr(err, errsz, f->name, "must be \"error\", \"warn\", \"info\" or \"debug\"");
		return 0;
	case T_PARENTS:
		return load_parents(cfg, v, err, errsz);
	case T_ORIGINS:
		return load_origins(cfg, v, err, errsz);
	case T_AUTH:
		return load_auth(cfg, v, err, errsz);
	case T_TLS:
		return load_tls(cfg, v, err, errsz);
	case T_PUBLIMITS:
		return load_publimits(cfg, v, err, errsz);
	case T_PROXIES:
		return load_proxies(cfg, v, err, errsz);
	case T_GROUP:
		break;
	}
	return 0;
}

/* ---- publish_limits (pubrate.h) -------------------------------------------------------------------- */

static void
free_publimits(struct gw_config *cfg)
{
	for (size_t i = 0; i < cfg->n_parent_publish; i++)
		free(cfg->parent_publish[i].parent);
	free(cfg->parent_publish);
	cfg->parent_publish = NULL;
	cfg->n_parent_publish = 0;
	memset(&cfg->client_publish, 0, sizeof(cfg->client_publish));
}

/* {"messages_per_s":N,"bytes_per_s":M,"burst_messages":B,"burst_bytes":C}, each optional. */
static int
load_rate(json_t *o, const char *name, struct gw_rate_conf *r, char *err, size_t errsz)
{
	static const char *const keys[] = { "messages_per_s", "bytes_per_s", "burst_messages",
					    "burst_bytes" };
	const char *key;
	json_t *v;

	memset(r, 0, sizeof(*r));
	if (!json_is_object(o))
		return ferr(err, errsz, name, "must be an object");
	json_object_foreach(o, key, v) {
		char fname[160];
		size_t k;

		for (k = 0; k < 4 && strcmp(key, keys[k]); k++)
			;
		snprintf(fname, sizeof(fname), "%s.%s", name, key);
		if (k == 4)
			return ferr(err, errsz, fname, "unknown field");
		if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e12)
			return ferr(err, errsz, fname, "must be a number from 0 to 1e12");
		(&r->msgs_per_s)[k] = json_number_value(v);
	}
	return 0;
}

static int
load_publimits(struct gw_config *cfg, json_t *o, char *err, size_t errsz)
{
	json_t *pc, *pp, *v;
	const char *key;

	free_publimits(cfg);
	if (!json_is_object(o))
		return ferr(err, errsz, "publish_limits", "must be an object");
	json_object_foreach(o, key, v) {
		if (strcmp(key, "per_client") && strcmp(key, "per_parent")) {
			char fname[96];

			snprintf(fname, sizeof(fname), "publish_limits.%.60s", key);
			return ferr(err, errsz, fname, "unknown field");
		}
	}
	if ((pc = json_object_get(o, "per_client")) &&
	    load_rate(pc, "publish_limits.per_client", &cfg->client_publish, err, errsz))
		return -1;
	if ((pp = json_object_get(o, "per_parent"))) {
		if (!json_is_object(pp))
			return ferr(err, errsz, "publish_limits.per_parent",
				    "must be an object of parent name -> limit");
		cfg->parent_publish = xcalloc(json_object_size(pp) + 1, sizeof(*cfg->parent_publish));
		json_object_foreach(pp, key, v) {
			char fname[96];
			struct gw_parent_rate *r = &cfg->parent_publish[cfg->n_parent_publish];

			snprintf(fname, sizeof(fname), "publish_limits.per_parent.%.40s", key);
			if (!gw_name_parent_ok(key, strlen(key)))
				return ferr(err, errsz, fname, "not a parent name");
			if (load_rate(v, fname, &r->rate, err, errsz))
				return -1;
			r->parent = xstrdup(key);
			cfg->n_parent_publish++;
		}
	}
	return 0;
}

/* Load the members of one object; @p prefix is "" or "limits." etc. */
static int
load_object(struct gw_config *cfg, json_t *obj, const char *prefix, char *err, size_t errsz)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		char full[128];
		size_t i;

		snprintf(full, sizeof(full), "%s%s", prefix, key);
		for (i = 0; i < NFIELDS && strcmp(fields[i].name, full); i++)
			;
		if (i == NFIELDS)
			return ferr(err, errsz, full, "unknown field");
		if (fields[i].type == T_GROUP) {
			char sub[192];

			if (!json_is_object(v))
				return ferr(err, errsz, full, "must be an object");
			snprintf(sub, sizeof(sub), "%s.", full);
			if (load_object(cfg, v, sub, err, errsz))
				return -1;
			continue;
		}
		if (load_field(cfg, &fields[i], v, err, errsz))
			return -1;
	}
	return 0;
}

int
gw_config_apply_json(struct gw_config *cfg, const char *text, size_t len, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(err, errsz, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		snprintf(err, errsz, "(root): must be a JSON object");
		return -1;
	}
	rc = load_object(cfg, root, "", err, errsz);
	json_decref(root);
	/* Only now are both "parents" and "publish_limits" known, whatever their order. */
	for (size_t i = 0; !rc && i < cfg->n_parent_publish; i++) {
		const char *pn = cfg->parent_publish[i].parent;

		if (!gw_config_parent(cfg, pn, strlen(pn))) {
			snprintf(err, errsz, "publish_limits.per_parent.%s: parent not declared", pn);
			rc = -1;
		}
	}
	return rc;
}

static int
load_file(struct gw_config *cfg, const char *path, char *err, size_t errsz)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, cap = 0, n;
	int rc = -1;

	if (!f) {
		snprintf(err, errsz, "cannot open: %s", strerror(errno));
		return -1;
	}
	do {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			if (cap > 16 * MiB) {
				snprintf(err, errsz, "larger than 16 MiB");
				goto out;
			}
			text = xrealloc(text, cap);
		}
		n = fread(text + len, 1, cap - len, f);
		len += n;
	} while (n);
	if (ferror(f)) {
		snprintf(err, errsz, "read error");
		goto out;
	}
	rc = gw_config_apply_json(cfg, text, len, err, errsz);
out:
	free(text);
	fclose(f);
	return rc;
}

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: litegate [--config FILE] [--listen ADDR:PORT] [--data-dir DIR]\n"
		"                [--log-level error|warn|info|debug] [--help] [--version]\n"
		"\n"
		"A session gateway for AI chat apps: publish over HTTP, stream over SSE and WebSocket,\n"
		"resume from offsets. Without --config, reads %s when it exists, else\n"
		"built-in defaults (listen 127.0.0.1:8080, data in ./data, parents chatbot and agent).\n"
		"\n"
		"  --config FILE        JSON config (schemas/config.schema.json)\n"
		"  --listen ADDR:PORT   override \"listen\"\n"
		"  --data-dir DIR       override \"data_dir\"\n"
		"  --log-level LEVEL    override \"log_level\"\n"
		"  --help               this text\n"
		"  --version            print the version\n"
		"\n"
		"Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 on a runtime failure,\n"
		"2 on a bad config file or flag.\n",
		GW_DEFAULT_CONFIG);
}

int
gw_config_from_args(int argc, char **argv, struct gw_config *cfg)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *listen = NULL, *data_dir = NULL, *level = NULL;
	char err[512];
	struct stat st;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'l': listen = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'L': level = optarg; break;
		case 'h':
			usage(stdout);
			return GW_CFG_EXIT0;
		case 'V':
			printf("litegate %s\n", GW_VERSION);
			return GW_CFG_EXIT0;
		case ':':
			fprintf(stderr, "litegate: %s: needs a value\n", argv[optind - 1]);
			return GW_CFG_ERROR;
		default:
			fprintf(stderr, "litegate: %s: unknown flag (see --help)\n", argv[optind - 1]);
			return GW_CFG_ERROR;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "litegate: %s: unexpected argument (see --help)\n", argv[optind]);
		return GW_CFG_ERROR;
	}
	gw_config_defaults(cfg);
	if (!config && stat(GW_DEFAULT_CONFIG, &st) == 0)
		config = GW_DEFAULT_CONFIG;
	if (config) {
		if (load_file(cfg, config, err, sizeof(err))) {
			fprintf(stderr, "litegate: config %s: %s\n", config, err);
			goto fail;
		}
		free(cfg->source);
		cfg->source = xstrdup(config);
	}
	if (listen && parse_listen(listen, &cfg->listen_host, &cfg->listen_port)) {
		fprintf(stderr, "litegate: --listen: must be ADDRESS:PORT (port 1..65535), got \"%s\"\n",
			listen);
		goto fail;
	}
	if (data_dir) {
		if (!*data_dir) {
			fprintf(stderr, "litegate: --data-dir: must not be empty\n");
			goto fail;
		}
		free(cfg->data_dir);
		cfg->data_dir = xstrdup(data_dir);
	}
	if (level && gw_log_level_parse(level, &cfg->log_level)) {
		fprintf(stderr, "litegate: --log-level: must be error, warn, info or debug, got \"%s\"\n",
			level);
		goto fail;
	}
	return GW_CFG_RUN;
fail:
	gw_config_free(cfg);
	return GW_CFG_ERROR;
}
