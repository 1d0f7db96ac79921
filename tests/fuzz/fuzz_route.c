/*
 * fuzz_route.c - libFuzzer target for the HTTP API's URL space (gateway/route.c): path -> route,
 * query string -> parameters, and the name rules.
 *
 * Input: "<path>?<query>" (no '?': all path, empty query), as http.c passes them after lws has
 * percent-decoded both. Invariants checked, beyond "does not crash":
 *  - a topic route without a bad name carries a topic the engine accepts (eng_topic_name_check),
 *    and that topic, put back into the URL template of its kind, gives the exact input path;
 *  - every valid topic, put into each template, is routed back to itself (no valid name refused);
 *  - methods and Allow agree with the kind (OPTIONS always; nothing for no route);
 *  - the gateway's name rules equal the engine's, byte for byte (they answer 400 before queueing,
 *    so a mismatch is either a 400 for a valid name or an engine error for one we let through);
 *  - gw_parse_u64 equals a 128-bit reference; a query parameter given once parses to its value.
 */
#include <string.h>

#include <engine.h>

#include "fuzz.h"
#include "names.h"
#include "route.h"

static const char *
suffix_of(enum gw_route_kind k)
{
	return k == GW_R_MESSAGES ? "/messages" : k == GW_R_EVENTS ? "/events" : "";
}

static int
is_topic_kind(enum gw_route_kind k)
{
	return k == GW_R_TOPIC || k == GW_R_MESSAGES || k == GW_R_EVENTS;
}

/* Does path[0..len) equal a .. b .. c? */
static int
eq3(const char *path, size_t len, const char *a, const char *b, size_t blen, const char *c)
{
	size_t al = strlen(a), cl = strlen(c);

	return len == al + blen + cl && !memcmp(path, a, al) && !memcmp(path + al, b, blen) &&
	       !memcmp(path + al + blen, c, cl);
}

static void
check_route(const char *path, size_t len)
{
	struct gw_route r;
	enum gw_route_kind k = gw_route_parse(path, len, &r);
	unsigned m = gw_route_methods(k);

	FUZZ_CHECK(k == r.kind);
	FUZZ_CHECK(gw_route_allow(k) != NULL);
	FUZZ_CHECK((k == GW_R_NOTFOUND) == (m == 0));
	FUZZ_CHECK(k == GW_R_NOTFOUND || (m & GW_M_OPTIONS));
	if (!is_topic_kind(k)) {
		FUZZ_CHECK(r.bad == NULL && r.topic[0] == '\0');
		if (k == GW_R_HEALTHZ)
			FUZZ_CHECK(len == 8 && !memcmp(path, "/healthz", 8));
		if (k == GW_R_METRICS)
			FUZZ_CHECK(len == 8 && !memcmp(path, "/metrics", 8));
		if (k == GW_R_WS)
			FUZZ_CHECK(len == 6 && !memcmp(path, "/v1/ws", 6));
		return;
	}
	if (r.bad) {
		FUZZ_CHECK(r.topic[0] == '\0');
		return;
	}
	{
		size_t tl = strnlen(r.topic, sizeof(r.topic));
		const char *id = r.topic + r.parent_len + 1;
		size_t idl = tl - r.parent_len - 1;

		FUZZ_CHECK(tl <= ENG_TOPIC_MAX);
		FUZZ_CHECK(eng_topic_name_check(r.topic, tl) == 0);
		FUZZ_CHECK(gw_name_topic_ok(r.topic, tl));
		FUZZ_CHECK(r.parent_len < tl && r.topic[r.parent_len] == '/');
		FUZZ_CHECK(memchr(r.topic, '/', r.parent_len) == NULL);
		/* The route names exactly what the path says: rebuild the path from it. */
		FUZZ_CHECK(eq3(path, len, "/v1/topics/", r.topic, tl, suffix_of(k)) ||
			   (r.parent_len == strlen(GW_SESSION_PARENT) &&
			    !memcmp(r.topic, GW_SESSION_PARENT, r.parent_len) &&
			    eq3(path, len, "/v1/sessions/", id, idl, suffix_of(k))));
	}
}

