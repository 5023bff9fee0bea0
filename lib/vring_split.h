/* SPDX-License-Identifier: MIT */
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
 * This header holds the layout's structs and its per-request fast path,
 * inline in the engine through the dispatch of vring.h; the structural
 * operations are in vring_split.c.  Include vring.h, not this.
 *
 * Memory ordering follows VIRTIO 2.7.7 / 2.7.13; every fence names the
 * barrier of the other side that it pairs with.
 */
#ifndef VUISO_VRING_SPLIT_H
#define VUISO_VRING_SPLIT_H

#ifndef VUISO_VRING_H
#error "include vring.h: it defines the layout-neutral types used here"
#endif

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Byte sizes of the three split-ring areas for a queue of @n entries. */
static inline uint64_t vring_desc_bytes(uint32_t n)
{
	return 16ULL * n;
}

static inline uint64_t vring_avail_bytes(uint32_t n, bool event_idx)
{
	return 4ULL + 2ULL * n + (event_idx ? 2 : 0);
}

static inline uint64_t vring_used_bytes(uint32_t n, bool event_idx)
{
	return 4ULL + 8ULL * n + (event_idx ? 2 : 0);
}

/* Guest side of a split ring (libvuiso is the device). */
struct vsplit_guest {
	uint32_t size;     /* entries, power of two */
	bool event_idx;    /* VIRTIO_F_EVENT_IDX negotiated with the guest */
	bool indirect;     /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa; /* ring addresses, re-translated every call */
	uint64_t avail_gpa;
	uint64_t used_gpa;
	uint8_t *desc; /* host pointers, valid for one call only */
	uint8_t *avail;
	uint8_t *used;
	uint16_t last_avail;   /* next avail entry to consume */
	uint16_t used_idx;     /* next used index to write */
	uint16_t used_flushed; /* used->idx as last published */
	bool kicks_known;      /* used->flags holds what we last wrote */
	bool kicks_off;        /* we set VRING_USED_F_NO_NOTIFY */
};

/* Shadow side of a split ring (libvuiso is the driver). */
struct vsplit_shadow {
	uint32_t size;  /* entries, power of two */
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated with back-end */
	uint8_t *desc;  /* VMM mapping inside the region */
	uint8_t *avail;
	uint8_t *used;
	uint16_t avail_idx;    /* next avail index (private, never read back) */
	uint16_t avail_kicked; /* avail_idx at the last kick decision */
	uint16_t last_used;    /* next used entry to read */
};

/* ---- Fast path, inline in the engine (vring.h dispatches) ---- */

/* Offsets inside the driver (avail) and device (used) areas. */
#define VSPLIT_AVAIL_FLAGS 0
#define VSPLIT_AVAIL_IDX 2
#define VSPLIT_AVAIL_RING 4
#define VSPLIT_USED_FLAGS 0
#define VSPLIT_USED_IDX 2
#define VSPLIT_USED_RING 4

static inline uint8_t *vsplit_avail_entry(uint8_t *avail, uint32_t i)
{
	return avail + VSPLIT_AVAIL_RING + 2u * i;
}

static inline uint8_t *vsplit_used_entry(uint8_t *used, uint32_t i)
{
	return used + VSPLIT_USED_RING + 8u * i;
}

/* vsplit_used_event lives after the avail ring, vsplit_avail_event after the used ring. */
static inline uint8_t *vsplit_used_event(uint8_t *avail, uint32_t size)
{
	return vsplit_avail_entry(avail, size);
}

static inline uint8_t *vsplit_avail_event(uint8_t *used, uint32_t size)
{
	return vsplit_used_entry(used, size);
}

/* ------------------------------------------------------------------ */
/* Guest side                                                          */
/* ------------------------------------------------------------------ */

static inline int vsplit_guest_map(struct vsplit_guest *g,
				   const struct vuiso_memmap *m, size_t *hint)
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

