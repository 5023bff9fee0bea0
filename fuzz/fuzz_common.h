/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the libvuiso fuzz harnesses: an input cursor, the
 * invariant check, the small fixture every harness starts from, and raw
 * access to the simulated guest's split ring.
 *
 * The harnesses drive the library only through its public API, over the
 * test fixtures of tests/support (a simulated guest with guard-paged RAM and
 * a simulated back-end that maps the region fd).  Every entry point is
 * LLVMFuzzerTestOneInput(); with -Dfuzzing_engine=none the same code is
 * linked with replay_main.c and replays fuzz/corpus/<harness>/ as tests.
 */
#ifndef VUISO_FUZZ_COMMON_H
#define VUISO_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Guest RAM of the simulated guest starts here (tests/support/sim.c). */
#define FZ_GPA_BASE 0x100000ULL
#define FZ_PAGE 4096ULL

#define FZ_F_NEXT 1
#define FZ_F_WRITE 2
#define FZ_F_INDIRECT 4

/*
 * An invariant of the library was broken: print where and why and abort,
 * which libFuzzer reports as a crash and the replay test as a failure.
 */
#define FZ_CHECK(cond, ...)                                                 \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr,                                     \
				"%s:%d: invariant '%s' failed: ", __FILE__, \
				__LINE__, #cond);                           \
			fprintf(stderr, __VA_ARGS__);                       \
			fputc('\n', stderr);                                \
			abort();                                            \
		}                                                           \
	} while (0)

/* ---- Input cursor: reads past the end return zeros ---- */

struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fz_u8(struct fz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t v = fz_u8(in);

	return (uint16_t)(v | (uint16_t)fz_u8(in) << 8);
}

static inline uint32_t fz_u32(struct fz_in *in)
{
	uint32_t v = fz_u16(in);

	return v | (uint32_t)fz_u16(in) << 16;
}

static inline uint64_t fz_u64(struct fz_in *in)
{
	uint64_t v = fz_u32(in);

	return v | (uint64_t)fz_u32(in) << 32;
}

/* ---- Fixture ---- */

/*
 * Decode the one-byte fixture header every harness input starts with:
 *   bits 0-2  log2 of the queue size (1 to 128)
 *   bit 3     guest negotiates EVENT_IDX
 *   bit 4     back-end negotiates EVENT_IDX
 *   bit 5     guest negotiates INDIRECT_DESC
 *   bits 6-7  budget: 0 default (queue size), else 1, 2 or 3 chains a call
 * and fill @o with small sizes (64 KiB pool, two 64 KiB RAM ranges) so a
 * harness run costs tens of microseconds.
 */
void fz_opts(uint8_t hdr, struct fx_opts *o);

/* fx_init() that must succeed (the environment, not the library). */
void fz_fx_init(struct fx *f, const struct fx_opts *o);

/* The vuiso_vq_start() config of the fixture's guest ring and features. */
void fz_vq_config(struct fx *f, struct vuiso_vq_config *cfg);

/* vuiso_vq_start() with @cfg, then re-map the simulated back-end onto the
 * fresh shadow ring.  Returns vuiso_vq_start()'s result. */
int fz_start(struct fx *f, const struct vuiso_vq_config *cfg);

/*
 * Start the queue at the given guest indices and re-map the simulated
 * back-end onto the fresh shadow ring.  Returns vuiso_vq_start()'s result.
 */
int fz_restart(struct fx *f, uint16_t avail_idx, uint16_t used_idx);

/* The device reset of the guest driver: clear its ring and free lists. */
void fz_guest_ring_reset(struct sim_guest *g);

/* Anonymous RAM with PROT_NONE guard pages around, like sim.c's. */
uint8_t *fz_map_guarded(uint64_t size);
void fz_unmap_guarded(uint8_t *p, uint64_t size);

/* Publish the current sim_guest RAM ranges as the guest memory map. */
void fz_publish_ram(struct fx *f);

/* ---- Raw guest split ring ---- */

/*
 * The expected image of the guest heap (everything after the rings): filled
 * with a position-dependent pattern at start, updated by the harness where
 * the library may write, and compared page by page (the RAM ranges have
 * separate host maps) after every library call.
 */
struct fz_heap {
	uint8_t *ref;  /* expected bytes */
	uint64_t base; /* gpa of ref[0] */
	uint64_t len;
};

/* Allocate the image and write the pattern into the guest too. */
int fz_heap_init(struct fz_heap *h, struct sim_guest *g);
void fz_heap_free(struct fz_heap *h);
/* Copy guest [gpa, gpa + len) into the image (@to_ref) or back. */
void fz_heap_span(struct fz_heap *h, struct sim_guest *g, uint64_t gpa,
		  uint64_t len, bool to_ref);
/* Every heap byte equals the image, except pages touching
 * [skip_gpa, skip_gpa + skip_len) (an unplugged range; 0 skips nothing). */
void fz_heap_check(const struct fz_heap *h, struct sim_guest *g,
		   uint64_t skip_gpa, uint64_t skip_len);

/*
 * A copy of the guest's descriptor table and avail ring, which the library
 * must never write: snapshot after the harness writes them, check after
 * every library call.
 */
struct fz_ring_copy {
	uint8_t *buf;
	size_t len;
};

int fz_ring_copy_init(struct fz_ring_copy *rc, const struct sim_guest *g);
void fz_ring_copy_free(struct fz_ring_copy *rc);
void fz_ring_snapshot(struct fz_ring_copy *rc, const struct sim_guest *g);
void fz_ring_check(const struct fz_ring_copy *rc, const struct sim_guest *g);
void fz_set_avail_entry(struct sim_guest *g, uint16_t idx, uint16_t head);
void fz_set_avail_idx(struct sim_guest *g, uint16_t idx);

/* ---- Error reports ---- */

/* The fixture saw at most one error, and if so the queue is broken, every
 * data-path call says -EIO, and the message starts with @prefix (NULL: any
 * of "guest: " and "back-end: "). */
void fz_check_error_state(struct fx *f, const char *prefix);

/* Every data-path entry point of a broken queue returns -EIO at once. */
void fz_check_broken_sticky(struct fx *f);

#endif
