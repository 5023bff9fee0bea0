// SPDX-License-Identifier: MIT
/*
 * Guest-side harness: a hostile guest writes arbitrary descriptor tables,
 * indirect tables, avail entries and indices; a well-behaved simulated
 * back-end serves whatever the library forwards.
 *
 * Input: one fixture byte (fz_opts), then a stream of operations:
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
 *
 * Addresses and lengths are remapped so that most land in or around guest
 * RAM (see fz_addr / fz_len); one selector value in four keeps the raw
 * 64-bit value, so overflow and unmapped addresses stay reachable.
 *
 * Invariants: no crash or sanitizer report (guest RAM has guard pages), the
 * shadow chains the back-end sees are well formed and lie in the region, a
 * violation is reported once with a "guest: " message and the queue stays
 * broken (every data-path call -EIO) until reset.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"

struct gctx {
	struct fx f;
	uint64_t ram_end;  /* end of guest RAM (GPA) */
	uint64_t itab_gpa; /* indirect area: 256 entries */
	uint16_t aidx;     /* guest's private avail index */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	struct fx_opts o;
	struct gctx *c = calloc(1, sizeof(*c));
	struct fx *f;

	FZ_CHECK(c != NULL, "calloc");
	f = &c->f;
	fz_opts(fz_u8(&in), &o);
	fz_fx_init(f, &o);
	c->segs = calloc(o.qsize, sizeof(*c->segs));
	FZ_CHECK(c->segs != NULL, "calloc");
	c->ram_end = f->g.heap_end;
	c->itab_gpa = f->g.heap_gpa;

	for (unsigned steps = 0; fz_more(&in) && steps < 512; steps++) {
		uint8_t op = fz_u8(&in) % 11;
		struct vuiso_vq_state st;
		int r;

		if (f->errors && op != 8 && op != 10)
			continue;
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
			r = vuiso_vq_stop(f->vq, 0, &st);
			FZ_CHECK(r == 0 || r == -ETIMEDOUT || r == -EIO,
				 "stop returned %d", r);
			if (r == 0)
				restart(c, st.avail_idx, st.used_idx);
			break;
		case 8:
			vuiso_vq_reset(f->vq);
			fz_guest_ring_reset(&f->g);
			c->aidx = 0;
			f->errors = 0;
			restart(c, 0, 0);
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
				restart(c, 0, 0);
			break;
		}
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
