/* SPDX-License-Identifier: MIT */
/*
 * The round trip of one cache line between two CPUs, measured now: what
 * every shared-ring exchange between a front-end and a back-end polling
 * on the other CPU pays.  The calling thread is side A (pin it first), a
 * thread of the probe's own answers on CPU B.
 */
#ifndef VUISO_BENCH_ROUND_TRIP_H
#define VUISO_BENCH_ROUND_TRIP_H

struct bench_rt;

/* Start the answering thread on CPU @cpu_b.  0 with *@out set, or a
 * negative errno (-EINVAL and the like when CPU @cpu_b is not ours). */
int bench_rt_start(struct bench_rt **out, int cpu_b);

/* Ping-pong for about @seconds; the median batch, ns per round trip. */
double bench_rt_measure(struct bench_rt *rt, double seconds);

/* Stop the answering thread and free @rt. */
void bench_rt_stop(struct bench_rt *rt);

#endif
