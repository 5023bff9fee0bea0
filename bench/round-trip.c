// SPDX-License-Identifier: MIT
/*
 * One cache line handed back and forth: A stores an odd value, B waits
 * for it and stores the next even one, A waits for that.  One round trip
 * is two transfers of the line between the CPUs' caches.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "bench.h"
#include "round-trip.h"

#define BATCH 1000 /* round trips between two clock reads */
#define MAX_BATCHES 100000

struct bench_rt {
	_Alignas(128) atomic_uint line; /* the cache line that travels */
	_Alignas(128) atomic_bool quit;
	unsigned v; /* A's last even value */
	pthread_t th;
	double batches[MAX_BATCHES];
};

/* CPU B: answer every odd value with the next even one. */
static void *responder(void *arg)
{
	struct bench_rt *rt = arg;
	unsigned want = 1;

	while (!atomic_load_explicit(&rt->quit, memory_order_relaxed)) {
		if (atomic_load_explicit(&rt->line, memory_order_acquire) !=
		    want)
			continue;
		atomic_store_explicit(&rt->line, want + 1,
				      memory_order_release);
		want += 2;
	}
	return NULL;
}

int bench_rt_start(struct bench_rt **out, int cpu_b)
{
	struct bench_rt *rt = aligned_alloc(128, sizeof(*rt));
	int err;

	if (!rt)
		return -ENOMEM;
	atomic_init(&rt->line, 0);
	atomic_init(&rt->quit, false);
	rt->v = 0;
	err = bench_thread_on(&rt->th, cpu_b, responder, rt);
	if (err) {
		free(rt);
		return -err;
	}
	*out = rt;
	return 0;
}

double bench_rt_measure(struct bench_rt *rt, double seconds)
{
	double t0 = bench_now(), start = t0, t;
	unsigned n = 0;

	do {
		for (int k = 0; k < BATCH; k++) {
			atomic_store_explicit(&rt->line, rt->v + 1,
					      memory_order_release);
			while (atomic_load_explicit(&rt->line,
						    memory_order_acquire) !=
			       rt->v + 2)
				;
			rt->v += 2;
		}
		t = bench_now();
		rt->batches[n++] = (t - t0) / BATCH * 1e9;
		t0 = t;
	} while (t - start < seconds && n < MAX_BATCHES);
	return bench_median(rt->batches, n);
}

void bench_rt_stop(struct bench_rt *rt)
{
	atomic_store_explicit(&rt->quit, true, memory_order_relaxed);
	pthread_join(rt->th, NULL);
	free(rt);
}
