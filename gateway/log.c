/*
 * log.c - log sink: timestamped lines on stderr, lws and engine output routed into them.
 *
 * Any thread (see log.h).
 */
#include "log.h"

#include <libwebsockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int gw_log_level = GW_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

static void
emit_line(int level, const char *func, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	char when[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %-5s %s: %s\n", when, ts.tv_nsec / 1000000L,
		level_names[level < 0 ? 0 : level > 3 ? 3 : level], func, msg);
}

void
gw_log_emit(int level, const char *func, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit_line(level, func, msg);
}

int
gw_log_level_parse(const char *s, int *out)
{
	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, level_names[i])) {
			*out = i;
			return 0;
		}
	}
	if (!strcmp(s, "warning")) {
		*out = GW_LOG_WARN;
		return 0;
	}
	return -1;
}

/* lws hands us whole lines ending in '\n'; strip it so our own line format stays one per line. */
/*
 * lws logs errors and warnings for much of what a client may send (the known ones are demoted
 * below; any other would let a client fill the log): at most LWS_LINES_PER_S of them a second are
 * written, and how many were dropped is said in the next second's first line. Service thread
 * (lws logs from it).
 */
#define LWS_LINES_PER_S 20

static int
lws_flood(void)
{
	static time_t second;
	static unsigned lines, dropped;
	time_t now = time(NULL);

	if (now != second) {
		if (dropped) {
			char msg[96];

			snprintf(msg, sizeof(msg), "%u more libwebsockets lines not logged (at most %d a "
				 "second are)", dropped, LWS_LINES_PER_S);
			emit_line(GW_LOG_WARN, "lws", msg);
		}
		second = now;
		lines = dropped = 0;
	}
	if (++lines <= LWS_LINES_PER_S)
		return 0;
	dropped++;
	return 1;
}

static void
lws_emit(int lws_level, const char *line)
{
	char msg[1024];
	size_t n = strlen(line);
	int level = GW_LOG_DEBUG;

	if (lws_level & LLL_ERR)
		level = GW_LOG_ERR;
	else if (lws_level & LLL_WARN)
		level = GW_LOG_WARN;
	else if (lws_level & (LLL_NOTICE | LLL_USER))
		level = GW_LOG_DEBUG; /* lws notices are chatty per connection: keep them at debug */
	/* lws_http_mark_sse() on HTTP/1.1 logs this as an error for every SSE stream, harmlessly
	 * (lws-performance.md lesson 5): keep it out of the error log. */
	if (strstr(line, "not h2 substream"))
		level = GW_LOG_DEBUG;
	/* A client's oversized head (a later request on a kept-alive or TLS connection: conn.c
	 * answers the first ones) is the client's problem: not for the error log, which a client
	 * could otherwise flood. */
	if (strstr(line, "Ran out of header data space") || strstr(line, "More hdr frags") ||
	    strstr(line, "Dropping header content before limit") || strstr(line, "frag index"))
		level = GW_LOG_DEBUG;
	if (level > gw_log_level)
		return;
	if (level <= GW_LOG_WARN && lws_flood())
		return;
	if (n >= sizeof(msg))
		n = sizeof(msg) - 1;
	memcpy(msg, line, n);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		n--;
	msg[n] = '\0';
	emit_line(level, "lws", msg);
}

void
gw_log_setup(int level)
{
	int lws_levels = LLL_ERR;

	gw_log_level = level;
	if (level >= GW_LOG_WARN)
		lws_levels |= LLL_WARN;
	if (level >= GW_LOG_DEBUG)
		lws_levels |= LLL_NOTICE | LLL_USER;
	lws_set_log_level(lws_levels, lws_emit);
}

void
gw_log_engine(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level <= gw_log_level)
		emit_line(level, "engine", msg);
}
