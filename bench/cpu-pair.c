// SPDX-License-Identifier: MIT
/*
 * vuiso-cpu-pair: how long one cache line takes to go from CPU A to CPU B
 * and back, measured now.
 *
 * Two threads, pinned to the two CPUs, hand a counter to each other through
 * one cache line: A stores an odd value, B waits for it and stores the next
 * even one, A waits for that.  One round trip is two transfers of the line
 * between the CPUs' caches.  The figure is what every shared-ring exchange
 * between a front-end and a back-end polling on the other CPU pays, so a
 * packet-rate benchmark needs it next to its figures.
 *
 * Why it exists: on the 2-vCPU VM this project is measured on, the round
 * trip between vCPU 0 and vCPU 1 is either about 50-90 ns or about
 * 325-345 ns, and switches between the two every few seconds to minutes
 * (the host moves the vCPU threads between cores that share a last-level
 * cache and cores that do not).  examples/bench-net.sh probes it before
 * and after each run and counts only runs in the fast regime.
 *
 * usage: vuiso-cpu-pair [--cpus A,B] [--seconds S] [--count N]
 *   prints one line per measurement: "round-trip-ns <median of the
 *   batches>"; default CPUs 0,1, 0.2 s, one measurement.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define BATCH 1000 /* round trips between two clock reads */
#define MAX_BATCHES 100000

struct shared {
	_Alignas(128) atomic_uint line; /* the cache line that travels */
	_Alignas(128) atomic_bool quit;
	atomic_int state; /* 0 starting, 1 answering, -errno: cannot pin */
	int cpu;
};

/* CPU B: answer every odd value with the next even one. */
static void *responder(void *arg)
{
	struct shared *sh = arg;
	unsigned want = 1;
	int err = bench_pin(sh->cpu);

	atomic_store(&sh->state, err ? -err : 1);
	if (err)
		return NULL;
	while (!atomic_load_explicit(&sh->quit, memory_order_relaxed)) {
		if (atomic_load_explicit(&sh->line, memory_order_acquire) !=
		    want)
			continue;
		atomic_store_explicit(&sh->line, want + 1,
				      memory_order_release);
		want += 2;
	}
	return NULL;
}

static double *batches;

/* One measurement: the median batch, in ns per round trip. */
static double measure(struct shared *sh, unsigned *v, double seconds)
{
	double t0 = bench_now(), start = t0, t;
	unsigned n = 0;

	do {
		for (int k = 0; k < BATCH; k++) {
			atomic_store_explicit(&sh->line, *v + 1,
					      memory_order_release);
			while (atomic_load_explicit(&sh->line,
						    memory_order_acquire) !=
			       *v + 2)
				;
			*v += 2;
		}
		t = bench_now();
		batches[n++] = (t - t0) / BATCH * 1e9;
		t0 = t;
	} while (t - start < seconds && n < MAX_BATCHES);
	return bench_median(batches, n);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: vuiso-cpu-pair [--cpus A,B] [--seconds S] "
		     "[--count N]\n"
		     "  Prints the round trip of one cache line between "
		     "CPUs A and B\n"
		     "  (default 0,1), the median over S seconds (default "
		     "0.2), N times.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"cpus", required_argument, NULL, 'c'},
		{"seconds", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct shared sh;
	int cpu_a = 0, cpu_b = 1, count = 1, c, err;
	double seconds = 0.2;
	unsigned v = 0;
	pthread_t th;

	while ((c = getopt_long(argc, argv, "c:s:n:h", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'c':
			if (!bench_parse_cpus(optarg, &cpu_a, &cpu_b)) {
				fprintf(stderr,
					"vuiso-cpu-pair: --cpus wants two "
					"different CPU numbers A,B, not "
					"'%s'\n",
					optarg);
				return 2;
			}
			break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end || !(seconds > 0 && seconds <= 60)) {
				fprintf(stderr,
					"vuiso-cpu-pair: --seconds wants a "
					"number above 0 and up to 60, not "
					"'%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
			count = atoi(optarg);
			if (count < 1 || count > 100000) {
				fprintf(stderr,
					"vuiso-cpu-pair: --count wants 1 to "
					"100000, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	batches = malloc(MAX_BATCHES * sizeof(*batches));
	if (!batches) {
		fprintf(stderr, "vuiso-cpu-pair: out of memory\n");
		return 1;
	}
	if ((err = bench_pin(cpu_a)) != 0) {
		fprintf(stderr, "vuiso-cpu-pair: cannot run on CPU %d: %s\n",
			cpu_a, strerror(err));
		return 1;
	}
	sh.cpu = cpu_b;
	if ((err = pthread_create(&th, NULL, responder, &sh)) != 0) {
		fprintf(stderr, "vuiso-cpu-pair: thread: %s\n", strerror(err));
		return 1;
	}
	while (!atomic_load(&sh.state))
		sched_yield();
	if (atomic_load(&sh.state) < 0) {
		fprintf(stderr, "vuiso-cpu-pair: cannot run on CPU %d: %s\n",
			cpu_b, strerror(-atomic_load(&sh.state)));
		pthread_join(th, NULL);
		return 1;
	}
	for (int i = 0; i < count; i++) {
		printf("round-trip-ns %.0f\n", measure(&sh, &v, seconds));
		fflush(stdout);
	}
	atomic_store_explicit(&sh.quit, true, memory_order_relaxed);
	pthread_join(th, NULL);
	free(batches);
	return 0;
}
