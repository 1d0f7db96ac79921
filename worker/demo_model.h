/*
 * demo_model.h - the built-in demo "model": a deterministic answer to a prompt, cut into tokens.
 *
 * A pure function: the same prompt bytes and seed give the same tokens on every machine and run,
 * with no I/O and no global state, so tests (tests/unit/worker/demo_model_test.c, and the Python
 * port in tests/integration/test_worker.py) know the exact text that must reach the browser.
 * Any thread.
 *
 * The algorithm, which the Python port must follow byte for byte:
 *  1. state = fnv1a64(prompt) XOR (seed * 0x9E3779B97F4A7C15); rnd() is splitmix64 over state.
 *  2. Keywords: the prompt's words, a word being a maximal run of ASCII letters and digits and
 *     bytes >= 0x80 (so UTF-8 stays whole), ASCII-lowercased; kept if 4..24 bytes long, not a stop
 *     word and not seen before; the first three kept are A, B, C. Missing ones default to
 *     "your question", "the details" and "the context".
 *  3. Sentences: OPENERS[rnd() % 4]; then 2 + rnd() % 3 body sentences, each BODIES[rnd() % 8]
 *     moved forward (mod 8) to the next one not used yet; then CLOSERS[rnd() % 3]. {A}, {B}, {C}
 *     are replaced by the keywords, and a sentence starting with an ASCII lowercase letter gets it
 *     uppercased. Sentences are joined by one space.
 *  4. Tokens: the text cut before every space, so each token but the first starts with its space.
 */
#ifndef WK_DEMO_MODEL_H
#define WK_DEMO_MODEL_H

#include <stddef.h>
#include <stdint.h>

/* An answer: its text and where each token starts in it. */
struct wk_demo_answer {
	char *text;       /* the whole answer, NUL-terminated; owned */
	size_t len;       /* strlen(text) */
	size_t *tok_off;  /* token i is text[tok_off[i] .. tok_off[i+1]); n_tokens + 1 entries; owned */
	size_t n_tokens;  /* at least 1 */
};

/**
 * @brief The demo answer to @p prompt (any bytes, @p len of them) for @p seed.
 * @param[out] out filled; release with wk_demo_answer_free().
 */
void wk_demo_generate(const char *prompt, size_t len, uint64_t seed, struct wk_demo_answer *out);

/** @brief Release what wk_demo_generate() filled. Accepts a zeroed struct. */
void wk_demo_answer_free(struct wk_demo_answer *a);

/** @brief Token @p i's bytes (borrowed from @p a) and length. */
const char *wk_demo_token(const struct wk_demo_answer *a, size_t i, size_t *len);

#endif /* WK_DEMO_MODEL_H */
