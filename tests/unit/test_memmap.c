// SPDX-License-Identifier: MIT
/*
 * Guest memory map: lookups, ranges that span two regions, rejection of
 * bad tables, and replacement under RCU while another thread reads.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"

static uint8_t ram_a[8192], ram_b[4096], ram_c[4096];

/* a: [0x1000, 0x3000)  b: [0x3000, 0x4000) (adjacent)  c: [0x10000, ...) */
static struct vuiso_memmap *three(void)
{
	struct vuiso_mem_region r[] = {
		{0x10000, sizeof(ram_c), ram_c},
		{0x1000, sizeof(ram_a), ram_a},
		{0x3000, sizeof(ram_b), ram_b},
	};
	struct vuiso_memmap *m;

	assert_int_equal(vuiso_memmap_new(r, 3, &m), 0);
	return m;
}

static void test_lookup_finds_each_range_and_misses_holes(void **state)
{
	struct vuiso_memmap *m = three();
	size_t hint = 0;

	(void)state;
	assert_ptr_equal(vuiso_memmap_contig(m, 0x1000, 1, &hint), ram_a);
	assert_ptr_equal(vuiso_memmap_contig(m, 0x2fff, 1, &hint),
			 ram_a + 0x1fff);
	assert_ptr_equal(vuiso_memmap_contig(m, 0x3000, 4096, &hint), ram_b);
	assert_ptr_equal(vuiso_memmap_contig(m, 0x10010, 16, &hint),
			 ram_c + 16);
	assert_null(vuiso_memmap_contig(m, 0xfff, 1, &hint));
	assert_null(vuiso_memmap_contig(m, 0x4000, 1, &hint));
	assert_null(vuiso_memmap_contig(m, 0x11000, 1, &hint));
	/* Contiguous in GPA but two host mappings: not one pointer. */
	assert_null(vuiso_memmap_contig(m, 0x2ff0, 32, &hint));
	free(m);
}

static void test_copy_spans_adjacent_ranges(void **state)
{
	struct vuiso_memmap *m = three();
	uint8_t in[64], out[64];
	size_t hint = 0;

	(void)state;
	for (int i = 0; i < 64; i++)
		in[i] = (uint8_t)(i + 1);
	assert_int_equal(vuiso_memmap_write(m, 0x2fe0, in, 64, &hint), 0);
	assert_memory_equal(ram_a + 0x1fe0, in, 32);
	assert_memory_equal(ram_b, in + 32, 32);
	assert_int_equal(vuiso_memmap_read(m, 0x2fe0, out, 64, &hint), 0);
	assert_memory_equal(in, out, 64);
	assert_int_equal(vuiso_memmap_check(m, 0x2fe0, 64, &hint), 0);
	free(m);
}

static void test_unmapped_or_overflowing_ranges_are_rejected(void **state)
{
	struct vuiso_memmap *m = three();
	uint8_t buf[32];
	size_t hint = 0;

	(void)state;
	/* Runs off the end of b into the hole. */
	assert_int_equal(vuiso_memmap_check(m, 0x3ff0, 32, &hint), -EFAULT);
	assert_int_equal(vuiso_memmap_read(m, 0x3ff0, buf, 32, &hint), -EFAULT);
	/* Wraps the 64-bit address space. */
	assert_int_equal(vuiso_memmap_check(m, UINT64_MAX - 4, 32, &hint),
			 -EFAULT);
	assert_int_equal(vuiso_memmap_check(m, 0x1000, 0, &hint), 0);
	free(m);
}

static void test_bad_tables_are_refused(void **state)
{
	struct vuiso_mem_region overlap[] = {
		{0x1000, 0x2000, ram_a},
		{0x2fff, 0x10, ram_b},
	};
	struct vuiso_mem_region zero[] = {{0x1000, 0, ram_a}};
	struct vuiso_mem_region wrap[] = {{UINT64_MAX - 10, 100, ram_a}};
	struct vuiso_mem_region null_hva[] = {{0x1000, 16, NULL}};
	struct vuiso_memmap *m;

	(void)state;
	assert_int_equal(vuiso_memmap_new(overlap, 2, &m), -EINVAL);
	assert_int_equal(vuiso_memmap_new(zero, 1, &m), -EINVAL);
	assert_int_equal(vuiso_memmap_new(wrap, 1, &m), -EINVAL);
	assert_int_equal(vuiso_memmap_new(null_hva, 1, &m), -EINVAL);
	assert_int_equal(
		vuiso_memmap_new(overlap, VUISO_MAX_MEM_REGIONS + 1, &m),
		-EINVAL);
	assert_int_equal(vuiso_memmap_new(NULL, 0, &m), 0);
	free(m);
}

static void test_lookup_in_many_ranges(void **state)
{
	enum { N = 300 };
	static uint8_t backing[N][64];
	struct vuiso_mem_region r[N];
	struct vuiso_memmap *m;
	size_t hint = 0;

	(void)state;
	for (int i = 0; i < N; i++)
		r[N - 1 - i] = (struct vuiso_mem_region){(uint64_t)i * 0x1000,
							 64, backing[i]};
	assert_int_equal(vuiso_memmap_new(r, N, &m), 0);
	for (int i = 0; i < N; i++) {
		assert_ptr_equal(vuiso_memmap_contig(
					 m, (uint64_t)i * 0x1000 + 8, 8, &hint),
				 backing[i] + 8);
		assert_null(vuiso_memmap_contig(m, (uint64_t)i * 0x1000 + 64, 1,
						&hint));
	}
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup_finds_each_range_and_misses_holes),
		cmocka_unit_test(test_copy_spans_adjacent_ranges),
		cmocka_unit_test(
			test_unmapped_or_overflowing_ranges_are_rejected),
		cmocka_unit_test(test_bad_tables_are_refused),
		cmocka_unit_test(test_lookup_in_many_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