/* The converse: a topic the engine accepts is routed back to itself under every template. */
static void
check_valid_topic(const char *t, size_t tl)
{
	static const enum gw_route_kind kinds[] = { GW_R_TOPIC, GW_R_MESSAGES, GW_R_EVENTS };
	char path[ENG_TOPIC_MAX + 64];
	const size_t sp = sizeof(GW_SESSION_PARENT); /* "chatbot/" */
	const char *slash = memchr(t, '/', tl), *id;
	size_t idl;
	struct gw_route r;

	if (eng_topic_name_check(t, tl) != 0)
		return;
	id = slash + 1;
	idl = tl - (size_t)(id - t);
	for (size_t i = 0; i < 3; i++) {
		const char *suffix = suffix_of(kinds[i]);
		int n = snprintf(path, sizeof(path), "/v1/topics/%.*s%s", (int)tl, t, suffix);

		FUZZ_CHECK(gw_route_parse(path, (size_t)n, &r) == kinds[i]);
		FUZZ_CHECK(r.bad == NULL && strlen(r.topic) == tl && !memcmp(r.topic, t, tl));
		n = snprintf(path, sizeof(path), "/v1/sessions/%.*s%s", (int)idl, id, suffix);
		FUZZ_CHECK(gw_route_parse(path, (size_t)n, &r) == kinds[i]);
		FUZZ_CHECK(r.bad == NULL && !strncmp(r.topic, GW_SESSION_PARENT "/", sp));
		FUZZ_CHECK(strlen(r.topic + sp) == idl && !memcmp(r.topic + sp, id, idl));
	}
}

/* The gateway's early name checks must be the engine's rules exactly. */
static void
check_names(const char *s, size_t n)
{
	FUZZ_CHECK(gw_name_topic_ok(s, n) == (eng_topic_name_check(s, n) == 0));
	FUZZ_CHECK(gw_name_event_ok(s, n) == (eng_event_name_check(s, n) == 0));
	FUZZ_CHECK(gw_name_parent_ok(s, n) == (names_parent_check(s, n) == 0));
	FUZZ_CHECK(gw_name_key_ok(s, n) == (names_token_check(s, n, ENG_KEY_MAX) == 0));
	FUZZ_CHECK(gw_name_id_ok(s, n) ==
		   (names_token_check(s, n, ENG_ID_MAX) == 0 && s[0] != '.'));
}

/* Strict decimal: 1..20 digits, no overflow. */
static int
ref_u64(const char *s, size_t len, uint64_t *out)
{
	unsigned __int128 v = 0;

	if (len < 1 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > UINT64_MAX)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static void
check_u64(const char *s, size_t n)
{
	uint64_t a = 7, b = 9;
	int ra = gw_parse_u64(s, n, &a), rb = ref_u64(s, n, &b);

	FUZZ_CHECK(ra == rb);
	FUZZ_CHECK(ra ? a == 7 : a == b); /* out set only on success */
}

/* Where key=value appears in a query: count of occurrences and the last value. */
static size_t
find_param(const char *s, size_t len, const char *key, const char **v, size_t *vlen)
{
	size_t kl = strlen(key), count = 0, i = 0;

	while (i <= len) {
		size_t j = i;

		while (j < len && s[j] != '&')
			j++;
		/* s[i..j) is one parameter */
		if (j - i >= kl && !memcmp(s + i, key, kl) && (j - i == kl || s[i + kl] == '=')) {
			count++;
			*v = j - i == kl ? s + j : s + i + kl + 1;
			*vlen = j - i == kl ? 0 : j - i - kl - 1;
		}
		i = j + 1;
	}
	return count;
}

static void
check_query(const char *s, size_t len)
{
	struct gw_query q;
	int rc = gw_query_parse(s, len, &q);
	static const char *const keys[] = { "from", "last_event_id", "limit" };
	const char *bv = NULL;
	size_t bvl = 0;

	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc) {
		/* The parameter named as malformed is one the query has. */
		FUZZ_CHECK(q.bad && find_param(s, len, q.bad, &bv, &bvl) > 0);
		return;
	}
	FUZZ_CHECK(q.bad == NULL);
	for (size_t k = 0; k < 3; k++) {
		const char *v = NULL;
		size_t vl = 0, n = find_param(s, len, keys[k], &v, &vl);
		int has = k == 0 ? q.has_from : k == 1 ? q.has_last_event_id : q.has_limit;
		uint64_t got = k == 0 ? q.from : k == 1 ? q.last_event_id : q.limit, want = 0;

		FUZZ_CHECK(has == (n > 0));
		if (n != 1)
			continue; /* repeated: only "it was seen" is defined */
		if (k == 0 && vl == 4 && !memcmp(v, "tail", 4)) {
			FUZZ_CHECK(q.from_tail);
			continue;
		}
		FUZZ_CHECK(ref_u64(v, vl, &want) == 0 && got == want);
		if (k == 0)
			FUZZ_CHECK(!q.from_tail);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *qm = memchr(s, '?', size);
	size_t plen = qm ? (size_t)(qm - s) : size;

	check_route(s, plen);
	check_query(qm ? qm + 1 : s + size, qm ? size - plen - 1 : 0);
	check_valid_topic(s, plen);
	check_names(s, size);
	check_u64(s, size);
	return 0;
}
