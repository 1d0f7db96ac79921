/*
 * gwtoken.h - the bearer token the worker shows the gateway (auth.mode "jwt", docs/security.md).
 *
 * From the environment variable LITEGATE_TOKEN, or from a file (--token-file) that is read again
 * whenever it changes, so a sidecar or a cron job can rotate a short-lived token under a running
 * worker without a restart. Only requests to the gateway carry it; the upstream model server gets
 * its own key (--api-key-env).
 *
 * Threads: wk_gwtoken_init() once from main before any thread starts; wk_gwtoken_apply() from any
 * thread (a mutex guards the current token).
 */
#ifndef WK_GWTOKEN_H
#define WK_GWTOKEN_H

#include <curl/curl.h>
#include <stddef.h>

/**
 * @brief Take the token from @p file (a path, or NULL) or else from $LITEGATE_TOKEN (may be unset:
 *        no token). A file must be readable and hold one token now.
 * @return 0, or -1 with @p err naming the problem.
 */
int wk_gwtoken_init(const char *file, char *err, size_t errsz);

/** @brief Make @p c send "Authorization: Bearer <token>" (nothing when there is no token). */
void wk_gwtoken_apply(CURL *c);

void wk_gwtoken_cleanup(void);

#endif /* WK_GWTOKEN_H */
