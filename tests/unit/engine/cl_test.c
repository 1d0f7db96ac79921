/* cl_test.c - the CommitLog: record framing, torn tails at every byte, CRC, segment rolling. */
#include "test_util.h"

#include "../../../engine/src/cl.h"
#include "../../../engine/src/crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

static int count_visit(void *ctx, uint64_t pos, const cl_rec *rec)
{
	(void)pos;
	(void)rec;
	++*(int *)ctx;
	return 0;
}

static void test_encode_decode(void **state)
{
	(void)state;
	uint8_t buf[256];
	cl_encode(buf, CL_REC_MSG, 7, 42, 1234, "token", 5, "k1", 2, "hello", 5);
	cl_rec r;
	assert_int_equal(cl_decode(buf, cl_rec_size(5, 2, 5), &r), 0);
	assert_int_equal(r.topic_id, 7);
	assert_int_equal(r.offset, 42);
	assert_int_equal(r.time_ms, 1234);
	assert_memory_equal(r.event, "token", 5);
	assert_memory_equal(r.key, "k1", 2);
	assert_memory_equal(r.payload, "hello", 5);
	/* Every prefix is "incomplete", never a record. */
	for (size_t i = 0; i < cl_rec_size(5, 2, 5); i++)
		assert_int_equal(cl_decode(buf, i, &r), 1);
	/* Every single flipped byte is caught (header by framing/CRC, body by CRC). */
	for (size_t i = 0; i < cl_rec_size(5, 2, 5); i++) {
		buf[i] ^= 0x40;
		assert_int_not_equal(cl_decode(buf, cl_rec_size(5, 2, 5), &r), 0);
		buf[i] ^= 0x40;
	}
}

/* Byte 45 holds the message priority (0 = none, else priority + 1). A record written before it
 * existed (byte 45 zero) decodes as "none"; a value above 10, or a non-zero byte 46/47, is refused
 * as corruption even with a matching CRC, like every other impossible header field. */
static void test_priority_byte(void **state)
{
	(void)state;
	uint8_t buf[256];
	size_t size = cl_rec_size(5, 2 + 2, 5);
	cl_rec r;
	for (uint8_t p = 0; p <= CL_PRIO_STORED_MAX; p++) {
		cl_encode_rk(buf, CL_REC_MSG, 7, 42, 1234, "token", 5, "k1", 2, "rk", 2, p, "hello", 5);
		assert_int_equal(buf[45], p);
		assert_int_equal(buf[46] | buf[47], 0);
		assert_int_equal(cl_decode(buf, size, &r), 0);
		assert_int_equal(r.prio, p);
		assert_int_equal(r.rkey_len, 2);
		assert_memory_equal(r.payload, "hello", 5);
	}
	/* The old writer: no priority argument at all. */
	cl_encode(buf, CL_REC_MSG, 7, 42, 1234, "token", 5, "k1", 2, "hello", 5);
	assert_int_equal(cl_decode(buf, cl_rec_size(5, 2, 5), &r), 0);
	assert_int_equal(r.prio, CL_PRIO_NONE);
	/* Impossible values, with the CRC made right so only the field check can catch them. */
	for (int byte = 45; byte <= 47; byte++) {
		cl_encode(buf, CL_REC_MSG, 7, 42, 1234, "token", 5, "k1", 2, "hello", 5);
		buf[byte] = byte == 45 ? CL_PRIO_STORED_MAX + 1 : 1;
		uint32_t crc = crc32c_extend(0, buf + 12, cl_rec_size(5, 2, 5) - 12);
		memcpy(buf + 8, &crc, 4);
		assert_int_equal(cl_decode(buf, cl_rec_size(5, 2, 5), &r), ENG_ECORRUPT);
	}
}

/* Write three records, then cut the file at every byte inside the last: reopening must keep
 * exactly the first two and leave the log appendable right after them. */
