/*
 * log.c - log sink: timestamped lines on stderr (the gateway's format, so both logs interleave
 * readably when scripts/run.sh runs them in one terminal).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int wk_log_level = WK_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
wk_log_emit(int level, const char *func, const char *fmt, ...)
{
	struct timespec ts;
	struct tm tm;
	char when[32], msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %-5s worker %s: %s\n", when, ts.tv_nsec / 1000000L,
		level_names[level < 0 ? 0 : level > 3 ? 3 : level], func, msg);
}

int
wk_log_level_parse(const char *s, int *out)
{
	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, level_names[i])) {
			*out = i;
			return 0;
		}
	}
	if (!strcmp(s, "warning")) {
		*out = WK_LOG_WARN;
		return 0;
	}
	return -1;
}
