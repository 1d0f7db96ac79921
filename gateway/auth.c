/*
 * auth.c - the authorization policy (auth.h): where a request's token comes from, what each route
 * needs, how refusals look, and when streams end because their token did.
 *
 * Service thread. The key set is built once by gw_auth_open() and read-only afterwards. Verified
 * tokens are remembered in a small direct-mapped cache (keyed by the whole token, compared byte for
 * byte), so a producer that sends the same RS256 or ES256 token with every publish pays for one
 * signature check, not one per request; exp and nbf are checked again on every hit.
 */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "log.h"
#include "route.h"
#include "xalloc.h"

#define CACHE_SLOTS 256        /* verified tokens remembered (power of two) */
#define CACHE_TOKEN_MAX 4096   /* longer tokens are verified every time */

struct cache_ent {
	char *tok;                 /* the token (owned), NULL when the slot is empty */
	size_t len;
	int has_nbf;
	int64_t nbf;
	struct gw_principal p;     /* what it grants (owned) */
};

static struct {
	const struct gw_config *cfg;
	struct gw_jwt_keys *keys;  /* NULL with auth off */
	struct cache_ent cache[CACHE_SLOTS];
} A;

/* ---- Setup --------------------------------------------------------------------------------------- */

static int
read_file(const char *path, char **out, size_t *len, char *err, size_t errsz)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0, cap = 4096, r;
	char *buf;

	if (!f) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(cap);
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			if (cap >= 1024 * 1024) {
				snprintf(err, errsz, "%s: larger than 1 MiB", path);
				free(buf);
				fclose(f);
				return -1;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
	}
	fclose(f);
	*out = buf;
	*len = n;
	return 0;
}

int
gw_auth_open(const struct gw_config *cfg, char *err, size_t errsz)
{
	char why[256];

	A.cfg = cfg;
	if (cfg->auth_mode != GW_AUTH_MODE_JWT)
		return 0;
	A.keys = gw_jwt_keys_new();
	for (size_t i = 0; i < cfg->n_auth_keys; i++) {
		const struct gw_auth_key_conf *k = &cfg->auth_keys[i];

		if (k->secret) {
			if (gw_jwt_keys_add_secret(A.keys, k->kid, k->secret, k->secret_len, why,
						   sizeof(why))) {
				snprintf(err, errsz, "auth.hs256_secrets (kid %s): %s", k->kid ? k->kid : "none",
					 why);
				goto fail;
			}
		} else {
			char *pem;
			size_t len;

			if (read_file(k->path, &pem, &len, why, sizeof(why))) {
				snprintf(err, errsz, "auth.public_keys: %s", why);
				goto fail;
			}
			if (gw_jwt_keys_add_pem(A.keys, k->kid, pem, len, why, sizeof(why))) {
				snprintf(err, errsz, "auth.public_keys: %s: %s", k->path, why);
				free(pem);
				goto fail;
			}
			free(pem);
		}
	}
	return 0;
fail:
	gw_jwt_keys_free(A.keys);
	A.keys = NULL;
	return -1;
}

void
gw_principal_free(struct gw_principal *p)
{
	if (!p)
		return;
	free(p->sub);
	gw_scope_free(&p->scope);
	free(p);
}

void
gw_auth_close(void)
{
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		struct cache_ent *c = &A.cache[i];

		free(c->tok);
		free(c->p.sub);
		gw_scope_free(&c->p.scope);
		memset(c, 0, sizeof(*c));
	}
	gw_jwt_keys_free(A.keys);
	A.keys = NULL;
}

int
gw_auth_enabled(void)
{
	return A.keys != NULL;
}

/* ---- Finding the token ------------------------------------------------------------------------------ */

/* The value of cookie @p name in a Cookie header ("a=1; b=2"). @return its length, or -1. */
static int
cookie_value(const char *hdr, size_t n, const char *name, const char **val)
{
	size_t nl = strlen(name), i = 0;

	while (i < n) {
		size_t j, e;

		while (i < n && (hdr[i] == ' ' || hdr[i] == '\t' || hdr[i] == ';'))
			i++;
		for (j = i; j < n && hdr[j] != ';'; j++)
			;
		/* hdr[i..j) is one "name=value" pair */
		if (j - i > nl && !memcmp(hdr + i, name, nl) && hdr[i + nl] == '=') {
			e = j;
			while (e > i + nl + 1 && (hdr[e - 1] == ' ' || hdr[e - 1] == '\t'))
				e--;
			*val = hdr + i + nl + 1;
			/* A quoted cookie value (RFC 6265 allows DQUOTEs around it). */
			if (e - (i + nl + 1) >= 2 && **val == '"' && hdr[e - 1] == '"') {
				(*val)++;
				e--;
			}
			return (int)(e - (size_t)(*val - hdr));
		}
		i = j + 1;
	}
	return -1;
}