static void test_torn_tail_every_byte(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	cl_log *log;
	uint64_t pos[3];
	assert_int_equal(cl_open(dir, 1 << 20, NULL, &log), 0);
	assert_int_equal(cl_scan(log, 0, count_visit, &(int){0}, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(cl_add(log, CL_REC_MSG, 1, (uint64_t)i, 1, "e", 1, NULL, 0, "payload!", 8,
					&pos[i]), 0);
	assert_int_equal(cl_flush(log), 0);
	assert_int_equal(cl_sync(log), 0);
	cl_close(log);
	char path[512];
	snprintf(path, sizeof path, "%s/%020d.log", dir, 0);
	uint32_t rec = cl_rec_size(1, 0, 8);
	for (uint32_t cut = 0; cut < rec; cut++) {
		assert_int_equal(truncate(path, (off_t)(pos[2] + cut)), 0);
		assert_int_equal(cl_open(dir, 1 << 20, NULL, &log), 0);
		int n = 0;
		uint64_t truncated = 0;
		assert_int_equal(cl_scan(log, 0, count_visit, &n, &truncated), 0);
		assert_int_equal(n, 2);
		assert_int_equal(truncated, cut);
		assert_int_equal(cl_end(log), pos[2]);
		/* Re-append the third record so the next round cuts a whole one again. */
		uint64_t p;
		assert_int_equal(cl_add(log, CL_REC_MSG, 1, 2, 1, "e", 1, NULL, 0, "payload!", 8, &p), 0);
		assert_int_equal(p, pos[2]);
		cl_close(log);
	}
	tu_rmrf(dir);
	free(dir);
}

/* An atomic append cut after some of its records: none of it survives. */
static void test_torn_batch_dropped_whole(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	cl_log *log;
	uint64_t p, batch_start;
	assert_int_equal(cl_open(dir, 1 << 20, NULL, &log), 0);
	assert_int_equal(cl_scan(log, 0, count_visit, &(int){0}, NULL), 0);
	assert_int_equal(cl_add(log, CL_REC_MSG, 1, 0, 1, "e", 1, NULL, 0, "single", 6, &p), 0);
	assert_int_equal(cl_add(log, CL_REC_MSG | CL_F_MORE, 1, 1, 1, "e", 1, NULL, 0, "b1", 2, &batch_start), 0);
	assert_int_equal(cl_add(log, CL_REC_MSG | CL_F_MORE, 1, 2, 1, "e", 1, NULL, 0, "b2", 2, &p), 0);
	assert_int_equal(cl_add(log, CL_REC_MSG, 1, 3, 1, "e", 1, NULL, 0, "b3", 2, &p), 0);
	assert_int_equal(cl_flush(log), 0);
	cl_close(log);
	char path[512];
	snprintf(path, sizeof path, "%s/%020d.log", dir, 0);
	assert_int_equal(truncate(path, (off_t)(p + 3)), 0); /* inside the batch's last record */
	assert_int_equal(cl_open(dir, 1 << 20, NULL, &log), 0);
	int n = 0;
	assert_int_equal(cl_scan(log, 0, count_visit, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cl_end(log), batch_start);
	cl_close(log);
	tu_rmrf(dir);
	free(dir);
}

static void test_segments_roll_and_read(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	cl_log *log;
	assert_int_equal(cl_open(dir, 4096, NULL, &log), 0);
	assert_int_equal(cl_scan(log, 0, count_visit, &(int){0}, NULL), 0);
	char payload[1000];
	memset(payload, 'x', sizeof payload);
	uint64_t pos[20];
	for (int i = 0; i < 20; i++) {
		payload[0] = (char)('a' + i);
		assert_int_equal(cl_add(log, CL_REC_MSG, 1, (uint64_t)i, 1, "e", 1, NULL, 0, payload,
					sizeof payload, &pos[i]), 0);
	}
	assert_int_equal(cl_flush(log), 0);
	uint64_t bytes, segs;
	cl_size(log, &bytes, &segs);
	assert_true(segs >= 5);
	for (int i = 0; i < 20; i++) {
		uint8_t buf[1100];
		cl_rec r;
		uint32_t sz = cl_rec_size(1, 0, sizeof payload);
		assert_int_equal(cl_read(log, pos[i], sz, buf), 0);
		assert_int_equal(cl_decode(buf, sz, &r), 0);
		assert_int_equal(r.offset, (uint64_t)i);
		assert_int_equal(r.payload[0], 'a' + i);
	}
	cl_close(log);
	/* Reopen: every record scanned across segments. */
	assert_int_equal(cl_open(dir, 4096, NULL, &log), 0);
	int n = 0;
	assert_int_equal(cl_scan(log, 0, count_visit, &n, NULL), 0);
	assert_int_equal(n, 20);
	/* Delete all but the active segment by size cap. */
	uint64_t start;
	uint64_t planned;
	int would = cl_delete_head(log, 0, 1, UINT64_MAX, 1, &planned);
	assert_true(would >= 4);
	assert_int_equal(cl_start(log), 0); /* a dry run deletes nothing */
	assert_int_equal(cl_delete_head(log, 0, 1, UINT64_MAX, 0, &start), would);
	assert_int_equal(start, planned);
	assert_int_equal(cl_start(log), start);
	assert_true(start > 0);
	uint8_t buf[64];
	assert_int_equal(cl_read(log, 0, 16, buf), ENG_ENOTFOUND);
	cl_close(log);
	tu_rmrf(dir);
	free(dir);
}

/* Damage in a sealed segment ends the log there: the later segments go too, so no topic is left
 * with a hole in its offsets. */
static void test_damage_in_sealed_segment_ends_log(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	cl_log *log;
	char payload[1000] = {0};
	uint64_t pos[8];
	assert_int_equal(cl_open(dir, 4096, NULL, &log), 0);
	assert_int_equal(cl_scan(log, 0, count_visit, &(int){0}, NULL), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(cl_add(log, CL_REC_MSG, 1, (uint64_t)i, 1, "e", 1, NULL, 0, payload,
					sizeof payload, &pos[i]), 0);
	assert_int_equal(cl_flush(log), 0);
	assert_int_equal(cl_sync(log), 0);
	uint64_t bytes, segs;
	cl_size(log, &bytes, &segs);
	assert_int_equal(segs, 3); /* 3 + 3 + 2 records */
	cl_close(log);
	/* Flip a payload byte of record 1 (the first segment). */
	char path[512];
	snprintf(path, sizeof path, "%s/%020d.log", dir, 0);
	FILE *fp = fopen(path, "r+b");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, (long)(pos[1] + CL_HDR + 10), SEEK_SET), 0);
	assert_int_equal(fputc('X', fp), 'X');
	fclose(fp);
	assert_int_equal(cl_open(dir, 4096, NULL, &log), 0);
	int n = 0;
	uint64_t cut = 0;
	assert_int_equal(cl_scan(log, 0, count_visit, &n, &cut), 0);
	assert_int_equal(n, 1);
	assert_int_equal(cl_end(log), pos[1]);
	cl_size(log, &bytes, &segs);
	assert_int_equal(segs, 1);
	assert_true(cut >= 6 * 1000);
	/* and the log goes on from there */
	uint64_t p;
	assert_int_equal(cl_add(log, CL_REC_MSG, 1, 1, 1, "e", 1, NULL, 0, "again", 5, &p), 0);
	assert_int_equal(p, pos[1]);
	cl_close(log);
	tu_rmrf(dir);
	free(dir);
}

/* cl_reserve rolls before an append that would straddle two segments. */
static void test_reserve_keeps_an_append_in_one_segment(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	cl_log *log;
	char payload[1000] = {0};
	uint64_t p1, p2, bytes, segs;
	assert_int_equal(cl_open(dir, 4096, NULL, &log), 0);
	assert_int_equal(cl_scan(log, 0, count_visit, &(int){0}, NULL), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(cl_add(log, CL_REC_MSG, 1, (uint64_t)i, 1, "e", 1, NULL, 0, payload,
					sizeof payload, &p1), 0);
	uint32_t rec = cl_rec_size(1, 0, sizeof payload); /* 3 fit in 4096 bytes, 4 do not */
	assert_int_equal(cl_reserve(log, rec), 0);          /* a third fits: no roll */
	cl_size(log, &bytes, &segs);
	assert_int_equal(segs, 1);
	assert_int_equal(cl_reserve(log, 2 * (uint64_t)rec), 0); /* a batch of two would not: roll */
	assert_int_equal(cl_add(log, CL_REC_MSG | CL_F_MORE, 1, 3, 1, "e", 1, NULL, 0, payload,
				sizeof payload, &p1), 0);
	assert_int_equal(cl_add(log, CL_REC_MSG, 1, 4, 1, "e", 1, NULL, 0, payload, sizeof payload, &p2), 0);
	assert_int_equal(cl_flush(log), 0);
	cl_size(log, &bytes, &segs);
	assert_int_equal(segs, 2);
	assert_int_equal(p2, p1 + rec); /* both in the new segment, back to back */
	assert_int_equal(p1, 2 * (uint64_t)rec);
	cl_close(log);
	tu_rmrf(dir);
	free(dir);
}

static void test_fault_injection_sticky(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	cl_log *log;
	cl_faults f = {.fail_write_after = 2, .fail_errno = ENOSPC};
	uint64_t p;
	assert_int_equal(cl_open(dir, 1 << 20, &f, &log), 0);
	assert_int_equal(cl_scan(log, 0, count_visit, &(int){0}, NULL), 0);
	assert_int_equal(cl_add(log, CL_REC_MSG, 1, 0, 1, "e", 1, NULL, 0, "one", 3, &p), 0);
	assert_int_equal(cl_flush(log), 0);
	assert_int_equal(cl_add(log, CL_REC_MSG, 1, 1, 1, "e", 1, NULL, 0, "two", 3, &p), 0);
	assert_int_equal(cl_flush(log), ENG_EFULL);
	/* Sticky: everything after fails the same way. */
	assert_int_equal(cl_add(log, CL_REC_MSG, 1, 2, 1, "e", 1, NULL, 0, "three", 5, &p), ENG_EFULL);
	assert_int_equal(cl_sync(log), ENG_EFULL);
	cl_close(log);
	/* Reopen without faults: the half-written record is cut, the first survives. */
	assert_int_equal(cl_open(dir, 1 << 20, NULL, &log), 0);
	int n = 0;
	assert_int_equal(cl_scan(log, 0, count_visit, &n, NULL), 0);
	assert_int_equal(n, 1);
	cl_close(log);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_decode),
		cmocka_unit_test(test_priority_byte),
		cmocka_unit_test(test_torn_tail_every_byte),
		cmocka_unit_test(test_torn_batch_dropped_whole),
		cmocka_unit_test(test_segments_roll_and_read),
		cmocka_unit_test(test_reserve_keeps_an_append_in_one_segment),
		cmocka_unit_test(test_damage_in_sealed_segment_ends_log),
		cmocka_unit_test(test_fault_injection_sticky),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
