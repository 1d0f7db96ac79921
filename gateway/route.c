/*
 * route.c - URL space, query parameters and name rules. Pure code (see route.h).
 */
#include "route.h"

#include <string.h>

static int
is_idch(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == ':' || c == '-';
}

static int
all_idch(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_idch((unsigned char)s[i]))
			return 0;
	return 1;
}

int
gw_name_parent_ok(const char *s, size_t len)
{
	if (len < 1 || len > ENG_PARENT_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int
gw_name_id_ok(const char *s, size_t len)
{
	return len >= 1 && len <= ENG_ID_MAX && s[0] != '.' && all_idch(s, len);
}

int
gw_name_event_ok(const char *s, size_t len)
{
	return len >= 1 && len <= ENG_EVENT_MAX && all_idch(s, len);
}

int
gw_name_key_ok(const char *s, size_t len)
{
	return len >= 1 && len <= ENG_KEY_MAX && all_idch(s, len);
}

int
gw_name_topic_ok(const char *s, size_t len)
{
	const char *slash = memchr(s, '/', len);

	if (!slash)
		return 0;
	return gw_name_parent_ok(s, (size_t)(slash - s)) &&
	       gw_name_id_ok(slash + 1, len - (size_t)(slash - s) - 1);
}

static int
seg_is(const char *seg, size_t n, const char *lit)
{
	return n == strlen(lit) && !memcmp(seg, lit, n);
}

static enum gw_route_kind
set_topic(struct gw_route *out, const char *parent, size_t plen, const char *id, size_t ilen,
	  enum gw_route_kind kind)
{
	out->kind = kind;
	if (!gw_name_parent_ok(parent, plen)) {
		out->bad = "malformed parent name: [a-z][a-z0-9_-]{0,31}";
		return kind;
	}
	if (!gw_name_id_ok(id, ilen)) {
		out->bad = "malformed topic id: [A-Za-z0-9_.:-]{1,128}, not starting with '.'";
		return kind;
	}
	memcpy(out->topic, parent, plen);
	out->topic[plen] = '/';
	memcpy(out->topic + plen + 1, id, ilen);
	out->topic[plen + 1 + ilen] = '\0';
	out->parent_len = plen;
	return kind;
}

#define MAX_SEGS 4

enum gw_route_kind
gw_route_parse(const char *path, size_t len, struct gw_route *out)
{
	const char *seg[MAX_SEGS], *p, *end = path + len;
	size_t seglen[MAX_SEGS], n = 0, first;
	enum gw_route_kind tail = GW_R_TOPIC;

	memset(out, 0, sizeof(*out));
	if (len == 8 && !memcmp(path, "/healthz", 8))
		return out->kind = GW_R_HEALTHZ;
	if (len == 8 && !memcmp(path, "/metrics", 8))
		return out->kind = GW_R_METRICS;
	if (len < 4 || memcmp(path, "/v1/", 4))
		return out->kind = GW_R_NOTFOUND;
	/* Split what follows "/v1/" into segments; an empty one (a trailing or doubled slash) is no route. */
	p = path + 4;
	for (;;) {
		const char *e = memchr(p, '/', (size_t)(end - p));

		if (!e)
			e = end;
		if (e == p || n == MAX_SEGS)
			return out->kind = GW_R_NOTFOUND;
		seg[n] = p;
		seglen[n++] = (size_t)(e - p);
		if (e == end)
			break;
		p = e + 1;
	}
	if (n == 1 && seg_is(seg[0], seglen[0], "ws"))
		return out->kind = GW_R_WS;
	if (seg_is(seg[0], seglen[0], "topics"))
		first = 1;
	else if (seg_is(seg[0], seglen[0], "sessions"))
		first = 0; /* the parent is implied: ids start at segment 1 */
	else
		return out->kind = GW_R_NOTFOUND;
	/* topics: parent, id [, tail]; sessions: id [, tail] */
	if (n != first + 2 && n != first + 3)
		return out->kind = GW_R_NOTFOUND;
	if (n == first + 3) {
		if (seg_is(seg[n - 1], seglen[n - 1], "messages"))
			tail = GW_R_MESSAGES;
		else if (seg_is(seg[n - 1], seglen[n - 1], "events"))
			tail = GW_R_EVENTS;
		else
			return out->kind = GW_R_NOTFOUND;
	}
	if (first)
		return set_topic(out, seg[1], seglen[1], seg[2], seglen[2], tail);
	return set_topic(out, GW_SESSION_PARENT, strlen(GW_SESSION_PARENT), seg[1], seglen[1], tail);
}

unsigned
gw_route_methods(enum gw_route_kind kind)
{
	switch (kind) {
	case GW_R_TOPIC:
		return GW_M_GET | GW_M_DELETE | GW_M_OPTIONS;
	case GW_R_MESSAGES:
		return GW_M_GET | GW_M_POST | GW_M_OPTIONS;
	case GW_R_EVENTS:
	case GW_R_WS:
	case GW_R_HEALTHZ:
	case GW_R_METRICS:
		return GW_M_GET | GW_M_OPTIONS;
	default:
		return 0;
	}
}

const char *
gw_route_allow(enum gw_route_kind kind)
{
	switch (kind) {
	case GW_R_TOPIC:
		return "GET, DELETE, OPTIONS";
	case GW_R_MESSAGES:
		return "GET, POST, OPTIONS";
	default:
		return "GET, OPTIONS";
	}
}

int
gw_parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len < 1 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int
gw_query_parse(const char *s, size_t len, struct gw_query *q)
{
	const char *p = s, *end = s + len;

	memset(q, 0, sizeof(*q));
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *eq, *v;
		size_t klen, vlen;

		if (!amp)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		klen = (size_t)((eq ? eq : amp) - p);
		v = eq ? eq + 1 : amp;
		vlen = (size_t)(amp - v);
		if (klen == 4 && !memcmp(p, "from", 4)) {
			q->has_from = 1;
			if (vlen == 4 && !memcmp(v, "tail", 4)) {
				q->from_tail = 1;
			} else if (gw_parse_u64(v, vlen, &q->from)) {
				q->bad = "from";
				return -1;
			}
		} else if (klen == 13 && !memcmp(p, "last_event_id", 13)) {
			q->has_last_event_id = 1;
			if (gw_parse_u64(v, vlen, &q->last_event_id)) {
				q->bad = "last_event_id";
				return -1;
			}
		} else if (klen == 5 && !memcmp(p, "limit", 5)) {
			q->has_limit = 1;
			if (gw_parse_u64(v, vlen, &q->limit)) {
				q->bad = "limit";
				return -1;
			}
		} else if (klen == 15 && !memcmp(p, "expected_offset", 15)) {
			q->has_expected_offset = 1;
			if (gw_parse_u64(v, vlen, &q->expected_offset)) {
				q->bad = "expected_offset";
				return -1;
			}
		} else if (klen == 8 && !memcmp(p, "priority", 8)) {
			uint64_t pv;

			q->has_priority = 1;
			if (gw_parse_u64(v, vlen, &pv) || pv > ENG_PRIORITY_MAX) {
				q->bad = "priority";
				return -1;
			}
			q->priority = (uint8_t)pv;
		}
		p = amp < end ? amp + 1 : end;
	}
	return 0;
}
