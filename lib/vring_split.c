// SPDX-License-Identifier: MIT
/*
 * The split virtqueue's structural (control-path) operations: the shadow
 * ring's layout in the region, guest and shadow setup, the guest indices
 * at stop.  The per-request fast path is inline in vring_split.h.
 */
#include <string.h>

#include "vring.h"

/* ------------------------------------------------------------------ */
/* Shadow side                                                         */
/* ------------------------------------------------------------------ */

static uint64_t vsplit_shadow_layout(uint32_t size, uint64_t *desc_off,
				     uint64_t *avail_off, uint64_t *used_off)
{
	/* Each area on its own cache lines: we write avail, the back-end
	 * writes used, and neither should bounce the other's lines. */
	*desc_off = 0;
	*avail_off = VUISO_ALIGN_UP(vring_desc_bytes(size), 64);
	*used_off =
		VUISO_ALIGN_UP(*avail_off + vring_avail_bytes(size, true), 64);
	return VUISO_ALIGN_UP(*used_off + vring_used_bytes(size, true), 4096);
}

static void vsplit_shadow_setup(struct vuiso_shadow_ring *sr, uint8_t *base,
				uint32_t size, bool event_idx,
				const struct vuiso_ring_ids *ids)
{
	struct vsplit_shadow *s = &sr->u.split;
	uint64_t d, a, u, bytes = vsplit_shadow_layout(size, &d, &a, &u);

	(void)ids; /* the engine's slots are the descriptors */
	memset(base, 0, bytes);
	s->size = size;
	s->event_idx = event_idx;
	s->desc = base + d;
	s->avail = base + a;
	s->used = base + u;
	s->avail_idx = 0;
	s->avail_kicked = 0;
	s->last_used = 0;
}

/* ------------------------------------------------------------------ */
/* Structure                                                           */
/* ------------------------------------------------------------------ */

static int vsplit_guest_setup(struct vuiso_guest_ring *gr,
			      const struct vuiso_vq_config *cfg,
			      const struct vuiso_ring_ids *ids)
{
	struct vsplit_guest *g = &gr->u.split;

	(void)ids; /* the avail ring names each head once */
	/* VIRTIO 2.7: descriptor table 16, driver area 2, device area 4. */
	if (cfg->desc_gpa % 16 || cfg->avail_gpa % 2 || cfg->used_gpa % 4)
		return -EINVAL;
	memset(g, 0, sizeof(*g));
	g->size = cfg->size;
	g->event_idx = !!(cfg->guest_features & VUISO_BIT(VUISO_F_EVENT_IDX));
	g->indirect =
		!!(cfg->guest_features & VUISO_BIT(VUISO_F_INDIRECT_DESC));
	g->desc_gpa = cfg->desc_gpa;
	g->avail_gpa = cfg->avail_gpa;
	g->used_gpa = cfg->used_gpa;
	g->last_avail = cfg->avail_idx;
	g->used_idx = cfg->used_idx;
	g->used_flushed = cfg->used_idx;
	/* used->flags may hold what an earlier run left (NO_NOTIFY while it
	 * waited for room): the first arm writes it whatever we think. */
	g->kicks_known = false;
	return 0;
}

static void vsplit_guest_state(const struct vuiso_guest_ring *gr,
			       struct vuiso_vq_state *st)
{
	st->avail_idx = gr->u.split.last_avail;
	st->used_idx = gr->u.split.used_idx;
	st->vring_base = st->avail_idx;
}

static void vsplit_guest_unconsume(struct vuiso_guest_ring *gr, uint32_t token)
{
	(void)token;
	gr->u.split.last_avail--;
}

static int vsplit_shadow_unadd(struct vuiso_shadow_ring *sr,
			       uint32_t backend_base, uint16_t nslots)
{
	struct vsplit_shadow *s = &sr->u.split;

	(void)nslots; /* one avail entry names the whole chain */
	if (backend_base > UINT16_MAX)
		return -EPROTO;
	if (s->avail_idx == (uint16_t)backend_base)
		return 0;
	s->avail_idx--;
	s->avail_kicked = s->avail_idx;
	return 1;
}

const struct vuiso_ring_ops vuiso_ring_split_ops = {
	.name = "split",
	.shadow_layout = vsplit_shadow_layout,
	.guest_setup = vsplit_guest_setup,
	.shadow_setup = vsplit_shadow_setup,
	.guest_state = vsplit_guest_state,
	.guest_unconsume = vsplit_guest_unconsume,
	.shadow_unadd = vsplit_shadow_unadd,
	.shadow_base = 0,
};
