// SPDX-License-Identifier: MIT
/*
 * Guest-side harness: a hostile guest writes arbitrary descriptor tables,
 * indirect tables, avail entries and indices; a well-behaved simulated
 * back-end serves whatever the library forwards.
 *
 * Input: the fixture byte and the layout byte (fz_opts: bit 0 of the
 * layout byte makes the guest ring packed, bit 1 the shadow ring; bit 2
 * makes STOP the two-step stop around the back-end's GET_VRING_BASE answer
 * (what it never took goes back to the guest ring, what it holds is
 * replayed to a new back-end), bit 3 makes RESET a back-end restart
 * (detach, attach, replay) while the queue is healthy), then a stream of
 * operations.  With a split guest ring:
 *   0 DESC  i:u8 addr:u64 len:u32 flags:u16 next:u16  descriptor table entry
 *   1 ITAB  i:u8 addr:u64 len:u32 flags:u16 next:u16  entry of the indirect
 *                                                     area (256 entries)
 *   2 AVAIL head:u16                                  next avail entry
 *   3 PUB                                             publish avail->idx
 *   4 JUMP  delta:u16                                 move avail->idx anyhow
 *   5 KICK                                            guest kick
 *   6 SERVE sel:u8 [len:u32]                          back-end completes all
 *   7 STOP                                            stop (poll once)
 *   8 RESET                                           device reset, restart
 *   9 POKE  at:u32 n:u8 bytes                         raw guest RAM bytes
 *  10 RINGS desc:u64 avail:u64 used:u64 size:u8 avail_idx:u16 used_idx:u16
 *                                                     device reset, restart
 *                                                     with guest-chosen ring
 *                                                     addresses and size
 * With a packed guest ring (op modulo 12; the guest keeps a private cursor,
 * a ring position and its wrap counter, that the library does not see):
 *   0 PDESC i:u8 sel:u8 addr:u64 len:u32 id:u16 flags:u16
 *                  descriptor at cursor + i; sel bit 0: AVAIL/USED bits
 *                  replaced by those of that position's lap, bit 1: by
 *                  those of the other lap; else the raw flags
 *   1 ITAB  i:u8 addr:u64 len:u32 id:u16 flags:u16  indirect area entry
 *   2 AVAIL n:u8   make n positions from the cursor available for their
 *                  lap (AVAIL/USED bits only), move the cursor past them
 *   3 CHAIN n:u8 id:u16 {addr:u64 len:u32 fl:u8}*  a chain of 1 + n % 16
 *                  descriptors at the cursor: fl bits WRITE/INDIRECT kept,
 *                  NEXT on all but the last (fl bit 3 inverts that), one
 *                  buffer id, the head's flags stored last; cursor moves
 *   4 JUMP  delta:u16   move the cursor delta % (2 * size) positions
 *   5-10                as for split (STOP restarts at the packed indices
 *                       stop returned; RESET, RINGS rewind the cursor)
 *  11 EVENT off_wrap:u16 flags:u16   write the driver event suppression
 *
 * Addresses and lengths are remapped so that most land in or around guest
 * RAM (see fz_addr / fz_len); one selector value in four keeps the raw
 * 64-bit value, so overflow and unmapped addresses stay reachable.
 *
 * Invariants, for all four layout pairs: no crash or sanitizer report
 * (guest RAM has guard pages), the shadow chains the back-end sees (split
 * or packed) are well formed and lie in the region, a violation is reported
 * once with a "guest: " message and the queue stays broken (every
 * data-path call -EIO) until reset.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"

struct gctx {
	struct fx f;
	uint64_t ram_end;  /* end of guest RAM (GPA) */
	uint64_t itab_gpa; /* indirect area: 256 entries */
	uint16_t aidx;     /* guest's private avail index */
	uint16_t ppos;     /* packed: the guest's private cursor... */
	bool pwrap;        /* ...and its wrap counter */
	struct sim_seg *segs;
};

