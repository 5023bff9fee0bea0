// SPDX-License-Identifier: MIT
/*
 * The guest memory map is replaced on one thread while another thread
 * drives a queue (guest kicks, back-end calls, completions checked byte by
 * byte).  Run under ThreadSanitizer by scripts/sanitize.sh: the RCU
 * publication of the map must be race-free.  The maps alternate between
 * tables that describe the same host memory (in another order, or with an
 * extra range), so every request must complete with the right bytes
 * whichever table a data-path call picked up.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "fixture.h"

#define ROUNDS 400 /* at least */
#define SWAPS 200  /* map replacements to overlap with */
#define MAX_ROUNDS 200000
#define BATCH 8

struct mapper {
	struct fx *f;
	atomic_bool stop;
	atomic_uint swaps;
	int err;
	uint8_t *extra; /* a range no request uses */
};

static void *mapper_main(void *arg)
{
	struct mapper *m = arg;
	struct vuiso_mem_region a[SIM_MAX_RAM + 1], b[SIM_MAX_RAM + 1];
	unsigned n = sim_guest_regions(&m->f->g, a);

	/* b: the same ranges in reverse order, plus one more. */
	for (unsigned i = 0; i < n; i++)
		b[i] = a[n - 1 - i];
	b[n] = (struct vuiso_mem_region){0x40000000, 4096, m->extra};
	while (!atomic_load(&m->stop)) {
		int r = m->swaps & 1
				? vuiso_dev_set_guest_memory(m->f->dev, a, n)
				: vuiso_dev_set_guest_memory(m->f->dev, b,
							     n + 1);

		if (r) {
			m->err = r;
			break;
		}
		m->swaps++;
	}
	return NULL;
}

static uint8_t answer(unsigned round, unsigned i, uint32_t k)
{
	return (uint8_t)(round * 31u + i * 7u + k);
}

static void test_map_replaced_while_queue_runs_on_other_thread(void **state)
{
	struct fx_opts o = {.qsize = 64,
			    .guest_event_idx = true,
			    .backend_event_idx = true};
	struct mapper m = {0};
	struct sim_seg segs[64];
	struct vuiso_vq_stats st;
	unsigned round;
	pthread_t t;
	struct fx f;

	(void)state;
	assert_int_equal(fx_init(&f, &o), 0);
	m.f = &f;
	m.extra = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(m.extra != MAP_FAILED);
	assert_int_equal(pthread_create(&t, NULL, mapper_main, &m), 0);

	for (round = 0; round < MAX_ROUNDS; round++) {
		struct sim_buf b[BATCH][2];
		unsigned of_head[64];
		uint32_t id, len;
		unsigned done = 0;
		uint16_t head;
		int n;

		sim_heap_reset(&f.g);
		for (unsigned i = 0; i < BATCH; i++) {
			b[i][0] = (struct sim_buf){sim_alloc(&f.g, 32), 32,
						   false};
			b[i][1] = (struct sim_buf){sim_alloc(&f.g, 300), 300,
						   true};
			memset(sim_gpa(&f.g, b[i][0].gpa), (int)i, 32);
			n = sim_add(&f.g, b[i], 2, false);
			assert_true(n >= 0 && n < 64);
			of_head[n] = i;
		}
		sim_kick_needed(&f.g);
		assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
		while ((n = sim_backend_pop(&f.b, &head, segs)) > 0) {
			unsigned i = segs[0].ptr[0];

			assert_int_equal(n, 2);
			assert_true(i < BATCH);
			for (uint32_t k = 0; k < 300; k++)
				segs[1].ptr[k] = answer(round, i, k);
			sim_backend_push(&f.b, head, 300);
		}
		sim_backend_flush(&f.b);
		assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
		sim_backend_arm(&f.b);
		while (sim_reap(&f.g, &id, &len)) {
			unsigned i;
			const uint8_t *p;

			assert_true(id < 64);
			i = of_head[id];
			p = sim_gpa(&f.g, b[i][1].gpa);
			assert_int_equal(len, 300);
			for (uint32_t k = 0; k < 300; k++)
				assert_int_equal(p[k], answer(round, i, k));
			done++;
		}
		sim_guest_arm(&f.g);
		assert_int_equal(done, BATCH);
		if (round >= ROUNDS && atomic_load(&m.swaps) >= SWAPS)
			break;
	}
	atomic_store(&m.stop, true);
	pthread_join(t, NULL);
	assert_int_equal(m.err, 0);
	assert_true(atomic_load(&m.swaps) >= SWAPS);
	vuiso_vq_get_stats(f.vq, &st);
	assert_int_equal(st.completions, (round + 1ULL) * BATCH);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
	munmap(m.extra, 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_map_replaced_while_queue_runs_on_other_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
