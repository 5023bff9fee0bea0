// SPDX-License-Identifier: MIT
/*
 * vuiso-microbench: the shadow virtqueue engine with an in-process loopback
 * back-end, one thread, against plain memcpy of the same bytes measured in
 * the same run.
 *
 * Each request carries S payload bytes: even requests are device-readable
 * (the library copies guest -> bounce), odd ones device-writable (the
 * back-end completes them with len S and the library copies bounce ->
 * guest).  The back-end touches no payload (a null device), so what the
 * library does per request is ring work on both sides plus one copy of S
 * bytes.  The baseline copies S bytes per request between buffer sets of
 * the same size and count.
 *
 * The guest side is the shared guest driver of examples/guest, called
 * directly (virtq_add() / virtq_get_used(), without the test fixture's
 * per-chain bookkeeping); the back-end is the test suite's simulated
 * back-end, which maps the region through its fd and checks every shadow
 * descriptor against it.  Both run on the same core as the library, so
 * their ring work is part of the figure.
 *
 * Every size runs for each chosen pair of guest ring layout and shadow
 * ring layout (--guest-ring, --backend-ring; all four pairs by default),
 * each with its own memcpy baseline: ROUNDS rounds, in each of which
 * every pair's queue runs in turn followed by the baseline for as long,
 * each figure the median over the rounds, so that a drift of the
 * machine's speed hits queue and baseline, and every pair, alike.
 *
 * With --cpus A,B the simulated back-end runs in a thread of its own on
 * CPU B and polls the shadow ring; the guest driver and the library stay
 * on CPU A, which keeps BATCH requests in flight and calls the library on
 * each guest kick and each call the back-end asks for.  The shadow ring's
 * cache lines then travel between the CPUs as they do between a VMM and
 * a back-end process.
 *
 * Two sets of figures: the whole loop (library plus the simulated guest
 * and back-end), and the library alone, from the time spent inside
 * vuiso_vq_kick_from_guest() and vuiso_vq_call_from_backend() (four clock
 * reads per batch of BATCH requests, counted as the library's).  In a VMM
 * the guest driver and the back-end run on other CPUs; the second set is
 * what one core spends on libvuiso per request.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench.h"
#include "fixture.h"
#include "round-trip.h"

#define BATCH 128
#define QSIZE 256
/* Rounds of queue then baseline per size; each figure is their median. */
#define ROUNDS 5

struct result {
	bool guest_packed;
	bool backend_packed;
	uint32_t size;
	double reqs_per_s;
	double gbps;
	double memcpy_gbps;
	double ratio;
	/* The library's own share: time inside the two entry points. */
	double lib_ns; /* per request */
	double lib_reqs_per_s;
	double lib_ratio; /* its GB/s against memcpy's */
	uint64_t requests;
	/* --cpus: the cache-line round trip between the two CPUs before and
	 * after the size's rounds, ns; 0 when it could not be measured. */
	double rt_before, rt_after;
};

/* Keep the compiler from dropping the baseline's copies. */
static volatile uint8_t sink;

/* memcpy of @size bytes per request between @src and @dst (BATCH buffers
 * each) for @seconds; GB/s. */
static double memcpy_gbps(uint8_t *src, uint8_t *dst, uint32_t size,
			  double seconds)
{
	uint64_t bytes = 0;
	double t0, t;

	t0 = bench_now();
	do {
		for (int rep = 0; rep < 16; rep++)
			for (int i = 0; i < BATCH; i++) {
				memcpy(dst + (size_t)i * size,
				       src + (size_t)i * size, size);
				bytes += size;
			}
		t = bench_now();
	} while (t - t0 < seconds);
	sink = dst[size / 2];
	return (double)bytes / (t - t0) / 1e9;
}

/*
 * The baseline's buffers: fresh anonymous pages, as guest RAM and the
 * bounce pool are.  On malloc()'d buffers, in runs of several sizes, the
 * 4 KiB baseline ran at 32-37 GB/s, against 42-47 GB/s on fresh pages and
 * in a loop of its own: its working set is the size of the L2 cache, so
 * where its pages land matters, and a slow baseline flattered the ratio.
 */
