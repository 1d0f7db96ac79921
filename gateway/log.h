/*
 * log.h - the gateway's one log sink (Redis serverLog): level-checked macros that prefix __func__.
 *
 * Any thread: the engine's writer thread logs through gw_log_engine(). Each line is one fprintf
 * to stderr, which POSIX makes atomic per call, so lines from two threads never interleave.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level {
	GW_LOG_ERR = 0,
	GW_LOG_WARN,
	GW_LOG_INFO,
	GW_LOG_DEBUG,
};

/* Current verbosity; written once at startup, read by every thread afterwards. */
extern int gw_log_level;

void gw_log_emit(int level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The level is tested before the arguments are evaluated, so a disabled DEBUG line costs a compare. */
#define GW_LOG(lvl, ...)                                                                            \
	do {                                                                                        \
		if (gw_log_level >= (lvl))                                                          \
			gw_log_emit((lvl), __func__, __VA_ARGS__);                                  \
	} while (0)
#define LOG_ERR(...) GW_LOG(GW_LOG_ERR, __VA_ARGS__)
#define LOG_WARN(...) GW_LOG(GW_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) GW_LOG(GW_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) GW_LOG(GW_LOG_DEBUG, __VA_ARGS__)

/** @brief Parse "error", "warn", "info" or "debug". @return 0, or -1 if unknown. */
int gw_log_level_parse(const char *s, int *out);

/** @brief Set the level and route libwebsockets' own log lines into this sink at a matching level. */
void gw_log_setup(int level);

/** @brief eng_log_fn adapter: the engine never prints, it hands lines to the host. */
void gw_log_engine(void *ctx, int level, const char *msg);

#endif /* GW_LOG_H */
