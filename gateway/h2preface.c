/*
 * h2preface.c - the server's first SETTINGS frame without extended CONNECT (h2preface.h). Pure.
 */
#include "h2preface.h"

#include <string.h>

/* The payload length of the SETTINGS frame at @p buf's start (h2preface.h), or -1. */
static long
settings_payload(const uint8_t *buf, size_t len)
{
	size_t n;

	if (len < GW_H2_FRAME_HEADER)
		return -1;
	n = (size_t)buf[0] << 16 | (size_t)buf[1] << 8 | buf[2];
	if (buf[3] != GW_H2_FRAME_SETTINGS || (buf[4] & GW_H2_FLAG_ACK))
		return -1;
	if ((buf[5] & 0x7f) | buf[6] | buf[7] | buf[8]) /* the stream id's reserved bit is ignored */
		return -1;
	if (n % GW_H2_SETTING_LEN || n > len - GW_H2_FRAME_HEADER)
		return -1;
	return (long)n;
}

/*
 * The parameters of the frame at @p buf's start that offer extended CONNECT; with @p out (@p buf
 * itself, writable), their values set to 0 there.
 */
static int
walk(const uint8_t *buf, size_t len, uint8_t *out)
{
	long n = settings_payload(buf, len);
	int found = 0;

	if (n < 0)
		return -1;
	for (size_t i = GW_H2_FRAME_HEADER; i < GW_H2_FRAME_HEADER + (size_t)n; i += GW_H2_SETTING_LEN) {
		const uint8_t *p = buf + i;

		if ((p[0] << 8 | p[1]) != GW_H2_SETTINGS_ENABLE_CONNECT_PROTOCOL)
			continue;
		if (!(p[2] | p[3] | p[4] | p[5]))
			continue; /* 0 already */
		found++;
		if (out)
			memset(out + i + 2, 0, 4);
	}
	return found;
}

int
gw_h2_preface_scan(const uint8_t *buf, size_t len)
{
	return walk(buf, len, NULL);
}

int
gw_h2_preface_no_connect(uint8_t *buf, size_t len)
{
	return walk(buf, len, buf);
}