/*
 * The token, first found wins: Authorization: Bearer, then ?access_token= (EventSource and
 * WebSocket in a browser cannot set headers), then the configured cookie.
 * @return its length (written to @p buf, NUL-terminated); 0 when there is none; -1 when something
 * is there but unusable (another scheme, too long), with @p why set.
 */
static int
find_token(struct lws *wsi, char *buf, size_t cap, const char **why)
{
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);

	if (n > 0) {
		char *p;
		size_t len;

		if ((size_t)n >= cap || lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
			*why = "the Authorization header is too long";
			return -1;
		}
		if (strncasecmp(buf, "bearer ", 7)) {
			*why = "the Authorization scheme must be Bearer";
			return -1;
		}
		for (p = buf + 7; *p == ' '; p++)
			;
		len = strlen(p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		memmove(buf, p, len);
		buf[len] = '\0';
		if (!len) {
			*why = "the Bearer token is empty";
			return -1;
		}
		return (int)len;
	}
	/* lws splits the query at '&' into fragments, already percent-decoded. */
	for (int i = 0; i < 256; i++) {
		int fl = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i);

		if (fl == 0) {
			char c[1];

			/* An empty fragment ("a=1&&b=2") copies nothing; a missing one fails. */
			if (lws_hdr_copy_fragment(wsi, c, 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
				break;
			continue;
		}
		if (fl < 13 || (size_t)fl >= cap)
			continue; /* too short to be access_token=..., or too long for any token */
		if (lws_hdr_copy_fragment(wsi, buf, (int)cap, WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
			break;
		if (memcmp(buf, "access_token=", 13))
			continue;
		if (fl == 13) {
			*why = "access_token is empty";
			return -1;
		}
		memmove(buf, buf + 13, (size_t)fl - 13 + 1);
		return fl - 13;
	}
	if (A.cfg->auth_cookie && (n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE)) > 0) {
		char *hdr = xmalloc((size_t)n + 1);
		const char *v;
		int vl = -1;

		if (lws_hdr_copy(wsi, hdr, n + 1, WSI_TOKEN_HTTP_COOKIE) >= 0)
			vl = cookie_value(hdr, strlen(hdr), A.cfg->auth_cookie, &v);
		if (vl > 0 && (size_t)vl < cap) {
			memcpy(buf, v, (size_t)vl);
			buf[vl] = '\0';
		} else if (vl > 0) {
			*why = "the token cookie is too long";
			vl = -1;
		} else {
			vl = 0;
		}
		free(hdr);
		return vl;
	}
	return 0;
}

/* ---- Verifying ----------------------------------------------------------------------------------------- */

static uint64_t
fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}

static void
cache_clear(struct cache_ent *c)
{
	free(c->tok);
	free(c->p.sub);
	gw_scope_free(&c->p.scope);
	memset(c, 0, sizeof(*c));
}

/* A verified principal for @p tok: from the cache, or verified now and cached. Borrowed: valid
 * until the next call. @return NULL with @p err set when the token is not acceptable. */
static const struct gw_principal *
verify_token(const char *tok, size_t len, char *err, size_t errsz)
{
	const struct gw_config *cfg = A.cfg;
	struct cache_ent *c = &A.cache[fnv1a(tok, len) & (CACHE_SLOTS - 1)];
	int64_t now = (int64_t)(gw_now_ms() / 1000);
	struct gw_jwt j;

	if (c->tok && c->len == len && !memcmp(c->tok, tok, len)) {
		if (c->p.exp <= now - (int64_t)cfg->auth_leeway_s) {
			snprintf(err, errsz, "the token has expired");
			cache_clear(c);
			return NULL;
		}
		if (c->has_nbf && c->nbf > now + (int64_t)cfg->auth_leeway_s) {
			snprintf(err, errsz, "the token is not valid yet (nbf)");
			return NULL;
		}
		return &c->p;
	}
	if (gw_jwt_parse(tok, len, &j, err, errsz))
		return NULL;
	if (gw_jwt_verify(A.keys, &j, tok, len, err, errsz) ||
	    gw_jwt_check_claims(&j, now, cfg->auth_leeway_s, cfg->auth_audience, err, errsz)) {
		gw_jwt_free(&j);
		return NULL;
	}
	if (len > CACHE_TOKEN_MAX) {
		/* Not cached: keep it in a slot of its own for the caller, replaced at the next call. */
		static struct cache_ent big;

		cache_clear(&big);
		c = &big;
	} else {
		cache_clear(c);
		c->tok = xmalloc(len);
		memcpy(c->tok, tok, len);
		c->len = len;
	}
	c->has_nbf = j.has_nbf;
	c->nbf = j.nbf;
	c->p.exp = j.exp;
	c->p.sub = j.sub;
	j.sub = NULL;
	c->p.scope = j.scope;
	memset(&j.scope, 0, sizeof(j.scope));
	gw_jwt_free(&j);
	return &c->p;
}

/* Error text goes into a quoted header parameter (WWW-Authenticate error_description): keep it to
 * printable ASCII without quotes or backslashes. Every other message put there is made of fixed
 * text and names that cannot hold those. */
static void
header_safe(char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = ' ';
}

static int
authenticate(struct gw *gw, struct lws *wsi, const struct gw_principal **out, struct gw_error *e)
{
	char tok[GW_JWT_MAX_LEN + 16], why[160];
	const char *problem = NULL;
	int n;

	*out = NULL;
	if (!A.keys)
		return 0;
	n = find_token(wsi, tok, sizeof(tok), &problem);
	if (n == 0) {
		gw->m.auth_unauthorized++;
		gw_error_set(e, 401, "unauthorized",
			     "a token is required: Authorization: Bearer, ?access_token=%s%s",
			     A.cfg->auth_cookie ? " or the cookie " : "",
			     A.cfg->auth_cookie ? A.cfg->auth_cookie : "");
		return -1;
	}
	if (n < 0) {
		gw->m.auth_unauthorized++;
		gw_error_set(e, 401, "invalid_token", "%s", problem);
		return -1;
	}
	why[0] = '\0';
	if (!(*out = verify_token(tok, (size_t)n, why, sizeof(why)))) {
		header_safe(why);
		gw->m.auth_unauthorized++;
		gw_error_set(e, 401, "invalid_token", "%s", why[0] ? why : "invalid token");
		LOG_DEBUG("token refused: %s", why);
		return -1;
	}
	return 0;
}

int
gw_auth_authenticate(struct gw *gw, struct lws *wsi, struct gw_principal **out, struct gw_error *e)
{
	const struct gw_principal *p;
	struct gw_principal *copy;

	*out = NULL;
	if (authenticate(gw, wsi, &p, e))
		return -1;
	if (!p)
		return 0;
	copy = xcalloc(1, sizeof(*copy));
	copy->exp = p->exp;
	copy->sub = p->sub ? xstrdup(p->sub) : NULL;
	gw_scope_copy(&copy->scope, &p->scope);
	*out = copy;
	return 0;
}

/* ---- Deciding -------------------------------------------------------------------------------------------- */

int
gw_auth_allow(struct gw *gw, const struct gw_principal *p, enum gw_auth_action a, const char *name,
	      struct gw_error *e)
{
	const struct gw_scope *s;
	int ok;

	if (!A.keys || a == GW_AUTH_NONE)
		return 0;
	if (!p) {
		gw->m.auth_unauthorized++;
		gw_error_set(e, 401, "unauthorized", "a token is required");
		return -1;
	}
	s = &p->scope;
	switch (a) {
	case GW_AUTH_CONNECT:
		return 0;
	case GW_AUTH_PUBLISH:
		ok = s->admin || gw_scope_any(s->publish, s->n_publish, name);
		break;
	case GW_AUTH_SUBSCRIBE:
		ok = s->admin || gw_scope_any(s->subscribe, s->n_subscribe, name);
		break;
	case GW_AUTH_CONSUME:
		ok = s->admin || gw_scope_any(s->consume, s->n_consume, name);
		break;
	case GW_AUTH_METRICS:
		ok = s->admin || s->metrics;
		break;
	case GW_AUTH_ADMIN:
	default:
		ok = s->admin;
		break;
	}
	if (ok)
		return 0;
	gw->m.auth_forbidden++;
	switch (a) {
	case GW_AUTH_PUBLISH:
		gw_error_set(e, 403, "forbidden", "the token may not publish to %s", name);
		break;
	case GW_AUTH_SUBSCRIBE:
		gw_error_set(e, 403, "forbidden", "the token may not read %s", name);
		break;
	case GW_AUTH_CONSUME:
		gw_error_set(e, 403, "forbidden", "the token may not consume from group %s", name);
		break;
	case GW_AUTH_METRICS:
		gw_error_set(e, 403, "forbidden", "/metrics needs a token with metrics or admin");
		break;
	default:
		gw_error_set(e, 403, "forbidden", "this needs an admin token");
		break;
	}
	return -1;
}

int
gw_auth_fail(struct gw *gw, struct lws *wsi, const struct gw_error *e, unsigned flags)
{
	char challenge[400];
	const char *const hdrs[] = { "www-authenticate:", challenge, NULL };
	struct gw_buf *out = gw_scratch();

	/* RFC 6750 3: no error attribute when no token came; invalid_token / insufficient_scope else. */
	if (e->status == 403)
		snprintf(challenge, sizeof(challenge),
			 "Bearer realm=\"litegate\", error=\"insufficient_scope\", error_description=\"%s\"",
			 e->message);
	else if (!strcmp(e->code, "invalid_token"))
		snprintf(challenge, sizeof(challenge),
			 "Bearer realm=\"litegate\", error=\"invalid_token\", error_description=\"%s\"",
			 e->message);
	else
		snprintf(challenge, sizeof(challenge), "Bearer realm=\"litegate\"");
	if (gw_reply_error(gw, wsi, out, e, NULL, hdrs, flags & ~GW_AUTH_UPGRADE))
		return -1;
	/* At CONFIRM_UPGRADE lws has not read the request's version yet and writes "HTTP/1.0"; an
	 * upgrade is always HTTP/1.1 (RFC 6455 4.1). */
	if ((flags & GW_AUTH_UPGRADE) && out->len > 9 && !memcmp(gw_buf_data(out), "HTTP/1.0 ", 9))
		gw_buf_data(out)[7] = '1';
	return gw_reply_send(wsi, out, flags & GW_REPLY_CLOSE);
}

int
gw_auth_http(struct gw *gw, struct lws *wsi, enum gw_auth_action a, const char *name,
	     unsigned flags, int64_t *exp, int *ret)
{
	const struct gw_principal *p;
	struct gw_error e;

	if (exp)
		*exp = 0;
	if (!A.keys || a == GW_AUTH_NONE)
		return 0;
	if (authenticate(gw, wsi, &p, &e) || gw_auth_allow(gw, p, a, name, &e)) {
		*ret = gw_auth_fail(gw, wsi, &e, flags);
		return 1;
	}
	if (exp)
		*exp = p->exp;
	return 0;
}

int
gw_auth_route(struct gw *gw, struct lws *wsi, struct gw_http_pss *pss, enum gw_route_kind kind,
	      enum gw_method m, const char *topic, unsigned flags, int *ret)
{
	enum gw_auth_action a = GW_AUTH_NONE;

	pss->auth_exp = 0;
	if (m == GW_M_OPTIONS)
		return 0; /* CORS preflights carry no credentials */
	switch (kind) {
	case GW_R_METRICS:
		a = GW_AUTH_METRICS;
		break;
	case GW_R_TOPIC:
		a = m == GW_M_DELETE ? GW_AUTH_ADMIN : GW_AUTH_SUBSCRIBE;
		break;
	case GW_R_MESSAGES:
		a = m == GW_M_POST ? GW_AUTH_PUBLISH : GW_AUTH_SUBSCRIBE;
		break;
	case GW_R_EVENTS:
		a = GW_AUTH_SUBSCRIBE;
		break;
	default:
		return 0; /* /healthz is public; /v1/ws is checked at its upgrade */
	}
	return gw_auth_http(gw, wsi, a, topic, flags, &pss->auth_exp, ret);
}

/* ---- Streams that outlive their token ------------------------------------------------------------------ */

static void
on_expire(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct gw_sub *sub = (struct gw_sub *)((char *)w - offsetof(struct gw_sub, expire_w));
	struct gw *gw = w->data;

	(void)loop;
	(void)revents;
	if (!sub->registered || sub->closing)
		return;
	sub->expired = 1;
	gw->m.auth_expired++;
	gw_sub_want_write(gw, sub);
}

void
gw_sub_expire_at(struct gw *gw, struct gw_sub *sub, int64_t exp)
{
	double left;

	if (!exp || !A.keys)
		return;
	left = (double)(exp + (int64_t)A.cfg->auth_leeway_s) - (double)gw_now_ms() / 1000.0;
	ev_timer_init(&sub->expire_w, on_expire, left > 0 ? left : 0, 0);
	sub->expire_w.data = gw;
	ev_timer_start(gw->loop, &sub->expire_w);
}
