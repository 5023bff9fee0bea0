// SPDX-License-Identifier: MIT
/*
 * The packed virtqueue's structural (control-path) operations: the shadow
 * ring's layout in the region, guest and shadow setup, the guest indices
 * at stop.  The per-request fast path is inline in vring_packed.h.
 */
#include <string.h>

#include "vring.h"

/* Distance from (@from, @fw) forward to (@to, @tw), or UINT32_MAX when the
 * pair cannot be reached within one lap. */
static uint32_t vpacked_distance(uint16_t from, bool fw, uint16_t to, bool tw,
				 uint32_t size)
{
	if (fw == tw)
		return to >= from ? (uint32_t)(to - from) : UINT32_MAX;
	return to <= from ? (uint32_t)(to + size - from) : UINT32_MAX;
}

/* ------------------------------------------------------------------ */
/* Shadow side                                                         */
/* ------------------------------------------------------------------ */

static uint64_t vpacked_shadow_layout(uint32_t size, uint64_t *desc_off,
				      uint64_t *drv_off, uint64_t *dev_off)
{
	/* The two event structures on cache lines of their own: we write
	 * the driver's, the back-end writes the device's. */
	*desc_off = 0;
	*drv_off = VUISO_ALIGN_UP(16ULL * size, 64);
	*dev_off = *drv_off + 64;
	return VUISO_ALIGN_UP(*dev_off + 4, 4096);
}

/* ------------------------------------------------------------------ */
/* Structure                                                           */
/* ------------------------------------------------------------------ */

static int vpacked_guest_setup(struct vuiso_guest_ring *gr,
			       const struct vuiso_vq_config *cfg,
			       const struct vuiso_ring_ids *ids)
{
	struct vpacked_guest *g = &gr->u.packed;
	uint16_t apos = cfg->avail_idx & ~VUISO_PACKED_WRAP;
	uint16_t upos = cfg->used_idx & ~VUISO_PACKED_WRAP;
	bool aw = cfg->avail_idx & VUISO_PACKED_WRAP;
	bool uw = cfg->used_idx & VUISO_PACKED_WRAP;
	uint32_t inflight;

	/* VIRTIO 2.8.10.1: descriptor ring 16, event structures 4. */
	if (cfg->desc_gpa % 16 || cfg->avail_gpa % 4 || cfg->used_gpa % 4)
		return -EINVAL;
	if (apos >= cfg->size || upos >= cfg->size)
		return -EINVAL;
	/* Descriptors between the used and the avail position belong to
	 * requests the guest still waits for (none after a clean stop). */
	inflight = vpacked_distance(upos, uw, apos, aw, cfg->size);
	if (inflight > cfg->size)
		return -EINVAL;
	memset(g, 0, sizeof(*g));
	g->size = cfg->size;
	g->event_idx = !!(cfg->guest_features & VUISO_BIT(VUISO_F_EVENT_IDX));
	g->indirect =
		!!(cfg->guest_features & VUISO_BIT(VUISO_F_INDIRECT_DESC));
	g->desc_gpa = cfg->desc_gpa;
	g->drv_gpa = cfg->avail_gpa;
	g->dev_gpa = cfg->used_gpa;
	g->last_avail = apos;
	g->avail_lap = vpacked_avail_lap(aw);
	g->used = upos;
	g->used_lap = vpacked_used_lap(uw);
	g->inflight = inflight;
	/* Whatever the device area holds is rewritten at the first arm. */
	g->kicks_known = false;
	g->busy = ids->guest_busy;
	memset(g->busy, 0, cfg->size);
	return 0;
}

static void vpacked_shadow_setup(struct vuiso_shadow_ring *sr, uint8_t *base,
				 uint32_t size, bool event_idx,
				 const struct vuiso_ring_ids *ids)
{
	struct vpacked_shadow *s = &sr->u.packed;
	uint64_t d, drv, dev,
		bytes = vpacked_shadow_layout(size, &d, &drv, &dev);

	/* Zeroed flags are neither available nor used for wrap counter 1,
	 * and zeroed event structures say ENABLE. */
	memset(base, 0, bytes);
	s->size = size;
	s->event_idx = event_idx;
	s->desc = base + d;
	s->drv = base + drv;
	s->dev = base + dev;
	s->avail = 0;
	s->avail_lap = vpacked_avail_lap(true);
	s->used = 0;
	s->used_lap = vpacked_used_lap(true);
	s->unkicked = 0;
	s->ndesc = ids->shadow_ndesc;
	memset(s->ndesc, 0, size * sizeof(*s->ndesc));
}

static void vpacked_guest_state(const struct vuiso_guest_ring *gr,
				struct vuiso_vq_state *st)
{
	const struct vpacked_guest *g = &gr->u.packed;

	st->avail_idx = vpacked_off_wrap(g->last_avail, g->avail_lap);
	st->used_idx = vpacked_off_wrap(g->used, g->used_lap);
	st->vring_base = st->avail_idx | (uint32_t)st->used_idx << 16;
}

/* Move a position and its lap bits @n (at most @size) places back. */
static void vpacked_retreat(uint16_t *pos, uint16_t *lap, uint32_t n,
			    uint32_t size)
{
	if (*pos < n) {
		*pos = (uint16_t)(*pos + size - n);
		*lap ^= VPACKED_F_LAP;
	} else {
		*pos = (uint16_t)(*pos - n);
	}
}

static void vpacked_guest_unconsume(struct vuiso_guest_ring *gr, uint32_t token)
{
	struct vpacked_guest *g = &gr->u.packed;
	uint16_t ndesc = vring_token_ndesc(token);

	g->busy[vring_token_id(token)] = 0;
	g->inflight -= ndesc;
	vpacked_retreat(&g->last_avail, &g->avail_lap, ndesc, g->size);
}

static int vpacked_shadow_unadd(struct vuiso_shadow_ring *sr,
				uint32_t backend_base, uint16_t nslots)
{
	struct vpacked_shadow *s = &sr->u.packed;
	/* The back-end's half of the value: position and wrap counter of
	 * the next descriptor it would read (DPDK fills only this half). */
	uint16_t pos = backend_base & ~VUISO_PACKED_WRAP & 0xffff;
	bool wrap = backend_base & VUISO_PACKED_WRAP;
	uint32_t d;

	if (pos >= s->size)
		return -EPROTO;
	d = vpacked_distance(pos, wrap, s->avail,
			     vpacked_lap_wrap(s->avail_lap), s->size);
	if (d == 0)
		return 0;
	if (d == UINT32_MAX || d < nslots)
		return -EPROTO; /* ahead of our ring, or inside a chain */
	vpacked_retreat(&s->avail, &s->avail_lap, nslots, s->size);
	return 1;
}

const struct vuiso_ring_ops vuiso_ring_packed_ops = {
	.name = "packed",
	.shadow_layout = vpacked_shadow_layout,
	.guest_setup = vpacked_guest_setup,
	.shadow_setup = vpacked_shadow_setup,
	.guest_state = vpacked_guest_state,
	.guest_unconsume = vpacked_guest_unconsume,
	.shadow_unadd = vpacked_shadow_unadd,
	/* Position 0, both wrap counters 1, as QEMU and DPDK encode it. */
	.shadow_base = (uint32_t)VUISO_PACKED_WRAP | (uint32_t)VUISO_PACKED_WRAP
							     << 16,
};
