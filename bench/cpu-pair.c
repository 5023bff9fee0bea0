// SPDX-License-Identifier: MIT
/*
 * vuiso-cpu-pair: how long one cache line takes to go from CPU A to CPU B
 * and back, measured now.
 *
 * Two threads, pinned to the two CPUs, hand a counter to each other through
 * one cache line (bench/round-trip.c, which vuiso-microbench --cpus uses
 * too).  The figure is what every shared-ring exchange between a
 * front-end and a back-end polling on the other CPU pays, so a
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
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "round-trip.h"

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
	struct bench_rt *rt;
	int cpu_a = 0, cpu_b = 1, count = 1, c, err;
	double seconds = 0.2;

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
	if ((err = bench_pin(cpu_a)) != 0) {
		fprintf(stderr, "vuiso-cpu-pair: cannot run on CPU %d: %s\n",
			cpu_a, strerror(err));
		return 1;
	}
	if ((err = bench_rt_start(&rt, cpu_b)) != 0) {
		fprintf(stderr, "vuiso-cpu-pair: cannot run on CPU %d: %s\n",
			cpu_b, strerror(-err));
		return 1;
	}
	for (int i = 0; i < count; i++) {
		printf("round-trip-ns %.0f\n", bench_rt_measure(rt, seconds));
		fflush(stdout);
	}
	bench_rt_stop(rt);
	return 0;
}
