// SPDX-License-Identifier: MIT
/*
 * vuiso-microbench: the shadow virtqueue engine with an in-process loopback
 * back-end, one thread, against plain memcpy of the same bytes measured in
 * the same run.
 *
 * Each request carries S payload bytes: even requests are device-readable
 * (the library copies guest -> bounce), odd ones device-writable (the
 * back-end completes them with len S and the library copies bounce ->
 * guest).  The back-end touches no payload (a null device), so the figure
 * is the library's cost: ring work on both sides plus one copy of S bytes.
 * The baseline copies S bytes per request between buffer sets of the same
 * size and count.
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
 * each with its own memcpy baseline.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"

#define BATCH 128
#define QSIZE 256

struct result {
	bool guest_packed;
	bool backend_packed;
	uint32_t size;
	double reqs_per_s;
	double gbps;
	double memcpy_gbps;
	double ratio;
	uint64_t requests;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Keep the compiler from dropping the baseline's copies. */
static volatile uint8_t sink;

static double memcpy_gbps(uint32_t size, double seconds)
{
	uint8_t *src = malloc((size_t)size * BATCH);
	uint8_t *dst = malloc((size_t)size * BATCH);
	uint64_t bytes = 0;
	double t0, t;

	if (!src || !dst) {
		fprintf(stderr, "vuiso-microbench: out of memory\n");
		exit(1);
	}
	memset(src, 0x5a, (size_t)size * BATCH);
	memset(dst, 0, (size_t)size * BATCH);
	t0 = now();
	do {
		for (int rep = 0; rep < 16; rep++)
			for (int i = 0; i < BATCH; i++) {
				memcpy(dst + (size_t)i * size,
				       src + (size_t)i * size, size);
				bytes += size;
			}
		t = now();
	} while (t - t0 < seconds);
	sink = dst[size / 2];
	free(src);
	free(dst);
	return (double)bytes / (t - t0) / 1e9;
}

static const char *layout_name(bool packed)
{
	return packed ? "packed" : "split";
}

/* VUISO_DEV_F_* for the device (--clear-writable). */
static uint32_t dev_flags;

static int run_size(uint32_t size, bool guest_packed, bool backend_packed,
		    double seconds, struct result *res)
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
	static struct sim_seg segs[QSIZE];
	static struct virtq_sg sg[BATCH];
	uint64_t bufs[BATCH], done = 0;
	struct vuiso_vq_stats st;
	struct fx f;
	double t0, t;
	int ret;

	ret = fx_init(&f, &o);
	if (ret) {
		fprintf(stderr, "vuiso-microbench: setup failed: %s\n",
			strerror(-ret));
		return ret;
	}
	for (int i = 0; i < BATCH; i++) {
		bufs[i] = sim_alloc(&f.g, size);
		memset(sim_gpa(&f.g, bufs[i]), i, size);
		sg[i].gpa = bufs[i];
		sg[i].len = size;
	}
	t0 = now();
	do {
		for (int rep = 0; rep < 8; rep++) {
			uint16_t head;
			uint32_t len;
			void *token;
			int n;

			for (int i = 0; i < BATCH; i++) {
				unsigned w = i & 1;

				if (virtq_add(&f.g.vq, &sg[i], 1 - w, w,
					      &bufs[i]) < 0)
					goto broken;
			}
			if (virtq_kick_prepare(&f.g.vq) &&
			    vuiso_vq_kick_from_guest(f.vq) < 0)
				goto broken;
			while ((n = sim_backend_pop(&f.b, &head, segs)) > 0)
				sim_backend_push(&f.b, head,
						 segs[0].write ? size : 0);
			if (n < 0)
				goto broken;
			sim_backend_flush(&f.b);
			sim_backend_arm(&f.b);
			if (vuiso_vq_call_from_backend(f.vq) < 0)
				goto broken;
			while ((n = virtq_get_used(&f.g.vq, &token, &len)) > 0)
				done++;
			if (n < 0)
				goto broken;
		}
		t = now();
	} while (t - t0 < seconds);

	vuiso_vq_get_stats(f.vq, &st);
	if (f.errors || st.completions != done || f.b.bad) {
		fprintf(stderr,
			"vuiso-microbench: %u B: %llu completions, %llu "
			"reaped, "
			"%u errors (%s)\n",
			size, (unsigned long long)st.completions,
			(unsigned long long)done, f.errors, f.last_msg);
		fx_fini(&f);
		return -EIO;
	}
	res->guest_packed = guest_packed;
	res->backend_packed = backend_packed;
	res->size = size;
	res->requests = done;
	res->reqs_per_s = (double)done / (t - t0);
	res->gbps = res->reqs_per_s * size / 1e9;
	res->memcpy_gbps = memcpy_gbps(size, seconds);
	res->ratio = res->gbps / res->memcpy_gbps;
	fx_fini(&f);
	return 0;
