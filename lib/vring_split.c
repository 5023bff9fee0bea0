// SPDX-License-Identifier: MIT
/*
 * The split virtqueue (VIRTIO 1.2, 2.7), both ways.
 *
 * Guest side: libvuiso is the device.  Each visit of a descriptor reads it
 * once into private memory (struct vuiso_seg) and validates that copy; an
 * indirect table is copied whole into the queue's private scratch first.
 * Nothing is re-read after validation.  (A racing guest can rewrite `next`
 * fields so that one descriptor is visited more than once in a chain; the
 * visit count is bounded by the table size and each visit is validated.)
 *
 * Shadow side: libvuiso is the driver.  Descriptors and avail entries are
 * written, never read back (the back-end can overwrite them); the only
 * values read from the shadow ring are the used index and entries, and the
 * back-end's notification suppression, and the engine validates the former
 * against its private in-flight table.
 *
 * Memory ordering follows VIRTIO 2.7.7 / 2.7.13; every fence names the
 * barrier of the other side that it pairs with.
 */
#include <string.h>

#include "vring.h"

/* Offsets inside the driver (avail) and device (used) areas. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING 4

static inline uint8_t *avail_entry(uint8_t *avail, uint32_t i)
{
	return avail + AVAIL_RING + 2u * i;
}

static inline uint8_t *used_entry(uint8_t *used, uint32_t i)
{
	return used + USED_RING + 8u * i;
}

/* used_event lives after the avail ring, avail_event after the used ring. */
static inline uint8_t *used_event(uint8_t *avail, uint32_t size)
{
	return avail_entry(avail, size);
}

static inline uint8_t *avail_event(uint8_t *used, uint32_t size)
{
	return used_entry(used, size);
}

/* ------------------------------------------------------------------ */
/* Guest side                                                          */
/* ------------------------------------------------------------------ */

int vsplit_guest_map(struct vsplit_guest *g, const struct vuiso_memmap *m,
		     size_t *hint)
{
	g->desc = vuiso_memmap_contig(m, g->desc_gpa, vring_desc_bytes(g->size),
				      hint);
	g->avail = vuiso_memmap_contig(m, g->avail_gpa,
				       vring_avail_bytes(g->size, g->event_idx),
				       hint);
	g->used = vuiso_memmap_contig(
		m, g->used_gpa, vring_used_bytes(g->size, g->event_idx), hint);
	if (!g->desc || !g->avail || !g->used)
		return -EFAULT;
	return 0;
}

int vsplit_guest_avail(struct vsplit_guest *g, char *why)
{
	uint16_t idx = vuiso_ld16(g->avail + AVAIL_IDX);
	uint16_t n = (uint16_t)(idx - g->last_avail);

	if (unlikely(n > g->size))
		return vring_bad(why, -EPROTO,
				 "guest: avail index jumped from %u to %u, "
				 "more than the queue size %u",
				 g->last_avail, idx, g->size);
	/*
	 * Pairs with the driver's write barrier between filling the avail
	 * ring (and descriptors) and storing avail->idx: what we read below
	 * is at least as new as @idx.
	 */
	atomic_thread_fence(memory_order_acquire);
	return n;
}

/* One descriptor, read once: from guest memory or from the private copy. */
static inline void read_desc(const uint8_t *d, bool private_copy,
			     struct vring_desc *out)
{
	if (private_copy) {
		memcpy(out, d, sizeof(*out));
		out->addr = le64toh(out->addr);
		out->len = le32toh(out->len);
		out->flags = le16toh(out->flags);
		out->next = le16toh(out->next);
	} else {
		out->addr = vuiso_ld64(d);
		out->len = vuiso_ld32(d + 8);
		out->flags = vuiso_ld16(d + 12);
		out->next = vuiso_ld16(d + 14);
	}
}