static inline int vsplit_guest_avail(struct vsplit_guest *g, char *why)
{
	uint16_t idx = vuiso_ld16(g->avail + VSPLIT_AVAIL_IDX);
	uint16_t n = (uint16_t)(idx - g->last_avail);

	if (unlikely(n > g->size))
		return vring_bad(
			why, -EPROTO,
			"guest: avail index jumped from %u to %u, more than the queue size %u",
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
static inline void vsplit_read_desc(const uint8_t *d, bool private_copy,
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

static inline __attribute__((always_inline)) int
vsplit_guest_walk(struct vsplit_guest *g, const struct vuiso_memmap *m,
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

	i = vuiso_ld16(
		vsplit_avail_entry(g->avail, g->last_avail & (size - 1)));
	if (unlikely(i >= size))
		return vring_bad(why, -EPROTO,
				 "guest: head %u out of range (queue size %u)",
				 i, size);
	c->head = (uint16_t)i;
	c->token = vring_token((uint16_t)i, 1); /* the head names it all */
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
		vsplit_read_desc(table + 16u * i, indirect, &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (unlikely(indirect))
				return vring_bad(
					why, -EPROTO,
					"guest: nested indirect table at head %u",
					c->head);
			if (unlikely(!g->indirect))
				return vring_bad(
					why, -EPROTO,
					"guest: indirect descriptor without VIRTIO_F_INDIRECT_DESC");
			if (unlikely(d.flags & VRING_DESC_F_NEXT))
				return vring_bad(
					why, -EPROTO,
					"guest: indirect descriptor with NEXT at head %u",
					c->head);
			if (unlikely(!d.len || d.len % 16 || d.len / 16 > size))
				return vring_bad(
					why, -EPROTO,
					"guest: indirect table length %u is not a multiple of 16 between 16 and %u",
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

static inline void vsplit_guest_put_used(struct vsplit_guest *g, uint16_t id,
					 uint32_t len, struct vuiso_log *log)
{
	uint32_t slot = g->used_idx & (g->size - 1);
	uint8_t *e = vsplit_used_entry(g->used, slot);

	vuiso_st32(e, id);
	vuiso_st32(e + 4, len);
	g->used_idx++;
	vring_log(log, g->used_gpa + VSPLIT_USED_RING + 8u * slot, 8);
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
static inline bool vsplit_publish_idx(uint8_t *idx, uint16_t new_idx,
				      uint16_t old_idx, bool event_idx,
				      const uint8_t *event,
				      const uint8_t *flags, uint16_t flag)
{
	atomic_store_explicit((_Atomic uint16_t *)idx, htole16(new_idx),
			      memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	if (event_idx)
		return vring_need_event(vuiso_ld16(event), new_idx, old_idx);
	return !(vuiso_ld16(flags) & flag);
}

static inline bool vsplit_guest_flush(struct vsplit_guest *g,
				      struct vuiso_log *log)
{
	uint16_t old = g->used_flushed;

	if (g->used_idx == old)
		return false;
	g->used_flushed = g->used_idx;
	vring_log(log, g->used_gpa + VSPLIT_USED_IDX, 2);
	return vsplit_publish_idx(
		g->used + VSPLIT_USED_IDX, g->used_idx, old, g->event_idx,
		vsplit_used_event(g->avail, g->size),
		g->avail + VSPLIT_AVAIL_FLAGS, VRING_AVAIL_F_NO_INTERRUPT);
}

static inline void vsplit_guest_kicks(struct vsplit_guest *g, bool on,
				      struct vuiso_log *log)
{
	if (g->event_idx) {
		/* Off: leave vsplit_avail_event behind; the driver kicks only when
		 * it moves avail->idx across it. */
		if (!on)
			return;
		vuiso_st16(vsplit_avail_event(g->used, g->size), g->last_avail);
		vring_log(log, g->used_gpa + VSPLIT_USED_RING + 8u * g->size,
			  2);
	} else {
		if (g->kicks_known && on != g->kicks_off)
			return;
		vuiso_st16(g->used + VSPLIT_USED_FLAGS,
			   on ? 0 : VRING_USED_F_NO_NOTIFY);
		g->kicks_known = true;
		g->kicks_off = !on;
		vring_log(log, g->used_gpa + VSPLIT_USED_FLAGS, 2);
		if (!on)
			return;
	}
	/*
	 * The re-enabled state is visible before the caller re-reads
	 * avail->idx.  Pairs with the driver's full barrier between storing
	 * avail->idx and reading used->flags / vsplit_avail_event.
	 */
	atomic_thread_fence(memory_order_seq_cst);
}

static inline void vsplit_shadow_add(struct vsplit_shadow *s,
				     const struct vuiso_sbuf *b, unsigned n)
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
	vuiso_st16(vsplit_avail_entry(s->avail, s->avail_idx & (s->size - 1)),
		   b[0].id);
	s->avail_idx++;
}

static inline bool vsplit_shadow_publish(struct vsplit_shadow *s)
{
	uint16_t old = s->avail_kicked;

	if (s->avail_idx == old)
		return false;
	s->avail_kicked = s->avail_idx;
	return vsplit_publish_idx(
		s->avail + VSPLIT_AVAIL_IDX, s->avail_idx, old, s->event_idx,
		vsplit_avail_event(s->used, s->size),
		s->used + VSPLIT_USED_FLAGS, VRING_USED_F_NO_NOTIFY);
}

static inline int vsplit_shadow_used(struct vsplit_shadow *s, uint32_t inflight,
				     char *why)
{
	uint16_t idx = vuiso_ld16(s->used + VSPLIT_USED_IDX);
	uint16_t n = (uint16_t)(idx - s->last_used);

	if (unlikely(n > inflight))
		return vring_bad(
			why, -EPROTO,
			"back-end: used index jumped from %u to %u with only %u requests in flight",
			s->last_used, idx, inflight);
	/*
	 * Pairs with the back-end's write barrier between filling used
	 * entries and storing used->idx.
	 */
	atomic_thread_fence(memory_order_acquire);
	return n;
}

static inline void vsplit_shadow_get_used(struct vsplit_shadow *s, uint32_t *id,
					  uint32_t *len)
{
	uint8_t *e = vsplit_used_entry(s->used, s->last_used & (s->size - 1));

	*id = vuiso_ld32(e);
	*len = vuiso_ld32(e + 4);
	s->last_used++;
}

/* Ask the back-end for no more calls: used_event one behind the next
 * entry (it would take 2^16 completions to cross it), or NO_INTERRUPT. */
static inline void vsplit_shadow_calls_off(struct vsplit_shadow *s)
{
	if (s->event_idx)
		vuiso_st16(vsplit_used_event(s->avail, s->size),
			   (uint16_t)(s->last_used - 1));
	else
		vuiso_st16(s->avail + VSPLIT_AVAIL_FLAGS,
			   VRING_AVAIL_F_NO_INTERRUPT);
}

static inline void vsplit_shadow_calls(struct vsplit_shadow *s)
{
	if (s->event_idx)
		vuiso_st16(vsplit_used_event(s->avail, s->size), s->last_used);
	/* Without EVENT_IDX avail->flags stays 0: calls are never off. */
	/*
	 * Pairs with the back-end's full barrier between storing used->idx
	 * and reading vsplit_used_event: the caller re-reads used->idx next.
	 */
	atomic_thread_fence(memory_order_seq_cst);
}

#endif /* VUISO_VRING_SPLIT_H */
