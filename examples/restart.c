/* SPDX-License-Identifier: MIT */
/*
 * --reconnect: the back-end dies or is restarted mid-workload, and the
 * device carries on with a new one on the same socket.
 *
 * libvuiso keeps every request it forwarded and that was not completed
 * (vuiso_vq_detach()), and replays them to the next back-end before any
 * new request (vuiso_vq_attach()), so the guest sees each request complete
 * exactly once and no back-end support is needed.  What this file adds is
 * the VMM's half: noticing the hang-up, stopping the data path, and the
 * whole vhost-user bring-up again.
 *
 * Threads.  Each queue has its own thread that drives it (vmm.c), and
 * libvuiso wants one thread at a time on a queue, with detach and attach
 * on the thread that drives it or while that thread is parked.  So:
 *
 *   queue thread (vmm_queues_wait)       main thread (vmm_backend_watch)
 *   sees POLLHUP on the socket, or       sees POLLHUP on the socket,
 *   dev->backend_gone set                sets dev->backend_gone
 *   vuiso_vq_detach() its queue(s)
 *   parks: q->parked, waits for a        waits until every queue thread
 *   new dev->generation                  is parked or has exited
 *                                        detaches the queues no thread
 *                                        drives; closes the socket;
 *                                        connects again every 100 ms;
 *                                        features, memory table, and per
 *                                        queue vuiso_vq_attach() + the
 *                                        ring messages
 *   resumes with its queue attached  <-  clears backend_gone, bumps the
 *                                        generation, wakes the threads
 *
 * The socket is closed only while no queue thread polls it, so its fd
 * number cannot be reused under a thread.  park_lock orders the main
 * thread's calls on a queue with the queue thread's calls before it parked
 * and after it resumes.  If no back-end comes within --reconnect-timeout,
 * the device fails; parked threads notice within 100 ms and return -EIO.
 */
#include "vmm.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RECONNECT_INTERVAL_MS 100
/* How long the queue threads get to park; they only have to reach the top
 * of their event loop, so this is generous for a loaded machine. */
#define PARK_TIMEOUT_S 30

