/*
 * demo_model.c - the deterministic demo answer (see demo_model.h for the algorithm, which
 * tests/integration/test_worker.py reimplements: change both together).
 */
#include "demo_model.h"

#include <string.h>

#include "http.h"
#include "xalloc.h"

static const char *const OPENERS[] = {
	"Good question about {A}.",
	"Here is a short answer about {A}.",
	"Let us look at {A} step by step.",
	"{A} is worth a careful look.",
};

static const char *const BODIES[] = {
	"In short, {A} depends on how {B} is set up.",
	"Most people start with {B} and only later think about {C}.",
	"A simple way to picture {A} is as a stream of small pieces that arrive in order.",
	"The details of {B} matter less than getting the basics of {A} right.",
	"When {C} changes, {A} usually follows, so watch both.",
	"It helps to write down what you expect from {A} before you measure it.",
	"Nothing here needs special tools; patience with {B} goes a long way.",
	"If something looks wrong, check {C} first, since it is the usual suspect.",
};

static const char *const CLOSERS[] = {
	"I hope this helps.",
	"Ask again if you want more detail on {B}.",
	"That is the gist of it.",
};

#define N_OPENERS (sizeof(OPENERS) / sizeof(OPENERS[0]))
#define N_BODIES (sizeof(BODIES) / sizeof(BODIES[0]))
#define N_CLOSERS (sizeof(CLOSERS) / sizeof(CLOSERS[0]))

static const char *const STOP_WORDS[] = {
	"what",  "when",  "where", "which",  "that",   "this",   "with", "from", "have", "does",
	"about", "would", "could", "should", "your",   "there",  "their", "them", "they", "into",
	"some",  "tell",  "explain", "please", "like", "more",   "just", "know", "want", "need",
	"will",  "been",  "were",  "than",   "then",   "also",   "very", "much", "many", "make",
};

static const char *const DEFAULT_KEYWORDS[3] = { "your question", "the details", "the context" };

#define KW_MIN 4
#define KW_MAX 24

static uint64_t
fnv1a64(const char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3u;
	}
	return h;
}

static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15u);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
	return z ^ (z >> 31);
}

static int
word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int
is_stop_word(const char *w, size_t n)
{
	for (size_t i = 0; i < sizeof(STOP_WORDS) / sizeof(STOP_WORDS[0]); i++)
		if (strlen(STOP_WORDS[i]) == n && !memcmp(STOP_WORDS[i], w, n))
			return 1;
	return 0;
}

/* Up to three keywords of the prompt, lowercased, into kw[i] (KW_MAX + 1 bytes each). */
static int
keywords(const char *p, size_t len, char kw[3][KW_MAX + 1])
{
	int nk = 0;
	size_t i = 0;

	while (i < len && nk < 3) {
		size_t start, n;
		char w[KW_MAX + 1];
		int dup = 0;

		while (i < len && !word_byte((unsigned char)p[i]))
			i++;
		start = i;
		while (i < len && word_byte((unsigned char)p[i]))
			i++;
		n = i - start;
		if (n < KW_MIN || n > KW_MAX)
			continue;
		for (size_t k = 0; k < n; k++) {
			char c = p[start + k];

			w[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		w[n] = '\0';
		if (is_stop_word(w, n))
			continue;
		for (int k = 0; k < nk; k++)
			if (!strcmp(kw[k], w))
				dup = 1;
		if (!dup)
			memcpy(kw[nk++], w, n + 1);
	}
	return nk;
}

/* Append @p tmpl with {A}, {B}, {C} filled in; uppercase an initial ASCII lowercase letter. */
static void
put_sentence(struct wk_buf *b, const char *tmpl, const char *const slot[3])
{
	size_t start;

	if (b->len)
		wk_buf_append(b, " ", 1);
	start = b->len;
	for (const char *t = tmpl; *t; t++) {
		if (t[0] == '{' && t[1] >= 'A' && t[1] <= 'C' && t[2] == '}') {
			wk_buf_puts(b, slot[t[1] - 'A']);
			t += 2;
		} else {
			wk_buf_append(b, t, 1);
		}
	}
	if (b->p[start] >= 'a' && b->p[start] <= 'z')
		b->p[start] = (char)(b->p[start] - 'a' + 'A');
}

void
wk_demo_generate(const char *prompt, size_t len, uint64_t seed, struct wk_demo_answer *out)
{
	char kw[3][KW_MAX + 1];
	const char *slot[3];
	int used[N_BODIES] = { 0 };
	struct wk_buf b = { 0 };
	uint64_t state = fnv1a64(prompt, len) ^ (seed * 0x9E3779B97F4A7C15u);
	size_t n_body, n;
	int nk = keywords(prompt, len, kw);

	for (int i = 0; i < 3; i++)
		slot[i] = i < nk ? kw[i] : DEFAULT_KEYWORDS[i];
	put_sentence(&b, OPENERS[splitmix64(&state) % N_OPENERS], slot);
	n_body = 2 + (size_t)(splitmix64(&state) % 3);
	for (size_t s = 0; s < n_body; s++) {
		size_t k = (size_t)(splitmix64(&state) % N_BODIES);

		while (used[k])
			k = (k + 1) % N_BODIES;
		used[k] = 1;
		put_sentence(&b, BODIES[k], slot);
	}
	put_sentence(&b, CLOSERS[splitmix64(&state) % N_CLOSERS], slot);

	/* Tokens: cut before every space. */
	n = 1;
	for (size_t i = 1; i < b.len; i++)
		if (b.p[i] == ' ')
			n++;
	out->text = b.p;
	out->len = b.len;
	out->n_tokens = n;
	out->tok_off = xmalloc((n + 1) * sizeof(*out->tok_off));
	out->tok_off[0] = 0;
	n = 1;
	for (size_t i = 1; i < b.len; i++)
		if (b.p[i] == ' ')
			out->tok_off[n++] = i;
	out->tok_off[n] = b.len;
}

void
wk_demo_answer_free(struct wk_demo_answer *a)
{
	free(a->text);
	free(a->tok_off);
	memset(a, 0, sizeof(*a));
}

const char *
wk_demo_token(const struct wk_demo_answer *a, size_t i, size_t *len)
{
	*len = a->tok_off[i + 1] - a->tok_off[i];
	return a->text + a->tok_off[i];
}