broken:
	fprintf(stderr, "vuiso-microbench: %u B: queue failed: %s\n", size,
		f.errors ? f.last_msg : "guest or back-end ring error");
	fx_fini(&f);
	return -EIO;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: vuiso-microbench [--json] [--seconds S] [--size "
		"BYTES]...\n"
		"                        [--guest-ring split|packed|all]\n"
		"                        [--backend-ring split|packed|all]\n"
		"                        [--clear-writable]\n"
		"  Drives one shadow virtqueue with an in-process loopback\n"
		"  back-end and prints requests/s, GB/s, memcpy GB/s of the\n"
		"  same bytes in the same run, and the ratio, for each pair\n"
		"  of guest and back-end (shadow) ring layouts.\n"
		"  Default sizes: 64 1500 4096 65536; default 2 s per size;\n"
		"  default all four layout pairs.  --clear-writable runs the\n"
		"  device with VUISO_DEV_F_CLEAR_WRITABLE.\n");
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

	while ((c = getopt_long(argc, argv, "js:z:g:b:ch", opts, NULL)) != -1) {
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

	if (!json)
		printf("%-7s %-7s %8s %14s %10s %12s %7s\n", "guest", "backend",
		       "size", "requests/s", "GB/s", "memcpy GB/s", "ratio");
	for (unsigned gp = 0; gp < 2; gp++) {
		if (!(guest_rings & (1u << gp)))
			continue;
		for (unsigned bp = 0; bp < 2; bp++) {
			if (!(backend_rings & (1u << bp)))
				continue;
			for (unsigned i = 0; i < nsizes; i++) {
				struct result *r = &res[nres++];

				if (run_size(sizes[i], gp, bp, seconds, r))
					return 1;
				if (!json)
					printf("%-7s %-7s %8u %14.0f %10.3f "
					       "%12.3f %7.3f\n",
					       layout_name(gp), layout_name(bp),
					       r->size, r->reqs_per_s, r->gbps,
					       r->memcpy_gbps, r->ratio);
			}
		}
	}
	if (json) {
		printf("{\"seconds_per_size\": %.3f, \"results\": [", seconds);
		for (unsigned i = 0; i < nres; i++)
			printf("%s\n  {\"guest_ring\": \"%s\", "
			       "\"backend_ring\": \"%s\", \"size\": %u, "
			       "\"requests\": %llu, \"requests_per_s\": %.0f, "
			       "\"gbps\": %.4f, \"memcpy_gbps\": %.4f, "
			       "\"ratio\": %.4f}",
			       i ? "," : "", layout_name(res[i].guest_packed),
			       layout_name(res[i].backend_packed), res[i].size,
			       (unsigned long long)res[i].requests,
			       res[i].reqs_per_s, res[i].gbps,
			       res[i].memcpy_gbps, res[i].ratio);
		printf("\n]}\n");
	}
	return 0;
}
