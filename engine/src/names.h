/* names.h - name grammar helpers shared inside the engine. Pure functions, any thread. */
#ifndef LITEGATE_NAMES_H
#define LITEGATE_NAMES_H
#include <stddef.h>

/** @brief 0 if [a-z][a-z0-9_-]{0,31}, else ENG_EBADNAME. */
int names_parent_check(const char *p, size_t len);
/** @brief 0 if 1..max of [A-Za-z0-9_.:-], else ENG_EBADNAME. */
int names_token_check(const char *p, size_t len, size_t max);
#endif
