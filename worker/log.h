/*
 * log.h - the worker's log sink: level-checked macros that prefix __func__ (as the gateway's).
 *
 * Any thread. Each line is one fprintf to stderr, so lines from two sessions never interleave.
 */
#ifndef WK_LOG_H
#define WK_LOG_H

enum wk_log_level {
	WK_LOG_ERR = 0,
	WK_LOG_WARN,
	WK_LOG_INFO,
	WK_LOG_DEBUG,
};

/* Current verbosity; written once at startup, read by every thread afterwards. */
extern int wk_log_level;

void wk_log_emit(int level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The level is tested before the arguments are evaluated, so a disabled DEBUG line costs a compare. */
#define WK_LOG(lvl, ...)                                                                            \
	do {                                                                                        \
		if (wk_log_level >= (lvl))                                                          \
			wk_log_emit((lvl), __func__, __VA_ARGS__);                                  \
	} while (0)
#define LOG_ERR(...) WK_LOG(WK_LOG_ERR, __VA_ARGS__)
#define LOG_WARN(...) WK_LOG(WK_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) WK_LOG(WK_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) WK_LOG(WK_LOG_DEBUG, __VA_ARGS__)

/** @brief Parse "error", "warn", "info" or "debug". @return 0, or -1 if unknown. */
int wk_log_level_parse(const char *s, int *out);

#endif /* WK_LOG_H */
