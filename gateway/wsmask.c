/*
 * wsmask.c - the unmasked-frame finder (wsmask.h). Pure code.
 */
#include "wsmask.h"

#include <string.h>

void
gw_wsmask_init(struct gw_wsmask *t)
{
	memset(t, 0, sizeof(*t));
}

size_t
gw_wsmask_feed(struct gw_wsmask *t, const uint8_t *buf, size_t len)
{
	size_t i = 0;

	if (t->unmasked)
		return 0;
	while (i < len) {
		uint8_t b;

		if (t->payload_left) {
			uint64_t skip = t->payload_left < len - i ? t->payload_left : len - i;

			t->payload_left -= skip;
			i += (size_t)skip;
			continue;
		}
		b = buf[i];
		t->hdr_have++;
		if (t->hdr_have == 2) {
			uint8_t len7 = b & 0x7f;

			if (!(b & 0x80)) {
				t->unmasked = 1;
				return i;
			}
			t->hdr_need = (uint8_t)(2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4);
			t->length = len7 < 126 ? len7 : 0;
		} else if (t->hdr_have > 2 && t->hdr_have + 4 <= t->hdr_need) {
			/* An extended length byte, big-endian (lws refuses lengths of 2^63 and more). */
			t->length = (t->length << 8) | b;
		}
		i++;
		if (t->hdr_have == t->hdr_need) { /* after the masking key: the payload */
			t->payload_left = t->length;
			t->hdr_have = t->hdr_need = 0;
			t->length = 0;
		}
	}
	return len;
}