static void deadline_in(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int vmm_queues_park(struct vmm_queue *const *qs, unsigned n)
{
	struct vmm_dev *dev = qs[0]->dev;
	unsigned gen;
	int r;

	/* On the thread that drives the queues, as libvuiso asks. */
	for (unsigned i = 0; i < n; i++) {
		struct vmm_queue *q = qs[i];

		r = vuiso_vq_detach(q->svq);
		if (r < 0) {
			vmm_fail(dev, "vuiso_vq_detach(queue %u): %s", q->idx,
				 strerror(-r));
			return -EIO;
		}
		q->kept = (unsigned)r;
		q->detached = true;
	}

	pthread_mutex_lock(&dev->park_lock);
	gen = dev->generation;
	for (unsigned i = 0; i < n; i++) {
		qs[i]->parked = true;
		qs[i]->park_gen = gen;
	}
	pthread_cond_broadcast(&dev->park_cond);
	/* A timed wait: a failure elsewhere (vmm_fail) does not signal. */
	while (dev->generation == gen && !vmm_failed(dev)) {
		struct timespec ts;

		deadline_in(&ts, 100);
		pthread_cond_timedwait(&dev->park_cond, &dev->park_lock, &ts);
	}
	for (unsigned i = 0; i < n; i++)
		qs[i]->parked = false;
	pthread_mutex_unlock(&dev->park_lock);
	return vmm_failed(dev) ? -EIO : 0;
}

static bool socket_hung_up(struct vmm_dev *dev)
{
	struct pollfd pfd = {.fd = dev->vu.sock, .events = 0};

	return dev->vu.sock >= 0 && poll(&pfd, 1, 0) > 0 &&
	       (pfd.revents & (POLLHUP | POLLERR));
}

/*
 * Wait until no thread drives a queue: each is parked or has exited.
 * Return: true when they are, false if the device failed meanwhile.
 */
static bool park_all(struct vmm_dev *dev, unsigned first, unsigned n)
{
	double limit = vmm_now() + PARK_TIMEOUT_S;

	pthread_mutex_lock(&dev->park_lock);
	for (;;) {
		unsigned ready = 0;
		struct timespec ts;

		for (unsigned i = first; i < first + n; i++) {
			struct vmm_queue *q = &dev->q[i];

			if (q->owner == q && !q->joined && !q->parked &&
			    pthread_tryjoin_np(q->thread, NULL) == 0)
				q->joined = true;
			/* A thread still parked for the previous back-end
			 * (not woken yet) is about to run its queue: wait
			 * until it parks again. */
			ready += q->owner->joined ||
				 (q->parked && q->park_gen == dev->generation);
		}
		if (ready == n)
			break;
		if (vmm_failed(dev) || vmm_now() > limit) {
			pthread_mutex_unlock(&dev->park_lock);
			vmm_fail(
				dev,
				"back-end gone, but %u of %u queue thread(s) did not stop within %d s for the reconnect",
				n - ready, n, PARK_TIMEOUT_S);
			return false;
		}
		deadline_in(&ts, 20);
		pthread_cond_timedwait(&dev->park_cond, &dev->park_lock, &ts);
	}
	pthread_mutex_unlock(&dev->park_lock);
	return true;
}

static void detach_all(struct vmm_dev *dev)
{
	for (unsigned i = 0; i < dev->nq; i++) {
		struct vmm_queue *q = &dev->q[i];
		int r;

		if (!q->started || q->detached)
			continue;
		r = vuiso_vq_detach(q->svq);
		if (r < 0) {
			vmm_fail(dev, "vuiso_vq_detach(queue %u): %s", i,
				 strerror(-r));
			continue;
		}
		q->kept = (unsigned)r;
		q->detached = true;
	}
}

/*
 * One attempt to bring up a back-end on the socket and hand it every
 * queue.  On failure the queues are detached again (nothing replayed to a
 * back-end that did not come up is lost), the reason is in dev->vu.err,
 * and *@fatal says whether another attempt could succeed.
 */
static int try_backend(struct vmm_dev *dev, double deadline, unsigned *replayed,
		       bool *fatal)
{
	struct vmm_vu *vu = &dev->vu;
	uint64_t offered, proto, qnum;
	double left;
	int r;

	*replayed = 0;
	*fatal = false;
	r = vmm_vu_reconnect(vu, dev->opts->socket);
	if (r < 0)
		return r;
	/* A back-end that accepts and then hangs must not hold us past the
	 * deadline by 10 s per message. */
	left = deadline - vmm_now();
	if (left < 1)
		left = 1;
	if (left < 10)
		vu->reply_timeout_ms = (unsigned)(left * 1000);

	r = vmm_backend_negotiate(dev, &offered, &proto, &qnum);
	if (r < 0)
		return r;
	/* The guest driver negotiated with the old back-end and cannot be
	 * asked again: the new one must offer at least as much. */
	if (dev->backend_features & ~offered) {
		*fatal = true;
		return vmm_vu_fail(
			vu, -ENOTSUP,
			"the new back-end offers features 0x%016" PRIx64
			", without 0x%016" PRIx64
			" that the device already uses",
			offered, dev->backend_features & ~offered);
	}
	if (qnum < vmm_backend_queues_needed(dev)) {
		*fatal = true;
		return vmm_vu_fail(vu, -ENOTSUP,
				   "the new back-end has %" PRIu64
				   " queue(s), the device uses %u",
				   qnum, vmm_backend_queues_needed(dev));
	}
	dev->backend_offered = offered;
	r = vmm_vu_set_features(vu, dev->backend_features);
	if (r < 0)
		return r;
	/* The same isolated region again: it is the only memory sent. */
	r = vmm_backend_send_memory(dev);
	if (r < 0)
		return r;

	for (unsigned i = 0; i < dev->nq; i++) {
		struct vmm_queue *q = &dev->q[i];
		struct vuiso_vq_shadow sh;
		int n;

		if (!q->started)
			continue;
		n = vuiso_vq_attach(q->svq, dev->backend_features, &sh);
		if (n < 0) {
			*fatal = true;
			return vmm_vu_fail(vu, n,
					   "vuiso_vq_attach(queue %u): %s", i,
					   strerror(-n));
		}
		q->detached = false;
		q->backend_packed = sh.layout == VUISO_LAYOUT_PACKED;
		*replayed += (unsigned)n;
		/* The shadow ring in the region's synthetic address space,
		 * as at the first start: never a VMM address. */
		r = vmm_backend_set_vring(dev, q, sh.size, sh.vring_base,
					  sh.desc_backend, sh.used_backend,
					  sh.avail_backend);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Called with every queue thread parked or gone. */
static void reconnect(struct vmm_dev *dev, double t0)
{
	const struct vmm_opts *o = dev->opts;
	double deadline = t0 + o->reconnect_timeout_s;
	pid_t old_pid = dev->vu.peer_pid;
	unsigned kept = 0, replayed = 0, attempts = 0;
	bool fatal = false;
	int r;

	detach_all(dev);
	if (vmm_failed(dev))
		return;
	for (unsigned i = 0; i < dev->nq; i++)
		kept += dev->q[i].started ? dev->q[i].kept : 0;
	vmm_vu_close(&dev->vu);
	fprintf(stderr,
		"vmm: back-end (pid %d) closed the connection; %u request(s) kept; reconnecting to %s for up to %u s\n",
		(int)old_pid, kept, o->socket, o->reconnect_timeout_s);

	for (;;) {
		attempts++;
		r = try_backend(dev, deadline, &replayed, &fatal);
		if (r == 0)
			break;
		vmm_vu_close(&dev->vu);
		detach_all(dev);
		if (fatal) {
			vmm_fail(
				dev,
				"back-end (pid %d) gone; the new back-end on %s cannot take over: %s; %u request(s) kept were never completed",
				(int)old_pid, o->socket, dev->vu.err, kept);
			return;
		}
		if (vmm_failed(dev) || vmm_now() >= deadline) {
			vmm_fail(
				dev,
				"back-end (pid %d) gone and no new back-end took over on %s within %u s (--reconnect-timeout; %u attempt(s), last: %s); %u request(s) kept were never completed",
				(int)old_pid, o->socket, o->reconnect_timeout_s,
				attempts,
				dev->vu.err[0] ? dev->vu.err : strerror(-r),
				kept);
			return;
		}
		usleep(RECONNECT_INTERVAL_MS * 1000);
	}

	dev->reconnects++;
	fprintf(stderr,
		"vmm: back-end gone, %u requests kept; reconnected in %.0f ms, %u replayed (new back-end pid %d, attempt %u)\n",
		kept, (vmm_now() - t0) * 1000, replayed, (int)dev->vu.peer_pid,
		attempts);
	pthread_mutex_lock(&dev->park_lock);
	atomic_store_explicit(&dev->backend_gone, 0, memory_order_release);
	dev->generation++;
	pthread_cond_broadcast(&dev->park_cond);
	pthread_mutex_unlock(&dev->park_lock);
}

void vmm_backend_watch(struct vmm_dev *dev, unsigned first, unsigned n)
{
	double t0;

	if (!dev->opts->reconnect || vmm_failed(dev))
		return;
	if (!atomic_load_explicit(&dev->backend_gone, memory_order_acquire)) {
		if (!socket_hung_up(dev))
			return;
		atomic_store_explicit(&dev->backend_gone, 1,
				      memory_order_release);
	}
	t0 = vmm_now();
	if (park_all(dev, first, n))
		reconnect(dev, t0);
}
