// SPDX-License-Identifier: MIT
/*
 * Bounce pool: the buddy allocator against a model of which blocks are
 * taken, the fit-from-empty property that makes back-pressure safe, and
 * full recovery after everything is freed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_rejects_bad_sizes(void **state)
{
	struct vuiso_pool p;

	(void)state;
	assert_int_equal(vuiso_pool_init(&p, 3 << 16), -EINVAL);
	assert_int_equal(vuiso_pool_init(&p, 32 * 1024), -EINVAL);
	assert_int_equal(vuiso_pool_init(&p, 2ULL << 30), -EINVAL);
	assert_int_equal(vuiso_pool_init(&p, 64 * 1024), 0);
	vuiso_pool_destroy(&p);
}

static void test_order_rounds_up_to_blocks(void **state)
{
	struct vuiso_pool p;

	(void)state;
	assert_int_equal(vuiso_pool_init(&p, 1 << 20), 0);
	assert_int_equal(vuiso_pool_order(&p, 1), 0);
	assert_int_equal(vuiso_pool_order(&p, 64), 0);
	assert_int_equal(vuiso_pool_order(&p, 65), 1);
	assert_int_equal(vuiso_pool_order(&p, 4096), 6);
	assert_int_equal(vuiso_pool_order(&p, 1 << 20), 14);
	assert_int_equal(vuiso_pool_order(&p, (1 << 20) + 1), -E2BIG);
	vuiso_pool_destroy(&p);
}

/* Random get/put against a bitmap model: no block is handed out twice,
 * every block stays inside the pool, and free space is exact. */
static void test_random_get_put_never_overlaps(void **state)
{
	enum { POOL = 256 * 1024, NB = POOL / 64, LIVE = 512 };
	struct vuiso_pool p;
	uint8_t *used = calloc(NB, 1);
	struct {
		int64_t blk;
		unsigned order;
	} live[LIVE];
	unsigned nlive = 0;
	uint64_t s = 42, taken = 0;

	(void)state;
	assert_non_null(used);
	assert_int_equal(vuiso_pool_init(&p, POOL), 0);
	for (int step = 0; step < 200000; step++) {
		if (nlive < LIVE && (rnd(&s) % 3 || !nlive)) {
			unsigned order = (unsigned)(rnd(&s) % 8);
			int64_t b = vuiso_pool_get(&p, order);

			if (b == -ENOSPC) {
				assert_true(vuiso_pool_free_blocks(&p) < NB);
				continue;
			}
			assert_true(b >= 0 && b + (1 << order) <= NB);
			assert_int_equal(b % (1 << order), 0);
			for (int i = 0; i < (1 << order); i++) {
				assert_int_equal(used[b + i], 0);
				used[b + i] = 1;
			}
			taken += 1u << order;
			live[nlive].blk = b;
			live[nlive++].order = order;
		} else {
			unsigned k = (unsigned)(rnd(&s) % nlive);

			for (int i = 0; i < (1 << live[k].order); i++)
				used[live[k].blk + i] = 0;
			vuiso_pool_put(&p, (uint32_t)live[k].blk,
				       live[k].order);
			taken -= 1u << live[k].order;
			live[k] = live[--nlive];
		}
		assert_int_equal(vuiso_pool_free_blocks(&p), NB - taken);
	}
	while (nlive) {
		nlive--;
		vuiso_pool_put(&p, (uint32_t)live[nlive].blk,
			       live[nlive].order);
	}
	/* Everything merged back: the whole pool is one block again. */
	assert_int_equal(vuiso_pool_free_blocks(&p), NB);
	assert_true(vuiso_pool_get(&p, p.max_order) >= 0);
	vuiso_pool_destroy(&p);
	free(used);
}

/* From an empty, flushed pool, any set of blocks whose sizes add up to the
 * pool fits, in any order: back-pressure never waits for something that
 * can never come (the engine flushes when nothing is in flight). */
static void test_any_set_that_fits_empty_pool_is_allocatable(void **state)
{
	enum { POOL = 64 * 1024, NB = POOL / 64 };
	struct vuiso_pool p;
	uint64_t s = 7;

	(void)state;
	assert_int_equal(vuiso_pool_init(&p, POOL), 0);
	for (int trial = 0; trial < 2000; trial++) {
		unsigned orders[NB];
		unsigned n = 0, left = NB;
		int64_t blks[NB];

		vuiso_pool_flush(&p);
		while (left) {
			unsigned o = (unsigned)(rnd(&s) % 11);

			while ((1u << o) > left)
				o--;
			orders[n++] = o;
			left -= 1u << o;
		}
		for (unsigned i = 0; i < n; i++) {
			blks[i] = vuiso_pool_get(&p, orders[i]);
			assert_true(blks[i] >= 0);
		}
		assert_int_equal(vuiso_pool_free_blocks(&p), 0);
		assert_int_equal(vuiso_pool_get(&p, 0), -ENOSPC);
		for (unsigned i = 0; i < n; i++)
			vuiso_pool_put(&p, (uint32_t)blks[i], orders[i]);
		assert_int_equal(vuiso_pool_free_blocks(&p), NB);
	}
	vuiso_pool_destroy(&p);
}

static void test_reset_frees_everything(void **state)
{
	struct vuiso_pool p;

	(void)state;
	assert_int_equal(vuiso_pool_init(&p, 64 * 1024), 0);
	for (int i = 0; i < 1024; i++)
		assert_true(vuiso_pool_get(&p, 0) >= 0);
	assert_int_equal(vuiso_pool_get(&p, 0), -ENOSPC);
	vuiso_pool_reset(&p);
	assert_int_equal(vuiso_pool_get(&p, p.max_order), 0);
	vuiso_pool_destroy(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rejects_bad_sizes),
		cmocka_unit_test(test_order_rounds_up_to_blocks),
		cmocka_unit_test(test_random_get_put_never_overlaps),
		cmocka_unit_test(
			test_any_set_that_fits_empty_pool_is_allocatable),
		cmocka_unit_test(test_reset_frees_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
