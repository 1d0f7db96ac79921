/*
 * xff.h - client addresses behind trusted reverse proxies: address and CIDR parsing, and choosing
 * the client in an X-Forwarded-For list.
 *
 * Behind a proxy every request comes from the proxy's address, so per-client limits would count
 * the proxy. With limits.trusted_proxies set, a request whose peer is one of them is charged to the
 * address its X-Forwarded-For names instead. Only the proxies' own additions can be believed: a
 * client may send any X-Forwarded-For it likes, and each proxy appends the address it saw. So the
 * list is read from the right, skipping trusted proxies, and the first address that is not one is
 * the client (nginx's real_ip_recursive does the same). A malformed entry ends the walk: what lies
 * left of it was written by someone we cannot trust to write addresses.
 *
 * Addresses are 16 bytes: IPv6, with IPv4 as ::ffff:a.b.c.d (the form conn.c counts connections
 * by). Pure code over (buf, len), no lws: any thread, and the fuzz target drives it.
 */
#ifndef GW_XFF_H
#define GW_XFF_H

#include <stddef.h>
#include <stdint.h>

#define GW_ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN */

/* An address block: addr with its first bits bits significant (IPv4 /n is bits 96 + n). */
struct gw_cidr {
	uint8_t addr[16];
	unsigned bits;
};

/**
 * @brief Parse one address as proxies write it: "a.b.c.d", "a.b.c.d:port", an IPv6 address, or
 *        "[v6]" / "[v6]:port". Surrounding spaces and tabs are skipped.
 * @return 0, or -1 when @p s is not one address.
 */
int gw_addr_parse(const char *s, size_t len, uint8_t out[16]);

/** @brief Parse "addr" or "addr/prefix" (IPv4 prefix 0..32, IPv6 0..128). @return 0 or -1. */
int gw_cidr_parse(const char *s, size_t len, struct gw_cidr *out);

/** @brief Is @p addr inside one of the @p n blocks of @p set? */
int gw_cidr_match(const struct gw_cidr *set, size_t n, const uint8_t addr[16]);

/**
 * @brief Choose the client in an X-Forwarded-For value (several headers joined by commas): the
 *        rightmost entry that is not in @p trusted; if every entry is trusted, the leftmost.
 * @param[out] out the client, when found.
 * @return 1 when @p out was set, 0 when the value names no usable address (empty, or its
 *         rightmost entry is malformed): the request is then charged to the proxy itself.
 */
int gw_xff_client(const char *xff, size_t len, const struct gw_cidr *trusted, size_t n,
		  uint8_t out[16]);

/** @brief Write @p addr as text (IPv4-mapped ones as a.b.c.d) into @p out (GW_ADDR_TEXT_MAX). */
void gw_addr_format(const uint8_t addr[16], char *out, size_t outsz);

#endif /* GW_XFF_H */
