/* names.c - the grammar of lite topic, parent, event and key names (see engine.h). */
#include "engine.h"
#include "names.h"

#include <string.h>

static int is_id_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '.' || c == ':' || c == '-';
}

int names_parent_check(const char *p, size_t len)
{
	if (len < 1 || len > ENG_PARENT_MAX || !(p[0] >= 'a' && p[0] <= 'z'))
		return ENG_EBADNAME;
	for (size_t i = 1; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return ENG_EBADNAME;
	}
	return 0;
}

int names_token_check(const char *p, size_t len, size_t max)
{
	if (len < 1 || len > max)
		return ENG_EBADNAME;
	for (size_t i = 0; i < len; i++)
		if (!is_id_char((unsigned char)p[i]))
			return ENG_EBADNAME;
	return 0;
}

int eng_topic_name_check(const char *topic, size_t len)
{
	const char *slash = memchr(topic, '/', len);
	if (!slash)
		return ENG_EBADNAME;
	size_t plen = (size_t)(slash - topic);
	if (names_parent_check(topic, plen))
		return ENG_EBADNAME;
	const char *id = slash + 1;
	size_t idlen = len - plen - 1;
	if (idlen < 1 || id[0] == '.')
		return ENG_EBADNAME;
	return names_token_check(id, idlen, ENG_ID_MAX);
}

int eng_event_name_check(const char *event, size_t len)
{
	return names_token_check(event, len, ENG_EVENT_MAX);
}
