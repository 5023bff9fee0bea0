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
#include <sched.h>
#include <sys/mman.h>
#include <time.h>

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

/*
 * The VMM's dirty-log callback takes a lock that the thread replacing the
 * guest memory map holds while it waits (QEMU: a memory listener under the
 * BQL, a log_write that needs the BQL).  log_write must run after the
 * data-path call has left the RCU read side: otherwise the map replacement
 * waits for that reader, the reader waits for the lock, and neither ends.
 */
struct lockstep {
	struct fx *f;
	pthread_mutex_t vmm_lock; /* the VMM's own lock */
	atomic_int locked;        /* the mapper holds it */
	atomic_int in_log;        /* log_write was entered */
	atomic_int mapper_done, driver_done;
	int map_ret, call_ret;
};

static void lockstep_log(struct fx *f, uint64_t gpa, uint64_t len)
{
	struct lockstep *ls = f->hook_opaque;

	(void)gpa;
	(void)len;
	atomic_store(&ls->in_log, 1);
	pthread_mutex_lock(&ls->vmm_lock);
	pthread_mutex_unlock(&ls->vmm_lock);
}

static void *lockstep_mapper(void *arg)
{
	struct lockstep *ls = arg;
	struct vuiso_mem_region mr[SIM_MAX_RAM];
	unsigned n = sim_guest_regions(&ls->f->g, mr);

	pthread_mutex_lock(&ls->vmm_lock);
	atomic_store(&ls->locked, 1);
	while (!atomic_load(&ls->in_log))
		sched_yield();
	/* The data-path thread waits for our lock in log_write. */
	ls->map_ret = vuiso_dev_set_guest_memory(ls->f->dev, mr, n);
	pthread_mutex_unlock(&ls->vmm_lock);
	atomic_store(&ls->mapper_done, 1);
	return NULL;
}

static void *lockstep_driver(void *arg)
{
	struct lockstep *ls = arg;

	while (!atomic_load(&ls->locked))
		sched_yield();
	ls->call_ret = vuiso_vq_call_from_backend(ls->f->vq);
	atomic_store(&ls->driver_done, 1);
	return NULL;
}

static void test_log_write_outside_rcu_no_deadlock_with_map_update(void **state)
{
	struct fx_opts o = {.qsize = 16};
	struct lockstep *ls = calloc(1, sizeof(*ls));
	struct sim_seg segs[16];
	struct sim_buf b;
	pthread_t tm, td;
	uint16_t head;
	struct fx *f = calloc(1, sizeof(*f));

	(void)state;
	assert_non_null(ls);
	assert_non_null(f);
	assert_int_equal(fx_init(f, &o), 0);
	vuiso_dev_set_logging(f->dev, 1);
	b = (struct sim_buf){sim_alloc(&f->g, 512), 512, true};
	assert_true(sim_add(&f->g, &b, 1, false) >= 0);
	sim_kick_needed(&f->g);
	assert_int_equal(vuiso_vq_kick_from_guest(f->vq), 0);
	assert_int_equal(sim_backend_pop(&f->b, &head, segs), 1);
	sim_backend_push(&f->b, head, 512);
	sim_backend_flush(&f->b);

	ls->f = f;
	pthread_mutex_init(&ls->vmm_lock, NULL);
	f->log_hook = lockstep_log;
	f->hook_opaque = ls;
	assert_int_equal(pthread_create(&tm, NULL, lockstep_mapper, ls), 0);
	assert_int_equal(pthread_create(&td, NULL, lockstep_driver, ls), 0);
	for (int ms = 0; ms < 10000; ms++) {
		struct timespec ts = {0, 1000000};

		if (atomic_load(&ls->mapper_done) &&
		    atomic_load(&ls->driver_done))
			break;
		nanosleep(&ts, NULL);
	}
	if (!atomic_load(&ls->mapper_done) || !atomic_load(&ls->driver_done))
		/* Both threads are stuck for good: leave them (and the
		 * fixture) as they are and fail. */
		fail_msg("deadlock: log_write ran inside the RCU read side "
			 "while vuiso_dev_set_guest_memory() waited for it");
	pthread_join(tm, NULL);
	pthread_join(td, NULL);
	assert_int_equal(ls->map_ret, 0);
	assert_int_equal(ls->call_ret, 0);
	/* The 512 bytes copied back were logged, after the call. */
	assert_true(f->logged >= 512);
	assert_int_equal(f->errors, 0);
	fx_fini(f);
	pthread_mutex_destroy(&ls->vmm_lock);
	free(ls);
	free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_map_replaced_while_queue_runs_on_other_thread),
		cmocka_unit_test(
			test_log_write_outside_rcu_no_deadlock_with_map_update),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