int vsplit_guest_walk(struct vsplit_guest *g, const struct vuiso_memmap *m,
		      size_t *hint, struct vuiso_chain *c, uint8_t *scratch,
		      char *why)
{
	const uint32_t size = g->size;
	const uint8_t *table = g->desc;
	uint32_t tsize = size; /* entries in the table being walked */
	uint32_t steps = 0;    /* descriptors visited in that table */
	bool indirect = false;
	uint32_t i;
	int ret;

	i = vuiso_ld16(avail_entry(g->avail, g->last_avail & (size - 1)));
	if (unlikely(i >= size))
		return vring_bad(why, -EPROTO,
				 "guest: head %u out of range (queue size %u)",
				 i, size);
	c->head = (uint16_t)i;
	c->id = (uint16_t)i;
	c->ndesc = 1; /* unused by split: the head names the whole chain */
	c->nseg = 0;
	c->out_bytes = 0;
	c->in_bytes = 0;

	for (;;) {
		struct vring_desc d;

		if (unlikely(i >= tsize))
			return vring_bad(
				why, -EPROTO,
				"guest: next %u out of range (%s table of %u)",
				i, indirect ? "indirect" : "descriptor", tsize);
		if (unlikely(++steps > tsize))
			return vring_bad(
				why, -ELOOP,
				"guest: descriptor loop in %s table at head %u",
				indirect ? "indirect" : "descriptor", c->head);
		read_desc(table + 16u * i, indirect, &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (unlikely(indirect))
				return vring_bad(why, -EPROTO,
						 "guest: nested indirect table "
						 "at head %u",
						 c->head);
			if (unlikely(!g->indirect))
				return vring_bad(
					why, -EPROTO,
					"guest: indirect descriptor without "
					"VIRTIO_F_INDIRECT_DESC");
			if (unlikely(d.flags & VRING_DESC_F_NEXT))
				return vring_bad(why, -EPROTO,
						 "guest: indirect descriptor "
						 "with NEXT at head %u",
						 c->head);
			if (unlikely(!d.len || d.len % 16 || d.len / 16 > size))
				return vring_bad(why, -EPROTO,
						 "guest: indirect table length "
						 "%u is not a multiple of 16 "
						 "between 16 and %u",
						 d.len, 16 * size);
			/* One read of the whole table into private memory. */
			if (unlikely(vuiso_memmap_read(m, d.addr, scratch,
						       d.len, hint)))
				return vring_bad(
					why, -EFAULT,
					"guest: indirect table 0x%" PRIx64
					"+%u is not in guest memory",
					d.addr, d.len);
			table = scratch;
			tsize = d.len / 16;
			steps = 0;
			indirect = true;
			i = 0;
			continue;
		}

		ret = vring_chain_push(c, d.addr, d.len,
				       d.flags & VRING_DESC_F_WRITE, size, why);
		if (unlikely(ret))
			return ret;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

void vsplit_guest_put_used(struct vsplit_guest *g, uint16_t id, uint32_t len,
			   const struct vuiso_log *log)
{
	uint32_t slot = g->used_idx & (g->size - 1);
	uint8_t *e = used_entry(g->used, slot);

	vuiso_st32(e, id);
	vuiso_st32(e + 4, len);
	g->used_idx++;
	vring_log(log, g->used_gpa + USED_RING + 8u * slot, 8);
}

/*
 * Publish @new_idx at @idx (used->idx on the guest side, avail->idx on the
 * shadow side) and tell whether the other side wants a notification: with
 * EVENT_IDX when its event index lies in (old, new], else when its
 * suppression @flag is clear.  This is the one place where the release
 * store and the full barrier of VIRTIO 2.7.7 / 2.7.10 happen:
 *  - release: entries (and, on the guest side, the bytes copied into guest
 *    buffers) are visible before the index; pairs with the other side's
 *    read barrier after it loads the index;
 *  - full barrier: the index is visible before we read the other side's
 *    event index or flags; pairs with its full barrier between writing
 *    those and re-reading our index.  Without it both could miss a wakeup.
 */
static bool publish_idx(uint8_t *idx, uint16_t new_idx, uint16_t old_idx,
			bool event_idx, const uint8_t *event,
			const uint8_t *flags, uint16_t flag)
{
	atomic_store_explicit((_Atomic uint16_t *)idx, htole16(new_idx),
			      memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	if (event_idx)
		return vring_need_event(vuiso_ld16(event), new_idx, old_idx);
	return !(vuiso_ld16(flags) & flag);
}

bool vsplit_guest_flush(struct vsplit_guest *g, const struct vuiso_log *log)
{
	uint16_t old = g->used_flushed;

	if (g->used_idx == old)
		return false;
	g->used_flushed = g->used_idx;
	vring_log(log, g->used_gpa + USED_IDX, 2);
	return publish_idx(g->used + USED_IDX, g->used_idx, old, g->event_idx,
			   used_event(g->avail, g->size),
			   g->avail + AVAIL_FLAGS, VRING_AVAIL_F_NO_INTERRUPT);
}

void vsplit_guest_kicks(struct vsplit_guest *g, bool on,
			const struct vuiso_log *log)
{
	if (g->event_idx) {
		/* Off: leave avail_event behind; the driver kicks only when
		 * it moves avail->idx across it. */
		if (!on)
			return;
		vuiso_st16(avail_event(g->used, g->size), g->last_avail);
		vring_log(log, g->used_gpa + USED_RING + 8u * g->size, 2);
	} else {
		if (on != g->kicks_off)
			return;
		vuiso_st16(g->used + USED_FLAGS,
			   on ? 0 : VRING_USED_F_NO_NOTIFY);
		g->kicks_off = !on;
		vring_log(log, g->used_gpa + USED_FLAGS, 2);
		if (!on)
			return;
	}
	/*
	 * The re-enabled state is visible before the caller re-reads
	 * avail->idx.  Pairs with the driver's full barrier between storing
	 * avail->idx and reading used->flags / avail_event.
	 */
	atomic_thread_fence(memory_order_seq_cst);
}

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

void vsplit_shadow_add(struct vsplit_shadow *s, const struct vuiso_sbuf *b,
		       unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint8_t *d = s->desc + 16u * b[i].id;
		uint16_t flags = b[i].write ? VRING_DESC_F_WRITE : 0;

		if (i + 1 < n)
			flags |= VRING_DESC_F_NEXT;
		vuiso_st64(d, b[i].addr);
		vuiso_st32(d + 8, b[i].len);
		vuiso_st16(d + 12, flags);
		vuiso_st16(d + 14, i + 1 < n ? b[i + 1].id : 0);
	}
	vuiso_st16(avail_entry(s->avail, s->avail_idx & (s->size - 1)),
		   b[0].id);
	s->avail_idx++;
}

bool vsplit_shadow_publish(struct vsplit_shadow *s)
{
	uint16_t old = s->avail_kicked;

	if (s->avail_idx == old)
		return false;
	s->avail_kicked = s->avail_idx;
	return publish_idx(s->avail + AVAIL_IDX, s->avail_idx, old,
			   s->event_idx, avail_event(s->used, s->size),
			   s->used + USED_FLAGS, VRING_USED_F_NO_NOTIFY);
}

int vsplit_shadow_used(struct vsplit_shadow *s, uint32_t inflight, char *why)
{
	uint16_t idx = vuiso_ld16(s->used + USED_IDX);
	uint16_t n = (uint16_t)(idx - s->last_used);

	if (unlikely(n > inflight))
		return vring_bad(why, -EPROTO,
				 "back-end: used index jumped from %u to %u "
				 "with only %u requests in flight",
				 s->last_used, idx, inflight);
	/*
	 * Pairs with the back-end's write barrier between filling used
	 * entries and storing used->idx.
	 */
	atomic_thread_fence(memory_order_acquire);
	return n;
}

void vsplit_shadow_get_used(struct vsplit_shadow *s, uint32_t *id,
			    uint32_t *len)
{
	uint8_t *e = used_entry(s->used, s->last_used & (s->size - 1));

	*id = vuiso_ld32(e);
	*len = vuiso_ld32(e + 4);
	s->last_used++;
}

void vsplit_shadow_calls(struct vsplit_shadow *s)
{
	if (s->event_idx)
		vuiso_st16(used_event(s->avail, s->size), s->last_used);
	/* Without EVENT_IDX avail->flags stays 0: calls are never off. */
	/*
	 * Pairs with the back-end's full barrier between storing used->idx
	 * and reading used_event: the caller re-reads used->idx next.
	 */
	atomic_thread_fence(memory_order_seq_cst);
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
	return 0;
}

static void vsplit_guest_state(const struct vuiso_guest_ring *gr,
			       struct vuiso_vq_state *st)
{
	st->avail_idx = gr->u.split.last_avail;
	st->used_idx = gr->u.split.used_idx;
	st->vring_base = st->avail_idx;
}

const struct vuiso_ring_ops vuiso_ring_split_ops = {
	.name = "split",
	.shadow_layout = vsplit_shadow_layout,
	.guest_setup = vsplit_guest_setup,
	.shadow_setup = vsplit_shadow_setup,
	.guest_state = vsplit_guest_state,
	.shadow_base = 0,
};