static uint64_t fz_addr(const struct gctx *c, uint64_t a)
{
	uint64_t span = c->ram_end - FZ_GPA_BASE;

	switch (a >> 62) {
	case 0: /* anywhere from a page below RAM to a page above it */
		return FZ_GPA_BASE - FZ_PAGE + a % (span + 2 * FZ_PAGE);
	case 1: /* the indirect area */
		return c->itab_gpa + (a & 0xfff);
	case 2: /* across the boundary of the two RAM ranges */
		return c->f.g.ram[1].gpa - 0x800 + (a & 0xfff);
	default:
		return a;
	}
}

static uint32_t fz_len(uint32_t l)
{
	switch (l >> 30) {
	case 0:
		return l & 0xfff;
	case 1:
		return l & 0x3ffff;
	default:
		return l;
	}
}

static void read_desc(struct gctx *c, struct fz_in *in, uint8_t *d)
{
	uint64_t addr = fz_addr(c, fz_u64(in));
	uint32_t len = fz_len(fz_u32(in));
	uint16_t flags = fz_u16(in), next = fz_u16(in);

	sim_put_desc(d, addr, len, flags, next);
}

/* The back-end pops every shadow chain, answers and completes it. */
static void serve(struct gctx *c, struct fz_in *in)
{
	struct fx *f = &c->f;
	uint8_t sel = fz_u8(in);
	uint32_t raw = (sel & 3) == 3 ? fz_u32(in) : 0;
	uint16_t head;
	int n;

	while ((n = sim_backend_pop(&f->b, &head, c->segs)) > 0) {
		uint32_t in_bytes = 0, len;

		for (int i = 0; i < n; i++) {
			if (!c->segs[i].write)
				continue;
			memset(c->segs[i].ptr, 0xa5 ^ head, c->segs[i].len);
			in_bytes += c->segs[i].len;
		}
		switch (sel & 3) {
		case 0:
			len = in_bytes;
			break;
		case 1:
			len = in_bytes / 2;
			break;
		case 2:
			len = in_bytes + 4096;
			break;
		default:
			len = raw;
			break;
		}
		sim_backend_push(&f->b, head, len);
	}
	FZ_CHECK(n == 0, "the library published a malformed shadow chain");
	sim_backend_flush(&f->b);
	sim_backend_arm(&f->b);
	while (vuiso_vq_call_from_backend(f->vq) == 1)
		;
}

static void restart(struct gctx *c, uint16_t a, uint16_t u)
{
	int ret = fz_restart(&c->f, a, u);

	FZ_CHECK(ret == 0, "restart: %d", ret);
}

/* After a device reset: the fresh indices of the guest's layout. */
static void restart_fresh(struct gctx *c)
{
	int ret = fz_restart_fresh(&c->f);

	FZ_CHECK(ret == 0, "restart: %d", ret);
	c->aidx = 0;
	c->ppos = 0;
	c->pwrap = true;
}

/* Position cursor + @i and the wrap counter of its lap. */
static uint8_t *pdesc_at(struct gctx *c, unsigned i, bool *wrap)
{
	uint16_t pos = c->ppos;

	*wrap = c->pwrap;
	fz_pstep(&pos, wrap, i % c->f.o.qsize, c->f.o.qsize);
	return c->f.g.desc + 16ULL * pos;
}

static void packed_desc(struct gctx *c, struct fz_in *in)
{
	uint8_t i = fz_u8(in), sel = fz_u8(in);
	uint64_t addr = fz_addr(c, fz_u64(in));
	uint32_t len = fz_len(fz_u32(in));
	uint16_t id = fz_u16(in), flags = fz_u16(in);
	bool w;
	uint8_t *d = pdesc_at(c, i, &w);

	if (sel & 3) {
		flags &= (uint16_t) ~(FZ_P_AVAIL | FZ_P_USED);
		flags |= fz_pavail_bits(sel & 1 ? w : !w);
	}
	sim_put_pdesc(d, addr, len, id, flags);
}

static void packed_avail(struct gctx *c, struct fz_in *in)
{
	unsigned n = fz_u8(in) % (2 * c->f.o.qsize + 1);

	for (unsigned k = 0; k < n; k++) {
		uint8_t *d = c->f.g.desc + 16ULL * c->ppos;
		uint16_t flags = fz_ld16(d + 14);

		flags &= (uint16_t) ~(FZ_P_AVAIL | FZ_P_USED);
		fz_st16_release(d + 14, flags | fz_pavail_bits(c->pwrap));
		fz_pstep(&c->ppos, &c->pwrap, 1, c->f.o.qsize);
	}
}