static uint8_t *baseline_alloc(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static const char *layout_name(bool packed)
{
	return packed ? "packed" : "split";
}

/* VUISO_DEV_F_* for the device (--clear-writable). */
static uint32_t dev_flags;

/* --cpus A,B: the library and the guest driver run on CPU A, the back-end
 * in a thread of its own on CPU B.  -1: everything in one thread. */
static int cpu_lib = -1, cpu_backend = -1;

/* One queue and its guest buffers, driven round after round. */
struct bench_queue {
	struct fx f;
	uint32_t size;
	uint64_t bufs[BATCH];
	struct virtq_sg sg[BATCH];
	struct sim_seg segs[QSIZE];
	/* Each round's figures, and the requests of all rounds. */
	double reqs[ROUNDS], ratio[ROUNDS], mc[ROUNDS];
	double lib_ns[ROUNDS], lib_reqs[ROUNDS], lib_ratio[ROUNDS];
	uint64_t total;
};

/* Add guest buffer @i (even: device-readable, odd: device-writable). */
static int queue_add(struct bench_queue *q, unsigned i)
{
	unsigned w = i & 1;

	return virtq_add(&q->f.g.vq, &q->sg[i], 1 - w, w, &q->bufs[i]);
}

/*
 * Drive @q for about @seconds: add BATCH requests, kick, let the back-end
 * serve them, call, reap, over and over.  Adds the requests completed to
 * *@done, the elapsed time to *@loop and the time spent inside the two
 * libvuiso entry points to *@lib.  -EIO when a ring failed.
 */
static int drive(struct bench_queue *q, double seconds, uint64_t *done,
		 double *loop, double *lib)
{
	struct fx *f = &q->f;
	double t0, t, c0;
	int ret;

	t0 = bench_now();
	do {
		for (int rep = 0; rep < 8; rep++) {
			uint16_t head;
			uint32_t len;
			void *token;
			int n;

			for (unsigned i = 0; i < BATCH; i++)
				if (queue_add(q, i) < 0)
					return -EIO;
			if (virtq_kick_prepare(&f->g.vq)) {
				c0 = bench_now();
				ret = vuiso_vq_kick_from_guest(f->vq);
				*lib += bench_now() - c0;
				if (ret < 0)
					return -EIO;
			}
			while ((n = sim_backend_pop(&f->b, &head, q->segs)) > 0)
				sim_backend_push(&f->b, head,
						 q->segs[0].write ? q->size
								  : 0);
			if (n < 0)
				return -EIO;
			sim_backend_flush(&f->b);
			sim_backend_arm(&f->b);
			c0 = bench_now();
			ret = vuiso_vq_call_from_backend(f->vq);
			*lib += bench_now() - c0;
			if (ret < 0)
				return -EIO;
			while ((n = virtq_get_used(&f->g.vq, &token, &len)) > 0)
				(*done)++;
			if (n < 0)
				return -EIO;
		}
		t = bench_now();
	} while (t - t0 < seconds);
	*loop += t - t0;
	return 0;
}

/*
 * The back-end of --cpus, on its own CPU: it polls the shadow ring,
 * completes each chain as soon as it sees it, and bumps @calls where a
 * real back-end would write the call eventfd (when the driver asked for
 * a call).
 */
struct backend_thread {
	struct bench_queue *q;
	atomic_bool quit;
	atomic_int state;  /* 0, or -EIO: an invalid shadow chain */
	atomic_uint calls; /* the call "eventfd" */
};

static void *backend_main(void *arg)
{
	struct backend_thread *bt = arg;
	struct bench_queue *q = bt->q;
	struct sim_backend *b = &q->f.b;
	uint16_t head;

	while (!atomic_load_explicit(&bt->quit, memory_order_relaxed)) {
		unsigned served = 0;
		int n;

		while ((n = sim_backend_pop(b, &head, q->segs)) > 0) {
			sim_backend_push(b, head,
					 q->segs[0].write ? q->size : 0);
			served++;
		}
		if (n < 0) {
			atomic_store(&bt->state, -EIO);
			return NULL;
		}
		if (served && sim_backend_flush(b))
			atomic_fetch_add_explicit(&bt->calls, 1,
						  memory_order_release);
	}
	return NULL;
}

/*
 * --cpus: keep BATCH requests in flight for about @seconds, each added
 * again as soon as the guest reaps it, then let the last ones drain.  The
 * library is called as a VMM calls it: on a guest kick, and when the
 * back-end asked for a call (or a call of ours stopped at its budget).
 * Same results as drive(); -ETIMEDOUT when nothing moved for 10 s.
 */
static int drive_cross(struct bench_queue *q, double seconds, uint64_t *done,
		       double *loop, double *lib)
{
	struct fx *f = &q->f;
	struct backend_thread bt = {.q = q};
	unsigned inflight = 0, seen = 0, spins = 0;
	bool adding = true, pending = false;
	double t0, t, c0, moved;
	pthread_t th;
	int ret = 0;

	ret = bench_thread_on(&th, cpu_backend, backend_main, &bt);
	if (ret)
		return -ret;
	t0 = moved = bench_now();
	for (unsigned i = 0; i < BATCH; i++, inflight++)
		if (queue_add(q, i) < 0) {
			ret = -EIO;
			goto stop;
		}
	while (inflight) {
		uint32_t len;
		void *token;
		unsigned calls;
		int n;

		if (virtq_kick_prepare(&f->g.vq)) {
			c0 = bench_now();
			ret = vuiso_vq_kick_from_guest(f->vq);
			*lib += bench_now() - c0;
			if (ret < 0)
				break;
		}
		calls = atomic_load_explicit(&bt.calls, memory_order_acquire);
		if (calls == seen && !pending) {
			if (atomic_load(&bt.state) < 0) {
				ret = -EIO;
				break;
			}
			if (++spins % 4096 == 0 && bench_now() - moved > 10.0) {
				ret = -ETIMEDOUT;
				break;
			}
			continue;
		}
		seen = calls;
		c0 = bench_now();
		ret = vuiso_vq_call_from_backend(f->vq);
		t = bench_now();
		*lib += t - c0;
		if (ret < 0)
			break;
		pending = ret == 1; /* budget spent, used entries left */
		while ((n = virtq_get_used(&f->g.vq, &token, &len)) > 0) {
			unsigned i = (unsigned)((uint64_t *)token - q->bufs);

			(*done)++;
			inflight--;
			if (!adding)
				continue;
			if (queue_add(q, i) < 0) {
				n = -1;
				break;
			}
			inflight++;
		}
		if (n < 0) {
			ret = -EIO;
			break;
		}
		moved = t;
		if (t - t0 >= seconds)
			adding = false;
	}
	if (ret > 0)
		ret = 0;
stop:
	*loop += bench_now() - t0;
	atomic_store_explicit(&bt.quit, true, memory_order_relaxed);
	pthread_join(th, NULL);
	if (!ret && atomic_load(&bt.state) < 0)
		ret = -EIO;
	return ret;
}

/* Why driving @q failed with @ret: the library's report if it made one. */
static const char *queue_error(const struct bench_queue *q, int ret)
{
	if (q->f.errors)
		return q->f.last_msg;
	if (ret == -EIO)
		return "guest or back-end ring error";
	if (ret == -ETIMEDOUT)
		return "no completion for 10 s";
	return strerror(-ret);
}

/* A queue of @size-byte requests with the given ring layouts, or NULL. */
static struct bench_queue *queue_new(uint32_t size, bool guest_packed,
				     bool backend_packed)
{
	struct fx_opts o = {
		.qsize = QSIZE,
		.pool_size = 16 << 20,
		.nram = 1,
		.ram_size = 24 << 20,
		.guest_event_idx = true,
		.backend_event_idx = true,
		.guest_packed = guest_packed,
		.backend_packed = backend_packed,
		.dev_flags = dev_flags,
	};
	struct bench_queue *q = calloc(1, sizeof(*q));
	int ret;

	if (!q) {
		fprintf(stderr, "vuiso-microbench: out of memory\n");
		return NULL;
	}
	q->size = size;
	ret = fx_init(&q->f, &o);
	if (ret) {
		fprintf(stderr, "vuiso-microbench: setup failed: %s\n",
			strerror(-ret));
		fx_fini(&q->f);
		free(q);
		return NULL;
	}
	for (int i = 0; i < BATCH; i++) {
		q->bufs[i] = sim_alloc(&q->f.g, size);
		memset(sim_gpa(&q->f.g, q->bufs[i]), i, size);
		q->sg[i].gpa = q->bufs[i];
		q->sg[i].len = size;
	}
	return q;
}

/*
 * --cpus: the cache-line round trip between the two CPUs now, ns (0 when
 * the probe could not start).  The host may move the vCPUs of a VM
 * between placements whose round trips differ several times over; the
 * figures beside a slow probe are from the slow one.
 */
static double round_trip_now(void)
{
	struct bench_rt *rt;
	double ns;

	if (bench_rt_start(&rt, cpu_backend))
		return 0;
	ns = bench_rt_measure(rt, 0.05);
	bench_rt_stop(rt);
	return ns;
}

/*
 * Every chosen pair of layouts (bit 0 of @guest_rings / @backend_rings:
 * split, bit 1: packed) at one size: ROUNDS rounds, and in each round
 * every pair's queue in turn, each followed by the memcpy baseline for as
 * long, so that the pairs see the same drifts of the machine (and, with
 * --cpus, the same placements of the two CPUs).  Appends one result per
 * pair to @res at *@nres.
 */
static int run_size(uint32_t size, unsigned guest_rings, unsigned backend_rings,
		    double seconds, struct result *res, unsigned *nres)
{
	struct bench_queue *qs[4] = {NULL};
	bool packed[4][2];
	unsigned nq = 0;
	double rt_before = 0, rt_after = 0;
	size_t bytes = (size_t)size * BATCH;
	uint8_t *src = baseline_alloc(bytes);
	uint8_t *dst = baseline_alloc(bytes);
	int ret = -ENOMEM;

	if (!src || !dst) {
		fprintf(stderr, "vuiso-microbench: out of memory\n");
		goto out;
	}
	memset(src, 0x5a, bytes);
	memset(dst, 0, bytes);
	if (cpu_lib >= 0)
		rt_before = round_trip_now();
	for (unsigned gp = 0; gp < 2; gp++)
		for (unsigned bp = 0; bp < 2; bp++) {
			if (!(guest_rings & (1u << gp)) ||
			    !(backend_rings & (1u << bp)))
				continue;
			packed[nq][0] = gp;
			packed[nq][1] = bp;
			qs[nq] = queue_new(size, gp, bp);
			if (!qs[nq])
				goto out;
			nq++;
		}
	for (unsigned r = 0; r < ROUNDS; r++)
		for (unsigned i = 0; i < nq; i++) {
			struct bench_queue *q = qs[i];
			uint64_t done = 0;
			double loop = 0, lib = 0, mc;

			ret = cpu_lib >= 0 ? drive_cross(q, seconds / ROUNDS,
							 &done, &loop, &lib)
					   : drive(q, seconds / ROUNDS, &done,
						   &loop, &lib);
			if (ret) {
				fprintf(stderr,
					"vuiso-microbench: %s/%s %u B: queue "
					"failed: %s\n",
					layout_name(packed[i][0]),
					layout_name(packed[i][1]), size,
					queue_error(q, ret));
				goto out;
			}
			q->total += done;
			mc = memcpy_gbps(src, dst, size, seconds / ROUNDS);
			q->reqs[r] = (double)done / loop;
			q->ratio[r] = q->reqs[r] * size / 1e9 / mc;
			q->lib_ns[r] = lib / (double)done * 1e9;
			q->lib_reqs[r] = (double)done / lib;
			q->lib_ratio[r] = q->lib_reqs[r] * size / 1e9 / mc;
			q->mc[r] = mc;
		}
	if (cpu_lib >= 0)
		rt_after = round_trip_now();
	for (unsigned i = 0; i < nq; i++) {
		struct bench_queue *q = qs[i];
		struct result *rs = &res[(*nres)++];
		struct vuiso_vq_stats st;

		vuiso_vq_get_stats(q->f.vq, &st);
		if (q->f.errors || st.completions != q->total || q->f.b.bad) {
			fprintf(stderr,
				"vuiso-microbench: %s/%s %u B: %llu "
				"completions, %llu reaped, %u errors (%s)\n",
				layout_name(packed[i][0]),
				layout_name(packed[i][1]), size,
				(unsigned long long)st.completions,
				(unsigned long long)q->total, q->f.errors,
				q->f.last_msg);
			ret = -EIO;
			goto out;
		}
		rs->guest_packed = packed[i][0];
		rs->backend_packed = packed[i][1];
		rs->size = size;
		rs->requests = q->total;
		rs->reqs_per_s = bench_median(q->reqs, ROUNDS);
		rs->gbps = rs->reqs_per_s * size / 1e9;
		rs->memcpy_gbps = bench_median(q->mc, ROUNDS);
		rs->ratio = bench_median(q->ratio, ROUNDS);
		rs->lib_ns = bench_median(q->lib_ns, ROUNDS);
		rs->lib_reqs_per_s = bench_median(q->lib_reqs, ROUNDS);
		rs->lib_ratio = bench_median(q->lib_ratio, ROUNDS);
		rs->rt_before = rt_before;
		rs->rt_after = rt_after;
	}
	ret = 0;
out:
	for (unsigned i = 0; i < nq; i++) {
		fx_fini(&qs[i]->f);
		free(qs[i]);
	}
	if (src)
		munmap(src, bytes);
	if (dst)
		munmap(dst, bytes);
	return ret;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vuiso-microbench [--json] [--seconds S] [--size "
		"BYTES]...\n"
		"                        [--guest-ring split|packed|all]\n"
		"                        [--backend-ring split|packed|all]\n"
		"                        [--clear-writable] [--cpus A,B]\n"
		"  Drives one shadow virtqueue with an in-process loopback\n"
		"  back-end and prints requests/s, GB/s, memcpy GB/s of the\n"
		"  same bytes in the same run, and the ratio, for each pair\n"
		"  of guest and back-end (shadow) ring layouts; then the same\n"
		"  for the time spent inside libvuiso alone (lib ns/req, lib\n"
		"  req/s, lib ratio), without the simulated guest and back-end\n"
		"  that share the core.\n"
		"  Default sizes: 64 1500 4096 65536; default 2 s per size;\n"
		"  default all four layout pairs.  --clear-writable runs the\n"
		"  device with VUISO_DEV_F_CLEAR_WRITABLE.  --cpus A,B runs\n"
		"  the library and the guest driver on CPU A and the back-end\n"
		"  on CPU B, polling, with 128 requests kept in flight.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"seconds", required_argument, NULL, 's'},
		{"size", required_argument, NULL, 'z'},
		{"guest-ring", required_argument, NULL, 'g'},
		{"backend-ring", required_argument, NULL, 'b'},
		{"clear-writable", no_argument, NULL, 'c'},
		{"cpus", required_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint32_t sizes[16] = {64, 1500, 4096, 65536};
	unsigned nsizes = 4, custom = 0, nres = 0;
	/* bit 0: split, bit 1: packed */
	unsigned guest_rings = 3, backend_rings = 3;
	struct result res[16 * 4];
	double seconds = 2.0;
	bool json = false;
	int c;

	while ((c = getopt_long(argc, argv, "js:z:g:b:cp:h", opts, NULL)) !=
	       -1) {
		char *end;

		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			seconds = strtod(optarg, &end);
			if (*end || !(seconds > 0 && seconds < 3600)) {
				fprintf(stderr,
					"vuiso-microbench: --seconds wants a "
					"number between 0 and 3600, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'z': {
			unsigned long v = strtoul(optarg, &end, 0);

			if (*end || !v || v > (1u << 20) || custom == 16) {
				fprintf(stderr,
					"vuiso-microbench: --size wants 1 to "
					"1048576 bytes (at most 16 sizes), not "
					"'%s'\n",
					optarg);
				return 2;
			}
			sizes[custom++] = (uint32_t)v;
			nsizes = custom;
			break;
		}
		case 'g':
		case 'b': {
			unsigned *set = c == 'g' ? &guest_rings
						 : &backend_rings;

			if (!strcmp(optarg, "split"))
				*set = 1;
			else if (!strcmp(optarg, "packed"))
				*set = 2;
			else if (!strcmp(optarg, "all"))
				*set = 3;
			else {
				fprintf(stderr,
					"vuiso-microbench: --%s wants split, "
					"packed or all, not '%s'\n",
					c == 'g' ? "guest-ring"
						 : "backend-ring",
					optarg);
				return 2;
			}
			break;
		}
		case 'c':
			dev_flags |= VUISO_DEV_F_CLEAR_WRITABLE;
			break;
		case 'p':
			if (!bench_parse_cpus(optarg, &cpu_lib, &cpu_backend)) {
				fprintf(stderr,
					"vuiso-microbench: --cpus wants two "
					"different CPU numbers A,B, not '%s'\n",
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

	/* Both CPUs must be ours before anything runs; this thread stays
	 * on the library's. */
	for (int k = 0; cpu_lib >= 0 && k < 2; k++) {
		int cpu = k ? cpu_lib : cpu_backend, err = bench_pin(cpu);

		if (err) {
			fprintf(stderr,
				"vuiso-microbench: cannot run on CPU %d: %s\n",
				cpu, strerror(err));
			return 1;
		}
	}
	if (!json)
		printf("%-7s %-7s %8s %12s %8s %11s %6s %11s %12s %9s\n",
		       "guest", "backend", "size", "requests/s", "GB/s",
		       "memcpy GB/s", "ratio", "lib ns/req", "lib req/s",
		       "lib ratio");
	for (unsigned i = 0; i < nsizes; i++) {
		unsigned first = nres;

		if (run_size(sizes[i], guest_rings, backend_rings, seconds, res,
			     &nres))
			return 1;
		for (unsigned k = first; !json && k < nres; k++) {
			const struct result *r = &res[k];

			printf("%-7s %-7s %8u %12.0f %8.3f %11.3f %6.3f "
			       "%11.1f %12.0f %9.3f\n",
			       layout_name(r->guest_packed),
			       layout_name(r->backend_packed), r->size,
			       r->reqs_per_s, r->gbps, r->memcpy_gbps, r->ratio,
			       r->lib_ns, r->lib_reqs_per_s, r->lib_ratio);
		}
		if (!json && cpu_lib >= 0 && nres > first)
			printf("# CPU %d <-> CPU %d cache-line round trip: %.0f "
			       "ns before, %.0f ns after\n",
			       cpu_lib, cpu_backend, res[first].rt_before,
			       res[first].rt_after);
		fflush(stdout);
	}
	if (json) {
		printf("{\"seconds_per_size\": %.3f, \"cpus\": ", seconds);
		if (cpu_lib >= 0)
			printf("[%d, %d]", cpu_lib, cpu_backend);
		else
			printf("null");
		printf(", \"results\": [");
		for (unsigned i = 0; i < nres; i++) {
			printf("%s\n  {\"guest_ring\": \"%s\", "
			       "\"backend_ring\": \"%s\", \"size\": %u, "
			       "\"requests\": %llu, \"requests_per_s\": %.0f, "
			       "\"gbps\": %.4f, \"memcpy_gbps\": %.4f, "
			       "\"ratio\": %.4f, \"lib_ns_per_request\": "
			       "%.2f, \"lib_requests_per_s\": %.0f, "
			       "\"lib_ratio\": %.4f",
			       i ? "," : "", layout_name(res[i].guest_packed),
			       layout_name(res[i].backend_packed), res[i].size,
			       (unsigned long long)res[i].requests,
			       res[i].reqs_per_s, res[i].gbps,
			       res[i].memcpy_gbps, res[i].ratio, res[i].lib_ns,
			       res[i].lib_reqs_per_s, res[i].lib_ratio);
			if (cpu_lib >= 0)
				printf(", \"round_trip_ns\": [%.0f, %.0f]",
				       res[i].rt_before, res[i].rt_after);
			printf("}");
		}
		printf("\n]}\n");
	}
	return 0;
}
