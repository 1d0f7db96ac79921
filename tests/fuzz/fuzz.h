/*
 * fuzz.h - what every libFuzzer target of litegate shares: the entry point's prototype and a check
 * macro for invariants.
 *
 * Each fuzz_<name>.c defines LLVMFuzzerTestOneInput. It is linked either with libFuzzer (clang,
 * -fsanitize=fuzzer: the fuzz_<name> binaries built by scripts/fuzz.sh) or with standalone_main.c
 * (any compiler: the fuzz_<name>_regress tests that replay the committed corpus and every crash
 * ever found). A broken invariant aborts, which both drivers report as a failure with the input.
 */
#ifndef LITEGATE_FUZZ_H
#define LITEGATE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): it must hold in release builds too (RelWithDebInfo defines NDEBUG). */
#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                    \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* memcmp that accepts NULL when n is 0: an empty gw_buf has no memory, and glibc's memcmp is
 * declared nonnull (UBSan checks it). */
static inline int
fuzz_mem_eq(const void *a, const void *b, size_t n)
{
	return n == 0 || !memcmp(a, b, n);
}

/* A small deterministic generator, so a target can derive split points or choices from its input
 * (the same input always takes the same path, which a regression replay needs). */
static inline uint64_t
fuzz_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* FNV-1a over the input: a seed for fuzz_mix that changes with every byte. */
static inline uint64_t
fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* Deepest container nesting, counting brackets outside strings (the input need not be valid JSON):
 * the targets compare with jansson only below the parser's depth limit. */
static inline size_t
fuzz_json_nesting(const char *p, size_t len)
{
	size_t depth = 0, max = 0;
	int in_str = 0;

	for (size_t i = 0; i < len; i++) {
		if (in_str) {
			if (p[i] == '\\')
				i++;
			else if (p[i] == '"')
				in_str = 0;
		} else if (p[i] == '"') {
			in_str = 1;
		} else if (p[i] == '[' || p[i] == '{') {
			max = ++depth > max ? depth : max;
		} else if ((p[i] == ']' || p[i] == '}') && depth) {
			depth--;
		}
	}
	return max;
}

#endif /* LITEGATE_FUZZ_H */