static void packed_chain(struct gctx *c, struct fz_in *in)
{
	unsigned n = 1 + fz_u8(in) % 16;
	uint16_t id = fz_u16(in), head_flags = 0;
	uint8_t *head = c->f.g.desc + 16ULL * c->ppos;

	for (unsigned k = 0; k < n; k++) {
		uint8_t *d = c->f.g.desc + 16ULL * c->ppos;
		uint64_t addr = fz_addr(c, fz_u64(in));
		uint32_t len = fz_len(fz_u32(in));
		uint8_t fl = fz_u8(in);
		uint16_t flags = fl & (FZ_F_WRITE | FZ_F_INDIRECT);

		if ((k + 1 < n) != !!(fl & 8))
			flags |= FZ_F_NEXT;
		flags |= fz_pavail_bits(c->pwrap);
		sim_put_pdesc(d, addr, len, id, k ? flags : 0);
		if (!k)
			head_flags = flags;
		fz_pstep(&c->ppos, &c->pwrap, 1, c->f.o.qsize);
	}
	/* The head's flags last: the whole chain becomes available at once
	 * (a chain longer than the ring overwrote its own head meanwhile). */
	fz_st16_release(head + 14, head_flags);
}

/*
 * The stop that never waits, with the well-behaved back-end's true
 * GET_VRING_BASE answer: what it never took goes back to the hostile
 * guest's ring; what it took and did not finish is kept and replayed to a
 * new back-end.  An answer from this back-end is never a violation.
 */
