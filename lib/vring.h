/* SPDX-License-Identifier: MIT */
/*
 * The ring layer: the seam between the shadow engine (svq.c) and the ring
 * layouts.  Each layout implements a guest side (libvuiso plays the device)
 * and a shadow side (libvuiso plays the driver).  Structural operations go
 * through struct vuiso_ring_ops; the per-request operations are dispatched
 * by a switch on the layout in the inline wrappers below, so the fast path
 * has no indirect calls.  A new layout adds its state to the unions, an ops
 * table, and one case per wrapper; the engine does not change.
 */
#ifndef VUISO_VRING_H
#define VUISO_VRING_H

#include "internal.h"

/* One guest buffer of a chain, as validated (a private copy). */
struct vuiso_seg {
	uint64_t gpa;   /* guest physical address */
	uint32_t len;   /* bytes, never 0 */
	uint32_t write; /* non-zero: device-writable */
};

/* A popped guest chain.  @seg is the queue's scratch array. */
struct vuiso_chain {
	uint16_t head;      /* guest head id, returned in the used element */
	uint16_t nseg;      /* buffers in @seg */
	uint32_t out_bytes; /* device-readable bytes */
	uint32_t in_bytes;  /* device-writable bytes */
	struct vuiso_seg *seg;
};

/* One shadow buffer to publish: what the back-end will see. */
struct vuiso_sbuf {
	uint64_t addr; /* back-end address inside the isolated region */
	uint32_t len;
	uint16_t id;   /* engine slot id (split: the descriptor index) */
	uint8_t write; /* non-zero: device-writable */
	uint8_t order; /* engine scratch: bounce block order */
};

/* Where guest writes are reported while dirty logging is on (else NULL). */
struct vuiso_log {
	void (*fn)(void *opaque, uint64_t gpa, uint64_t len);
	void *opaque;
};

/* ---- Split layout ---- */

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

VUISO_INTERNAL int vsplit_guest_map(struct vsplit_guest *g,
				    const struct vuiso_memmap *m, size_t *hint);
VUISO_INTERNAL int vsplit_guest_avail(struct vsplit_guest *g, char *why);
VUISO_INTERNAL int vsplit_guest_walk(struct vsplit_guest *g,
				     const struct vuiso_memmap *m, size_t *hint,
				     struct vuiso_chain *c, uint8_t *scratch,
				     char *why);
VUISO_INTERNAL void vsplit_guest_put_used(struct vsplit_guest *g, uint16_t head,
					  uint32_t len,
					  const struct vuiso_log *log);
VUISO_INTERNAL bool vsplit_guest_flush(struct vsplit_guest *g,
				       const struct vuiso_log *log);
VUISO_INTERNAL void vsplit_guest_kicks(struct vsplit_guest *g, bool on,
				       const struct vuiso_log *log);

VUISO_INTERNAL void vsplit_shadow_init(struct vsplit_shadow *s, uint8_t *base,
				       uint32_t size, bool event_idx);
VUISO_INTERNAL void vsplit_shadow_add(struct vsplit_shadow *s,
				      const struct vuiso_sbuf *b, unsigned n);
VUISO_INTERNAL bool vsplit_shadow_publish(struct vsplit_shadow *s);
VUISO_INTERNAL int vsplit_shadow_used(struct vsplit_shadow *s,
				      uint32_t inflight, char *why);
VUISO_INTERNAL void vsplit_shadow_get_used(struct vsplit_shadow *s,
					   uint32_t *id, uint32_t *len);
VUISO_INTERNAL void vsplit_shadow_calls(struct vsplit_shadow *s);

/* ---- Layout-neutral state and structural operations ---- */

struct vuiso_guest_ring {
	union {
		struct vsplit_guest split;
	} u;
};

struct vuiso_shadow_ring {
	union {
		struct vsplit_shadow split;
	} u;
};

