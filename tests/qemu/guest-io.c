/* SPDX-License-Identifier: MIT */
/*
 * guest-io: the test guest's I/O for tests/qemu/run-hotplug-test.sh and
 * run-migrate-test.sh, linked statically on the host and put into the
 * guest's initramfs.
 *
 *   guest-io loop DEV OFF_MB LEN_MB STOPFILE
 *       O_DIRECT writes of 4 KiB pages with a pattern, read back and
 *       compared, over [OFF_MB, OFF_MB + LEN_MB) of DEV, round after round
 *       until STOPFILE exists (at least one round).
 *   guest-io hot DEV OFF_MB PAGES START END
 *       Allocate memory until PAGES pages lie at guest physical addresses
 *       in [START, END) (hot-added memory; /proc/self/pagemap tells), write
 *       each of them with O_DIRECT to DEV at OFF_MB + i pages, read them
 *       back into other pages of that range, compare.
 *   guest-io dmaread DEV OFF_KB LEN_KB NBUF SECONDS
 *       NBUF rounds spread over SECONDS: round b writes [OFF_KB, OFF_KB +
 *       LEN_KB) with its pattern and reads it back into buffer b of its
 *       own, and checks it.  At the end every buffer is checked again.
 *       The CPU wrote the buffers only once, at the start; after that only
 *       the device did, so after a live migration during the rounds only
 *       the dirty log of the device's writes can have brought them over.
 *       Prints the last round (the image holds it).
 *
 * Page i at byte offset OFF holds the 64-bit words pattern(OFF + 8 j, round),
 * so the host can check the image file (round 0 for "hot").
 * Prints one VUISO-IO line with what it did; exit status 0 if every byte
 * matched, 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8)
#define CHUNK (64u << 20) /* allocated at a time by "hot" */
#define MAX_ALLOC (1536ull << 20)
#define IO_MAX (1u << 20) /* bytes per O_DIRECT call of "dmaread" */