static void two_step_stop(struct gctx *c)
{
	struct fx *f = &c->f;
	struct vuiso_vq_state st;
	int r = vuiso_vq_stop_begin(f->vq);

	FZ_CHECK(r >= 0 || r == -EIO || r == -EINVAL, "stop_begin returned %d",
		 r);
	if (r < 0)
		return;
	r = vuiso_vq_stop_finish(f->vq, fz_backend_base(f), &st);
	FZ_CHECK(r >= 0 || r == -EIO, "stop_finish returned %d", r);
	if (r == 0) {
		restart(c, st.avail_idx, st.used_idx);
	} else if (r > 0) {
		int kept = vuiso_vq_detach(f->vq), n;

		FZ_CHECK(kept == r, "detach kept %d of %d", kept, r);
		n = fz_reattach(f);
		FZ_CHECK(n == r || n == -EIO, "attach replayed %d of %d", n, r);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	struct fx_opts o;
	struct gctx *c = calloc(1, sizeof(*c));
	struct fx *f;
	uint8_t hdr, layout;

	FZ_CHECK(c != NULL, "calloc");
	f = &c->f;
	hdr = fz_u8(&in);
	layout = fz_u8(&in);
	fz_opts(hdr, layout, &o);
	fz_fx_init(f, &o);
	c->ppos = 0;
	c->pwrap = true;
	c->segs = calloc(o.qsize, sizeof(*c->segs));
	FZ_CHECK(c->segs != NULL, "calloc");
	c->ram_end = f->g.heap_end;
	c->itab_gpa = f->g.heap_gpa;

	for (unsigned steps = 0; fz_more(&in) && steps < 512; steps++) {
		uint8_t op = fz_u8(&in) % (o.guest_packed ? 12 : 11);
		struct vuiso_vq_state st;
		int r;

		if (f->errors && op != 8 && op != 10)
			continue;
		if (o.guest_packed && op <= 4) {
			/* The packed guest's own ring operations. */
			switch (op) {
			case 0:
				packed_desc(c, &in);
				break;
			case 1: {
				uint8_t i = fz_u8(&in);
				uint64_t addr = fz_addr(c, fz_u64(&in));
				uint32_t len = fz_len(fz_u32(&in));
				uint16_t id = fz_u16(&in), fl = fz_u16(&in);

				sim_put_pdesc(
					sim_gpa(&f->g, c->itab_gpa + 16ULL * i),
					addr, len, id, fl);
				break;
			}
			case 2:
				packed_avail(c, &in);
				break;
			case 3:
				packed_chain(c, &in);
				break;
			default:
				fz_pstep(&c->ppos, &c->pwrap, fz_u16(&in),
					 o.qsize);
				break;
			}
			op = 255;
		}
		switch (op) {
		case 0:
			read_desc(c, &in,
				  f->g.desc + 16ULL * (fz_u8(&in) % o.qsize));
			break;
		case 1:
			read_desc(c, &in,
				  sim_gpa(&f->g,
					  c->itab_gpa + 16ULL * fz_u8(&in)));
			break;
		case 2:
			fz_set_avail_entry(&f->g, c->aidx++, fz_u16(&in));
			break;
		case 3:
			fz_set_avail_idx(&f->g, c->aidx);
			break;
		case 4:
			c->aidx = (uint16_t)(c->aidx + fz_u16(&in));
			fz_set_avail_idx(&f->g, c->aidx);
			break;
		case 5:
			r = vuiso_vq_kick_from_guest(f->vq);
			FZ_CHECK(r == 0 || r == 1 || r == -EIO || r == -EINVAL,
				 "kick returned %d", r);
			break;
		case 6:
			serve(c, &in);
			break;
		case 7:
			if (layout & FZ_LAYOUT_TWO_STEP_STOP) {
				two_step_stop(c);
				break;
			}
			r = vuiso_vq_stop(f->vq, 0, &st);
			FZ_CHECK(r == 0 || r == -ETIMEDOUT || r == -EIO,
				 "stop returned %d", r);
			if (r == 0)
				restart(c, st.avail_idx, st.used_idx);
			break;
		case 8:
			/* A back-end restart: what it held is replayed. */
			if ((layout & FZ_LAYOUT_BACKEND_RESTART) &&
			    !f->errors && (r = vuiso_vq_detach(f->vq)) >= 0) {
				int n = fz_reattach(f);

				FZ_CHECK(n == r || n == -EIO,
					 "attach replayed %d of %d", n, r);
				break;
			}
			vuiso_vq_reset(f->vq);
			fz_guest_ring_reset(&f->g);
			f->errors = 0;
			restart_fresh(c);
			break;
		case 9: {
			uint64_t at = c->f.g.heap_gpa - FZ_PAGE * 2 +
				      fz_u32(&in) % (FZ_PAGE * 3);
			unsigned n = fz_u8(&in) % 33;

			for (unsigned i = 0; i < n; i++) {
				uint8_t *p = sim_gpa(&f->g, at + i);

				if (p)
					*p = fz_u8(&in);
			}
			break;
		}
		case 10: {
			/* The ring addresses and size come from the guest
			 * (virtio-pci common config): any value is legal
			 * input to vuiso_vq_start(). */
			struct vuiso_vq_config cfg;

			vuiso_vq_reset(f->vq);
			fz_guest_ring_reset(&f->g);
			c->aidx = 0;
			c->ppos = 0;
			c->pwrap = true;
			f->errors = 0;
			fz_vq_config(f, &cfg);
			cfg.desc_gpa = fz_addr(c, fz_u64(&in));
			cfg.avail_gpa = fz_addr(c, fz_u64(&in));
			cfg.used_gpa = fz_addr(c, fz_u64(&in));
			cfg.size = 1u << fz_u8(&in) % 9;
			cfg.avail_idx = fz_u16(&in);
			cfg.used_idx = fz_u16(&in);
			r = fz_start(f, &cfg);
			FZ_CHECK(r == 0 || r == -EINVAL || r == -EFAULT,
				 "start returned %d", r);
			if (r)
				restart_fresh(c);
			break;
		}
		case 11: /* packed only: the driver event suppression area */
			fz_st16_release(f->g.avail, fz_u16(&in));
			fz_st16_release(f->g.avail + 2, fz_u16(&in));
			break;
		}
		fz_check_error_state(f, "guest: ");
		if (f->errors)
			fz_check_broken_sticky(f);
	}
	fz_check_error_state(f, "guest: ");
	fx_fini(f);
	free(c->segs);
	free(c);
	return 0;
}
