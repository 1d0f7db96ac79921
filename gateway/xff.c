/*
 * xff.c - client addresses behind trusted reverse proxies (xff.h).
 */
#include "xff.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define ENTRY_MAX 64 /* "[v6 address]:65535" fits; anything longer is not an address */

static int
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* A port after an address: 1 to 5 digits. */
static int
is_port(const char *s, size_t len)
{
	if (len < 1 || len > 5)
		return 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
	}
	return 1;
}

static void
v4_mapped(const struct in_addr *a, uint8_t out[16])
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, a, 4);
}

int
gw_addr_parse(const char *s, size_t len, uint8_t out[16])
{
	char text[ENTRY_MAX + 1];
	const char *colon, *end;
	struct in_addr v4;
	struct in6_addr v6;

	while (len && is_blank(*s))
		s++, len--;
	while (len && is_blank(s[len - 1]))
		len--;
	if (!len || len > ENTRY_MAX || memchr(s, '\0', len))
		return -1;
	if (s[0] == '[') {
		/* "[v6]" or "[v6]:port" */
		if (!(end = memchr(s, ']', len)))
			return -1;
		if ((size_t)(end - s) + 1 != len &&
		    (end[1] != ':' || !is_port(end + 2, len - (size_t)(end - s) - 2)))
			return -1;
		memcpy(text, s + 1, (size_t)(end - s) - 1);
		text[end - s - 1] = '\0';
		if (inet_pton(AF_INET6, text, &v6) != 1)
			return -1;
		memcpy(out, &v6, 16);
		return 0;
	}
	colon = memchr(s, ':', len);
	if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - s) - 1)) {
		/* One colon: "a.b.c.d:port" (an IPv6 address has at least two). */
		if (!is_port(colon + 1, len - (size_t)(colon - s) - 1))
			return -1;
		len = (size_t)(colon - s);
		colon = NULL;
	}
	memcpy(text, s, len);
	text[len] = '\0';
	if (!colon && inet_pton(AF_INET, text, &v4) == 1) {
		v4_mapped(&v4, out);
		return 0;
	}
	if (colon && inet_pton(AF_INET6, text, &v6) == 1) {
		memcpy(out, &v6, 16);
		return 0;
	}
	return -1;
}

int
gw_cidr_parse(const char *s, size_t len, struct gw_cidr *out)
{
	const char *slash = memchr(s, '/', len);
	unsigned prefix = 0, max;
	int v4;

	if (gw_addr_parse(s, slash ? (size_t)(slash - s) : len, out->addr))
		return -1;
	v4 = !memcmp(out->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) && !memchr(s, ':', len);
	max = v4 ? 32 : 128;
	if (!slash) {
		prefix = max;
	} else {
		size_t n = len - (size_t)(slash - s) - 1;

		if (n < 1 || n > 3)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if (slash[1 + i] < '0' || slash[1 + i] > '9')
				return -1;
			prefix = prefix * 10 + (unsigned)(slash[1 + i] - '0');
		}
		if (prefix > max)
			return -1;
	}
	out->bits = v4 ? 96 + prefix : prefix;
	/* Clear the host bits, so matching compares only what the prefix names. */
	for (unsigned b = out->bits; b < 128; b++)
		out->addr[b / 8] &= (uint8_t)~(0x80u >> (b % 8));
	return 0;
}

int
gw_cidr_match(const struct gw_cidr *set, size_t n, const uint8_t addr[16])
{
	for (size_t i = 0; i < n; i++) {
		unsigned full = set[i].bits / 8, rest = set[i].bits % 8;

		if (memcmp(set[i].addr, addr, full))
			continue;
		if (rest && (addr[full] & (uint8_t)(0xff00u >> rest)) != set[i].addr[full])
			continue;
		return 1;
	}
	return 0;
}

int
gw_xff_client(const char *xff, size_t len, const struct gw_cidr *trusted, size_t n,
	      uint8_t out[16])
{
	size_t end = len;
	int found = 0;

	/* Right to left over the comma-separated entries. */
	for (;;) {
		size_t start = end;
		uint8_t a[16];

		while (start > 0 && xff[start - 1] != ',')
			start--;
		if (gw_addr_parse(xff + start, end - start, a))
			return found; /* malformed: stop at the last address we could believe */
		memcpy(out, a, 16);
		found = 1;
		if (!gw_cidr_match(trusted, n, a) || start == 0)
			return 1; /* the client, or (every entry trusted) the leftmost */
		end = start - 1;
	}
}

void
gw_addr_format(const uint8_t addr[16], char *out, size_t outsz)
{
	char text[GW_ADDR_TEXT_MAX];

	if (!memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
		inet_ntop(AF_INET, addr + 12, text, sizeof(text));
	else
		inet_ntop(AF_INET6, addr, text, sizeof(text));
	snprintf(out, outsz, "%s", text);
}
