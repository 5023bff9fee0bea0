/* SPDX-License-Identifier: MIT */
/*
 * What the workloads print: per-queue counters (the driver's and
 * libvuiso's), the summary line, and progress while the queue threads run.
 */
#include "vmm.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

void vmm_queue_print_stats(struct vmm_queue *q)
{
	struct vuiso_vq_stats st;

	printf("queue %u: driver kicks %" PRIu64 ", back-end calls %" PRIu64,
	       q->idx, q->vq.kicks, q->backend_calls);
	if (q->svq) {
		vuiso_vq_get_stats(q->svq, &st);
		printf("; libvuiso: %" PRIu64 " requests, %" PRIu64
		       " completions, %" PRIu64 " bytes out, %" PRIu64
		       " bytes in, %" PRIu64 " back-end kicks, %" PRIu64
		       " guest notifies, %" PRIu64 " backpressure",
		       st.requests, st.completions, st.bytes_out, st.bytes_in,
		       st.backend_kicks, st.guest_notifies, st.backpressure);
	}
	printf("\n");
}

void vmm_print_summary(const struct vmm_dev *dev, const struct vmm_summary *s)
{
	double secs = s->seconds > 0 ? s->seconds : 1e-9;

	printf("summary: %s isolation=%s requests=%" PRIu64 " bytes=%" PRIu64
	       " seconds=%.3f IOPS=%.0f GB/s=%.3f errors=%" PRIu64 "\n",
	       s->what, dev->opts->isolation ? "on" : "off", s->requests,
	       s->bytes, s->seconds, (double)s->requests / secs,
	       (double)s->bytes / secs / 1e9, s->errors);
}

static uint64_t done_reqs(struct vmm_dev *dev, unsigned first, unsigned n)
{
	uint64_t reqs = 0;

	for (unsigned k = first; k < first + n; k++)
		reqs += atomic_load_explicit(&dev->q[k].done_reqs,
					     memory_order_relaxed);
	return reqs;
}

/*
 * One more VMM_INTERVAL_S gone: note its rate.  The first interval, the
 * ramp-up, is not noted, nor is the partial one at the end.
 */
static void sample_rate(struct vmm_dev *dev, unsigned first, unsigned n,
			double now, double *t_last, uint64_t *reqs_last,
			bool *ramp)
{
	uint64_t reqs;

	if (now - *t_last < VMM_INTERVAL_S)
		return;
	reqs = done_reqs(dev, first, n);
	/* A workload that zeroes its counters (fs) starts a fresh count. */
	if (reqs < *reqs_last)
		*ramp = true;
	else if (!*ramp && dev->nintervals < VMM_MAX_INTERVALS)
		dev->interval_rate[dev->nintervals++] =
			(double)(reqs - *reqs_last) / (now - *t_last);
	*ramp = false;
	*t_last = now;
	*reqs_last = reqs;
}

void vmm_join_queues(struct vmm_dev *dev, unsigned first, unsigned n, double t0)
{
	double last = vmm_now(), t_sample = t0;
	uint64_t reqs_sample = 0;
	bool ramp = true;

	dev->nintervals = 0;

	for (;;) {
		uint64_t reqs = 0, bytes = 0;
		unsigned running = 0;
		double now;

		for (unsigned i = first; i < first + n; i++) {
			struct vmm_queue *q = &dev->q[i];

			if (q->owner != q)
				continue; /* its owner's thread drives it */
			if (!q->joined &&
			    pthread_tryjoin_np(q->thread, NULL) == 0)
				q->joined = true;
			running += !q->joined;
		}
		if (!running)
			break;
		/* --reconnect: a back-end that hung up is replaced from here,
		 * the one thread that drives no queue. */
		vmm_backend_watch(dev, first, n);
		usleep(20000);
		now = vmm_now();
		sample_rate(dev, first, n, now, &t_sample, &reqs_sample, &ramp);
		if (dev->opts->quiet || now - last < 1.0)
			continue;
		last = now;
		reqs = done_reqs(dev, first, n);
		for (unsigned k = first; k < first + n; k++)
			bytes += atomic_load_explicit(&dev->q[k].done_bytes,
						      memory_order_relaxed);
		fprintf(stderr,
			"progress: %.0f s, %" PRIu64 " requests, %.1f MB, "
			"%.3f GB/s average\n",
			now - t0, reqs, (double)bytes / 1e6,
			(double)bytes / (now - t0) / 1e9);
	}
}