static uint64_t pattern(uint64_t off, uint64_t round)
{
	uint64_t z = off * 0x9e3779b97f4a7c15ULL ^ round ^ 0x5655494f;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(uint64_t *p, uint64_t off, uint64_t round)
{
	for (unsigned j = 0; j < WORDS; j++)
		p[j] = pattern(off + 8 * (uint64_t)j, round);
}

static int check(const uint64_t *p, uint64_t off, uint64_t round)
{
	for (unsigned j = 0; j < WORDS; j++)
		if (p[j] != pattern(off + 8ull * j, round)) {
			printf("VUISO-IO: mismatch at byte 0x%" PRIx64
			       " (round %" PRIu64 ")\n",
			       off + 8 * (uint64_t)j, round);
			return -1;
		}
	return 0;
}

static int page_io(int fd, void *buf, uint64_t off, int write_it)
{
	ssize_t n = write_it ? pwrite(fd, buf, PAGE, (off_t)off)
			     : pread(fd, buf, PAGE, (off_t)off);

	if (n != (ssize_t)PAGE) {
		printf("VUISO-IO: %s at 0x%" PRIx64 ": %s\n",
		       write_it ? "write" : "read", off,
		       n < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

static int do_loop(int fd, uint64_t off, uint64_t len, const char *stop)
{
	uint64_t *w, *r, round = 1, pages = 0;

	if (posix_memalign((void **)&w, PAGE, PAGE) ||
	    posix_memalign((void **)&r, PAGE, PAGE))
		return 1;
	do {
		for (uint64_t o = off; o < off + len; o += PAGE) {
			fill(w, o, round);
			if (page_io(fd, w, o, 1) || page_io(fd, r, o, 0) ||
			    check(r, o, round))
				return 1;
			pages++;
		}
		round++;
	} while (access(stop, F_OK) != 0);
	printf("VUISO-IO: loop: %" PRIu64 " rounds, %" PRIu64
	       " pages written, read back and matched\n",
	       round - 1, pages);
	return 0;
}

/* The guest physical address of the page at @va, or 0 if unknown. */
static uint64_t phys(int pagemap, const void *va)
{
	uint64_t e;
	off_t at = (off_t)((uintptr_t)va / PAGE * 8);

	if (pread(pagemap, &e, 8, at) != 8 || !(e & (1ull << 63)))
		return 0;
	return (e & ((1ull << 55) - 1)) * PAGE;
}

static int do_hot(int fd, uint64_t off, unsigned want, uint64_t start,
		  uint64_t end)
{
	int pagemap = open("/proc/self/pagemap", O_RDONLY);
	void **hot = calloc(2ull * want, sizeof(*hot));
	unsigned n = 0;
	uint64_t allocated = 0, lo = UINT64_MAX, hi = 0;

	if (pagemap < 0 || !hot) {
		printf("VUISO-IO: /proc/self/pagemap: %s\n", strerror(errno));
		return 1;
	}
	/* Two pages in the range per disk page: one to write from, one to
	 * read into. */
	while (n < 2 * want && allocated < MAX_ALLOC) {
		uint8_t *m = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
				  -1, 0);

		if (m == MAP_FAILED)
			break;
		allocated += CHUNK;
		for (uint64_t i = 0; i < CHUNK && n < 2 * want; i += PAGE) {
			uint64_t pa = phys(pagemap, m + i);

			if (pa < start || pa >= end)
				continue;
			hot[n++] = m + i;
			lo = pa < lo ? pa : lo;
			hi = pa > hi ? pa : hi;
		}
	}
	if (n < 2 * want) {
		printf("VUISO-IO: only %u of %u pages in [0x%" PRIx64
		       ", 0x%" PRIx64 ") after allocating %" PRIu64 " MiB\n",
		       n, 2 * want, start, end, allocated >> 20);
		return 1;
	}
	for (unsigned i = 0; i < want; i++) {
		uint64_t o = off + (uint64_t)i * PAGE;

		fill(hot[i], o, 0);
		if (page_io(fd, hot[i], o, 1))
			return 1;
	}
	for (unsigned i = 0; i < want; i++) {
		uint64_t o = off + (uint64_t)i * PAGE;

		memset(hot[want + i], 0, PAGE);
		if (page_io(fd, hot[want + i], o, 0) ||
		    check(hot[want + i], o, 0))
			return 1;
	}
	/* O_DIRECT pinned them during the I/O; they must still be where
	 * they were when they were picked. */
	for (unsigned i = 0; i < 2 * want; i++) {
		uint64_t pa = phys(pagemap, hot[i]);

		if (pa < start || pa >= end) {
			printf("VUISO-IO: page %u moved out of the range to "
			       "0x%" PRIx64 "\n",
			       i, pa);
			return 1;
		}
	}
	printf("VUISO-IO: hot: %u pages at guest addresses 0x%" PRIx64
	       "-0x%" PRIx64 " (hot-added memory) written and %u read back "
	       "into others there, all matched (%" PRIu64 " MiB allocated)\n",
	       want, lo, hi + PAGE - 1, want, allocated >> 20);
	return 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int region_io(int fd, uint8_t *buf, uint64_t off, uint64_t len,
		     int write_it)
{
	for (uint64_t done = 0; done < len; done += IO_MAX) {
		size_t n = len - done < IO_MAX ? len - done : IO_MAX;
		ssize_t r =
			write_it
				? pwrite(fd, buf + done, n, (off_t)(off + done))
				: pread(fd, buf + done, n, (off_t)(off + done));

		if (r != (ssize_t)n) {
			printf("VUISO-IO: %s at 0x%" PRIx64 ": %s\n",
			       write_it ? "write" : "read", off + done,
			       r < 0 ? strerror(errno) : "short");
			return -1;
		}
	}
	return 0;
}

static int check_region(const uint8_t *buf, uint64_t off, uint64_t len,
			uint64_t round)
{
	for (uint64_t p = 0; p < len; p += PAGE)
		if (check((const uint64_t *)(buf + p), off + p, round))
			return -1;
	return 0;
}

static int do_dmaread(int fd, uint64_t off, uint64_t len, unsigned nbuf,
		      double seconds)
{
	uint8_t *w, **r = calloc(nbuf, sizeof(*r));
	double t0 = now();

	if (!r || posix_memalign((void **)&w, PAGE, len))
		return 1;
	/* Every buffer written by the CPU now, long before the migration
	 * copies it: from then on only the device writes it. */
	for (unsigned b = 0; b < nbuf; b++) {
		if (posix_memalign((void **)&r[b], PAGE, len))
			return 1;
		memset(r[b], 0xa5, len);
	}
	for (unsigned b = 0; b < nbuf; b++) {
		double next = t0 + seconds * (b + 1) / nbuf;

		for (uint64_t p = 0; p < len; p += PAGE)
			fill((uint64_t *)(w + p), off + p, b + 1);
		if (region_io(fd, w, off, len, 1) ||
		    region_io(fd, r[b], off, len, 0) ||
		    check_region(r[b], off, len, b + 1))
			return 1;
		while (now() < next)
			usleep(1000);
	}
	for (unsigned b = 0; b < nbuf; b++)
		if (check_region(r[b], off, len, b + 1)) {
			printf("VUISO-IO: dmaread: buffer %u no longer holds "
			       "round %u that the device read into it\n",
			       b, b + 1);
			return 1;
		}
	printf("VUISO-IO: dmaread: %u rounds of %" PRIu64
	       " KiB over %.0f s, each read into a buffer of its own; all "
	       "still hold what the device wrote; last round %u\n",
	       nbuf, len >> 10, now() - t0, nbuf);
	return 0;
}

int main(int argc, char **argv)
{
	int fd;

	if (argc < 5) {
		fprintf(stderr, "usage: see the comment in guest-io.c\n");
		return 2;
	}
	fd = open(argv[2], O_RDWR | O_DIRECT);
	if (fd < 0) {
		printf("VUISO-IO: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(argv[1], "loop") && argc == 6)
		return do_loop(fd, strtoull(argv[3], NULL, 0) << 20,
			       strtoull(argv[4], NULL, 0) << 20, argv[5]);
	if (!strcmp(argv[1], "hot") && argc == 7)
		return do_hot(fd, strtoull(argv[3], NULL, 0) << 20,
			      (unsigned)strtoul(argv[4], NULL, 0),
			      strtoull(argv[5], NULL, 0),
			      strtoull(argv[6], NULL, 0));
	if (!strcmp(argv[1], "dmaread") && argc == 7)
		return do_dmaread(fd, strtoull(argv[3], NULL, 0) << 10,
				  strtoull(argv[4], NULL, 0) << 10,
				  (unsigned)strtoul(argv[5], NULL, 0),
				  strtod(argv[6], NULL));
	fprintf(stderr, "usage: see the comment in guest-io.c\n");
	return 2;
}
