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

/* Layout byte bits beyond the two layouts (fz_opts): lifecycle variants
 * of the guest harness's STOP and RESET operations. */
#define FZ_LAYOUT_TWO_STEP_STOP (1u << 2)
#define FZ_LAYOUT_BACKEND_RESTART (1u << 3)

/* Guest RAM of the simulated guest starts here (tests/support/sim.c). */
#define FZ_GPA_BASE 0x100000ULL
#define FZ_PAGE 4096ULL

#define FZ_F_NEXT 1
#define FZ_F_WRITE 2
#define FZ_F_INDIRECT 4
/* Packed descriptor flags (VIRTIO 1.2, 2.8.1) and the wrap bit of the
 * position | wrap << 15 encoding of packed ring indices. */
#define FZ_P_AVAIL (1u << 7)
#define FZ_P_USED (1u << 15)
#define FZ_P_WRAP 0x8000u

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
 * Decode the two header bytes every harness input starts with.  The
 * fixture byte @hdr:
 *   bits 0-2  log2 of the queue size (1 to 128)
 *   bit 3     guest negotiates EVENT_IDX
 *   bit 4     back-end negotiates EVENT_IDX
 *   bit 5     guest negotiates INDIRECT_DESC
 *   bits 6-7  budget: 0 default (queue size), else 1, 2 or 3 chains a call
 * The layout byte @layout:
 *   bit 0     the guest ring is packed (else split)
 *   bit 1     the shadow ring is packed (the back-end negotiates
 *             RING_PACKED; else split)
 *   bits 2-7  ignored (reserved)
 * and fill @o with small sizes (64 KiB pool, two 64 KiB RAM ranges) so a
 * harness run costs tens of microseconds.  An input of one byte reads its
 * layout byte as 0: split on both sides.
 */
void fz_opts(uint8_t hdr, uint8_t layout, struct fx_opts *o);

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

/* Restart at the guest driver's own indices: after fz_guest_ring_reset()
 * those of a fresh queue (split 0 / 0, packed 0x8000 / 0x8000). */
int fz_restart_fresh(struct fx *f);

/* A new simulated back-end after vuiso_vq_detach(): vuiso_vq_attach() with
 * the fixture's back-end features, then the back-end maps the fresh shadow
 * ring.  Returns vuiso_vq_attach()'s result. */
int fz_reattach(struct fx *f);

/* The simulated back-end's GET_VRING_BASE answer: the next shadow entry it
 * would take (packed: position | wrap counter << 15). */
uint32_t fz_backend_base(const struct fx *f);

/* The device reset of the guest driver: clear its ring and free lists. */
void fz_guest_ring_reset(struct sim_guest *g);

/* Anonymous RAM with PROT_NONE guard pages around, like sim.c's. */
uint8_t *fz_map_guarded(uint64_t size);
void fz_unmap_guarded(uint8_t *p, uint64_t size);

/* Publish the current sim_guest RAM ranges as the guest memory map. */
void fz_publish_ram(struct fx *f);

/* ---- Raw guest rings ---- */

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
 * A copy of the guest areas the library must not write: snapshot after the
 * harness writes them, check after every library call.
 *
 * Split: the descriptor table and the avail ring, never written.
 * Packed: the driver event suppression area, never written, and the
 * descriptor ring, where the library writes only used descriptors: never
 * an address field, and id, len and flags only at the positions the guest
 * reaped a used descriptor from since the snapshot (fz_ring_allow()).
 */
struct fz_ring_copy {
	uint8_t *buf;
	size_t len;
	uint8_t *allow; /* packed: per position, used descriptor reaped */
	uint32_t qsize;
};

int fz_ring_copy_init(struct fz_ring_copy *rc, const struct sim_guest *g);
void fz_ring_copy_free(struct fz_ring_copy *rc);
void fz_ring_snapshot(struct fz_ring_copy *rc, const struct sim_guest *g);
/* Packed: the guest reaped a used descriptor at position @pos. */
void fz_ring_allow(struct fz_ring_copy *rc, uint16_t pos);
void fz_ring_check(const struct fz_ring_copy *rc, const struct sim_guest *g);
void fz_set_avail_entry(struct sim_guest *g, uint16_t idx, uint16_t head);
void fz_set_avail_idx(struct sim_guest *g, uint16_t idx);

/* Move a packed ring position and its wrap counter @n places on. */
static inline void fz_pstep(uint16_t *pos, bool *wrap, uint32_t n,
			    uint32_t size)
{
	uint32_t p = *pos + n % (2 * size);

	while (p >= size) {
		p -= size;
		*wrap = !*wrap;
	}
	*pos = (uint16_t)p;
}

/* AVAIL/USED bits of a descriptor made available / used in lap @w. */
static inline uint16_t fz_pavail_bits(bool w)
{
	return w ? FZ_P_AVAIL : FZ_P_USED;
}

static inline uint16_t fz_pused_bits(bool w)
{
	return w ? FZ_P_AVAIL | FZ_P_USED : 0;
}

static inline bool fz_pis_avail(uint16_t flags, bool w)
{
	return !!(flags & FZ_P_AVAIL) == w && !!(flags & FZ_P_USED) != w;
}

static inline bool fz_pis_used(uint16_t flags, bool w)
{
	return !!(flags & FZ_P_AVAIL) == w && !!(flags & FZ_P_USED) == w;
}

/* Little-endian loads from a ring (the harness's own reading). */
uint16_t fz_ld16(const uint8_t *p);
uint32_t fz_ld32(const uint8_t *p);
/* Store a descriptor's 16-bit flags with release ordering (the fields
 * written before it first, as a driver or device does). */
void fz_st16_release(uint8_t *p, uint16_t v);

/* ---- Error reports ---- */

/* The fixture saw at most one error, and if so the queue is broken, every
 * data-path call says -EIO, and the message starts with @prefix (NULL: any
 * of "guest: " and "back-end: "). */
void fz_check_error_state(struct fx *f, const char *prefix);

/* Every data-path entry point of a broken queue returns -EIO at once. */
void fz_check_broken_sticky(struct fx *f);

#endif
