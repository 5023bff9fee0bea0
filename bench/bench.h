/* SPDX-License-Identifier: MIT */
/*
 * What the benchmarks in bench/ share: a monotonic clock in seconds, the
 * median of a set of samples, and threads pinned to CPUs.
 */
#ifndef VUISO_BENCH_H
#define VUISO_BENCH_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of @n (at least 1) samples; sorts them in place. */
static inline double bench_median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Run the calling thread on @cpu only; 0 or an errno. */
static inline int bench_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Start @fn(@arg) on a new thread that runs on @cpu only from its first
 * instruction; 0 or an errno (EINVAL when @cpu is not ours). */
static inline int bench_thread_on(pthread_t *th, int cpu, void *(*fn)(void *),
				  void *arg)
{
	pthread_attr_t attr;
	cpu_set_t set;
	int err;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return EINVAL;
	err = pthread_attr_init(&attr);
	if (err)
		return err;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	err = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	if (!err)
		err = pthread_create(th, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return err;
}

/* "A,B", two different CPU numbers, into *@a and *@b; false if not. */
static inline bool bench_parse_cpus(const char *s, int *a, int *b)
{
	char tail;

	return sscanf(s, "%d,%d%c", a, b, &tail) == 2 && *a >= 0 && *b >= 0 &&
	       *a < CPU_SETSIZE && *b < CPU_SETSIZE && *a != *b;
}

#endif