struct vuiso_ring_ops {
	const char *name;
	/* Bytes the shadow ring of @size entries takes in the region, with
	 * the offsets of its three areas from its start. */
	uint64_t (*shadow_layout)(uint32_t size, uint64_t *desc_off,
				  uint64_t *avail_off, uint64_t *used_off);
	/* Check the guest ring config (alignment) and set up guest state. */
	int (*guest_setup)(struct vuiso_guest_ring *g,
			   const struct vuiso_vq_config *cfg);
	/* Reset the shadow ring in the region and its private state. */
	void (*shadow_setup)(struct vuiso_shadow_ring *s, uint8_t *base,
			     uint32_t size, bool event_idx);
	/* Guest indices to hand back when the queue stops. */
	void (*guest_state)(const struct vuiso_guest_ring *g,
			    struct vuiso_vq_state *st);
};

VUISO_INTERNAL extern const struct vuiso_ring_ops vuiso_ring_split_ops;

/* ---- Fast-path dispatch ---- */

static inline int vring_guest_map(uint32_t layout, struct vuiso_guest_ring *g,
				  const struct vuiso_memmap *m, size_t *hint)
{
	switch (layout) {
	default:
		return vsplit_guest_map(&g->u.split, m, hint);
	}
}

static inline int vring_guest_avail(uint32_t layout, struct vuiso_guest_ring *g,
				    char *why)
{
	switch (layout) {
	default:
		return vsplit_guest_avail(&g->u.split, why);
	}
}

static inline int vring_guest_walk(uint32_t layout, struct vuiso_guest_ring *g,
				   const struct vuiso_memmap *m, size_t *hint,
				   struct vuiso_chain *c, uint8_t *scratch,
				   char *why)
{
	switch (layout) {
	default:
		return vsplit_guest_walk(&g->u.split, m, hint, c, scratch, why);
	}
}

/* The chain vring_guest_walk() returned is taken for good. */
static inline void vring_guest_consume(uint32_t layout,
				       struct vuiso_guest_ring *g)
{
	switch (layout) {
	default:
		g->u.split.last_avail++;
		break;
	}
}

static inline void vring_guest_put_used(uint32_t layout,
					struct vuiso_guest_ring *g,
					uint16_t head, uint32_t len,
					const struct vuiso_log *log)
{
	switch (layout) {
	default:
		vsplit_guest_put_used(&g->u.split, head, len, log);
		break;
	}
}

static inline bool vring_guest_flush(uint32_t layout,
				     struct vuiso_guest_ring *g,
				     const struct vuiso_log *log)
{
	switch (layout) {
	default:
		return vsplit_guest_flush(&g->u.split, log);
	}
}

static inline void vring_guest_kicks(uint32_t layout,
				     struct vuiso_guest_ring *g, bool on,
				     const struct vuiso_log *log)
{
	switch (layout) {
	default:
		vsplit_guest_kicks(&g->u.split, on, log);
		break;
	}
}

static inline void vring_shadow_add(uint32_t layout,
				    struct vuiso_shadow_ring *s,
				    const struct vuiso_sbuf *b, unsigned n)
{
	switch (layout) {
	default:
		vsplit_shadow_add(&s->u.split, b, n);
		break;
	}
}

static inline bool vring_shadow_publish(uint32_t layout,
					struct vuiso_shadow_ring *s)
{
	switch (layout) {
	default:
		return vsplit_shadow_publish(&s->u.split);
	}
}

static inline int vring_shadow_used(uint32_t layout,
				    struct vuiso_shadow_ring *s,
				    uint32_t inflight, char *why)
{
	switch (layout) {
	default:
		return vsplit_shadow_used(&s->u.split, inflight, why);
	}
}

static inline void vring_shadow_get_used(uint32_t layout,
					 struct vuiso_shadow_ring *s,
					 uint32_t *id, uint32_t *len)
{
	switch (layout) {
	default:
		vsplit_shadow_get_used(&s->u.split, id, len);
		break;
	}
}

static inline void vring_shadow_calls(uint32_t layout,
				      struct vuiso_shadow_ring *s)
{
	switch (layout) {
	default:
		vsplit_shadow_calls(&s->u.split);
		break;
	}
}

#endif /* VUISO_VRING_H */
