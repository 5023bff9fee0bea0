/* SPDX-License-Identifier: MIT */
/*
 * The ring layer: the seam between the shadow engine (svq.c) and the ring
 * layouts.  Each layout implements a guest side (libvuiso plays the device)
 * and a shadow side (libvuiso plays the driver); a queue picks the layout of
 * each side on its own, so a packed guest ring can be shadowed by a split
 * ring and the other way round.
 *
 * Structural operations go through struct vuiso_ring_ops; the per-request
 * operations are dispatched by an exhaustive switch on the layout in the
 * inline wrappers below, so the fast path has no indirect calls.  Every
 * layout has its own case in every switch and there is no default: the
 * layout is validated by vuiso_vq_start(), so anything else is unreachable.
 * The wrappers (and the chain walkers behind them) are always inline: the
 * engine instantiates its data path once per pair of layouts, where the
 * layout is a constant and each switch folds away.
 *
 * What crosses the seam carries nothing layout-specific: a validated chain
 * of guest buffers with an opaque guest token (buffer id and descriptor
 * count) that the engine hands back with the used element, and shadow
 * buffers whose id is the engine's slot id.  Each shadow side keeps its own
 * per-id accounting; the engine's request table is the authority that the
 * back-end's used ids are checked against.
 */
#ifndef VUISO_VRING_H
#define VUISO_VRING_H

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "internal.h"

/* One guest buffer of a chain, as validated (a private copy). */
struct vuiso_seg {
	uint64_t gpa;   /* guest physical address */
	uint32_t len;   /* bytes, never 0 */
	uint32_t write; /* non-zero: device-writable */
};

/*
 * The guest token of a chain, opaque to the engine: the id its used
 * element carries (split: the head; packed: the buffer id) and the ring
 * descriptors it takes (packed; split: 1), in one 32-bit value that the
 * engine keeps with the request and hands back with the used element.
 */
static inline uint32_t vring_token(uint16_t id, uint16_t ndesc)
{
	return id | (uint32_t)ndesc << 16;
}

static inline uint16_t vring_token_id(uint32_t token)
{
	return (uint16_t)token;
}

static inline uint16_t vring_token_ndesc(uint32_t token)
{
	return (uint16_t)(token >> 16);
}

/* A popped guest chain.  @seg is the queue's scratch array. */
struct vuiso_chain {
	uint16_t head;      /* head descriptor (packed: its position), for
			     * messages */
	uint16_t nseg;      /* buffers in @seg */
	uint32_t token;     /* the guest token (vring_token()) */
	uint32_t out_bytes; /* device-readable bytes */
	uint32_t in_bytes;  /* device-writable bytes */
	struct vuiso_seg *seg;
};

/* One shadow buffer to publish: what the back-end will see. */
struct vuiso_sbuf {
	uint64_t addr; /* back-end address inside the isolated region */
	uint32_t len;
	uint16_t id;   /* engine slot id; the first one names the chain */
	uint8_t write; /* non-zero: device-writable */
};

/* One range of guest memory the library wrote. */
struct vuiso_log_range {
	uint64_t gpa;
	uint64_t len;
};

/*
 * The guest writes of one data-path call while dirty logging is on (else
 * the walkers get NULL).  They are handed to ops->log_write only after the
 * call has left the RCU read side, because a VMM's log_write may take a
 * lock that a thread in vuiso_dev_set_guest_memory() holds while it waits
 * for readers.  Adjacent and repeated ranges merge; the engine stops a call
 * early (as if its budget ran out) before the buffer can fill.
 */
struct vuiso_log {
	struct vuiso_log_range *r; /* @cap entries, private memory */
	uint32_t n;                /* entries in use */
	uint32_t cap;
};

static inline void vring_log(struct vuiso_log *log, uint64_t gpa, uint64_t len)
{
	struct vuiso_log_range *last;

	if (likely(!log))
		return;
	if (log->n) {
		last = &log->r[log->n - 1];
		if (gpa == last->gpa + last->len) {
			last->len += len;
			return;
		}
		if (gpa >= last->gpa && gpa + len <= last->gpa + last->len)
			return;
		if (unlikely(log->n == log->cap)) {
			/* Never reached (the engine keeps room); logging
			 * too much is safe, missing a write is not. */
			uint64_t end = last->gpa + last->len;

			if (gpa + len > end)
				end = gpa + len;
			if (gpa < last->gpa)
				last->gpa = gpa;
			last->len = end - last->gpa;
			return;
		}
	}
	log->r[log->n++] = (struct vuiso_log_range){gpa, len};
}

/*
 * The one reporter of peer misbehaviour: writes the message (which names
 * the side, "guest:" or "back-end:") into @why and returns @err, so that a
 * walker can `return vring_bad(why, -EPROTO, ...)`.  Cold and out of line:
 * no formatting code on the fast path.
 */
VUISO_INTERNAL int vring_bad(char *why, int err, const char *fmt, ...)
	__attribute__((cold, format(printf, 3, 4)));

/*
 * Append one guest data buffer, already read once into private memory, to
 * @c after the checks every layout shares: not empty, no 64-bit wrap,
 * device-readable buffers before device-writable ones, at most @max
 * buffers and 4 GiB in the chain.  Return 0 or a negative errno with @why
 * set.
 */
static inline int vring_chain_push(struct vuiso_chain *c, uint64_t addr,
				   uint32_t len, bool write, uint32_t max,
				   char *why)
{
	struct vuiso_seg *sg;

	if (unlikely(!len))
		return vring_bad(why, -EPROTO,
				 "guest: zero-length descriptor at head %u",
				 c->head);
	if (unlikely(len - 1 > UINT64_MAX - addr))
		return vring_bad(why, -EFAULT,
				 "guest: descriptor 0x%" PRIx64
				 "+%u overflows the address space",
				 addr, len);
	if (unlikely(!write && c->in_bytes))
		return vring_bad(
			why, -EPROTO,
			"guest: device-readable descriptor after device-writable at head %u",
			c->head);
	if (unlikely(c->nseg >= max))
		return vring_bad(
			why, -ELOOP,
			"guest: chain at head %u longer than the queue size %u",
			c->head, max);
	/* The sum so far is at most UINT32_MAX: no wrap on the right. */
	if (unlikely(len > UINT32_MAX - (c->out_bytes + c->in_bytes)))
		return vring_bad(why, -EPROTO,
				 "guest: chain at head %u longer than 4 GiB",
				 c->head);
	sg = &c->seg[c->nseg++];
	sg->gpa = addr;
	sg->len = len;
	sg->write = write;
	if (write)
		c->in_bytes += len;
	else
		c->out_bytes += len;
	return 0;
}

/* The layouts: their structs and their inline fast paths. */
#include "vring_packed.h"
#include "vring_split.h"

/* ---- Per-queue state of either layout ---- */

struct vuiso_guest_ring {
	union {
		struct vsplit_guest split;
		struct vpacked_guest packed;
	} u;
};

struct vuiso_shadow_ring {
	union {
		struct vsplit_shadow split;
		struct vpacked_shadow packed;
	} u;
};

/* Private per-id memory a layout may use, allocated once per queue for
 * queue_size_max ids by the engine (no allocation on start). */
struct vuiso_ring_ids {
	uint8_t *guest_busy;    /* guest side: buffer id in flight */
	uint16_t *shadow_ndesc; /* shadow side: descriptors per buffer id */
};

/* Structural (control-path) operations of one layout. */
struct vuiso_ring_ops {
	const char *name;
	/* Bytes the shadow ring of @size entries takes in the region, with
	 * the offsets of its three areas from its start. */
	uint64_t (*shadow_layout)(uint32_t size, uint64_t *desc_off,
				  uint64_t *drv_off, uint64_t *dev_off);
	/* Check the guest ring config (alignment, start indices) and set up
	 * the guest state. */
	int (*guest_setup)(struct vuiso_guest_ring *g,
			   const struct vuiso_vq_config *cfg,
			   const struct vuiso_ring_ids *ids);
	/* Reset the shadow ring in the region and its private state. */
	void (*shadow_setup)(struct vuiso_shadow_ring *s, uint8_t *base,
			     uint32_t size, bool event_idx,
			     const struct vuiso_ring_ids *ids);
	/* Guest indices to hand back when the queue stops. */
	void (*guest_state)(const struct vuiso_guest_ring *g,
			    struct vuiso_vq_state *st);
	/* Give the newest consumed chain (guest token @token) back to the
	 * guest ring: the next start reads it again. */
	void (*guest_unconsume)(struct vuiso_guest_ring *g, uint32_t token);
	/*
	 * Stopping: the back-end reported @backend_base (its GET_VRING_BASE)
	 * as the next entry it would have taken.  If the newest chain added
	 * (@nslots descriptors) lies at or after it, take it off our ring
	 * and return 1; 0 when our ring ends at @backend_base; -EPROTO when
	 * @backend_base cannot be an index of what was added.
	 */
	int (*shadow_unadd)(struct vuiso_shadow_ring *s, uint32_t backend_base,
			    uint16_t nslots);
	/* VHOST_USER_SET_VRING_BASE value of a fresh shadow ring. */
	uint32_t shadow_base;
};

VUISO_INTERNAL extern const struct vuiso_ring_ops vuiso_ring_split_ops;
VUISO_INTERNAL extern const struct vuiso_ring_ops vuiso_ring_packed_ops;

static inline const struct vuiso_ring_ops *vring_ops(enum vuiso_layout layout)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return &vuiso_ring_split_ops;
	case VUISO_LAYOUT_PACKED:
		return &vuiso_ring_packed_ops;
	}
	return NULL; /* not a layout: the caller refuses it */
}

/* ---- Fast-path dispatch: guest side ---- */

/* Translate the guest ring areas for this call.  0 or -EFAULT. */
static inline __attribute__((always_inline)) int
vring_guest_map(enum vuiso_layout layout, struct vuiso_guest_ring *g,
		const struct vuiso_memmap *m, size_t *hint)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return vsplit_guest_map(&g->u.split, m, hint);
	case VUISO_LAYOUT_PACKED:
		return vpacked_guest_map(&g->u.packed, m, hint);
	}
	__builtin_unreachable();
}

/*
 * Is there a next chain?  Return the number of chains known to be
 * available (at least 1), 0 when none, or a negative errno with @why set.
 * Reads that follow see at least what the count promised (acquire).
 */
static inline __attribute__((always_inline)) int
vring_guest_avail(enum vuiso_layout layout, struct vuiso_guest_ring *g,
		  char *why)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return vsplit_guest_avail(&g->u.split, why);
	case VUISO_LAYOUT_PACKED:
		return vpacked_guest_avail(&g->u.packed, why);
	}
	__builtin_unreachable();
}

/*
 * Read and validate the next available chain into @c (each descriptor
 * read once into private memory; an indirect table copied whole into
 * @scratch first).  Sets every field of @c but @seg, whose array it
 * fills.  Nothing is consumed.  0 or a negative errno.
 */
static inline __attribute__((always_inline)) int
vring_guest_walk(enum vuiso_layout layout, struct vuiso_guest_ring *g,
		 const struct vuiso_memmap *m, size_t *hint,
		 struct vuiso_chain *c, uint8_t *scratch, char *why)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return vsplit_guest_walk(&g->u.split, m, hint, c, scratch, why);
	case VUISO_LAYOUT_PACKED:
		return vpacked_guest_walk(&g->u.packed, m, hint, c, scratch,
					  why);
	}
	__builtin_unreachable();
}

/* The chain vring_guest_walk() returned is taken for good. */
static inline __attribute__((always_inline)) void
vring_guest_consume(enum vuiso_layout layout, struct vuiso_guest_ring *g,
		    const struct vuiso_chain *c)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		g->u.split.last_avail++;
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_guest_consume(&g->u.packed, c);
		return;
	}
	__builtin_unreachable();
}

/* Return a chain to the guest by its token; visible after the flush. */
static inline __attribute__((always_inline)) void
vring_guest_put_used(enum vuiso_layout layout, struct vuiso_guest_ring *g,
		     uint32_t token, uint32_t len, struct vuiso_log *log)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		vsplit_guest_put_used(&g->u.split, vring_token_id(token), len,
				      log);
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_guest_put_used(&g->u.packed, vring_token_id(token),
				       vring_token_ndesc(token), len, log);
		return;
	}
	__builtin_unreachable();
}

/* Publish the used elements put since the last flush; true when the guest
 * wants an interrupt. */
static inline __attribute__((always_inline)) bool
vring_guest_flush(enum vuiso_layout layout, struct vuiso_guest_ring *g,
		  struct vuiso_log *log)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return vsplit_guest_flush(&g->u.split, log);
	case VUISO_LAYOUT_PACKED:
		return vpacked_guest_flush(&g->u.packed, log);
	}
	__builtin_unreachable();
}

/* Ask the guest for kicks (@on) or tell it they are not needed now.  On
 * re-enabling, a full barrier orders it before the caller's next look. */
static inline __attribute__((always_inline)) void
vring_guest_kicks(enum vuiso_layout layout, struct vuiso_guest_ring *g, bool on,
		  struct vuiso_log *log)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		vsplit_guest_kicks(&g->u.split, on, log);
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_guest_kicks(&g->u.packed, on, log);
		return;
	}
	__builtin_unreachable();
}

/* ---- Fast-path dispatch: shadow side ---- */

/* Write one chain of @n shadow buffers; b[0].id names it.  The caller has
 * checked that the ring has room for @n descriptors. */
static inline __attribute__((always_inline)) void
vring_shadow_add(enum vuiso_layout layout, struct vuiso_shadow_ring *s,
		 const struct vuiso_sbuf *b, unsigned n)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		vsplit_shadow_add(&s->u.split, b, n);
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_shadow_add(&s->u.packed, b, n);
		return;
	}
	__builtin_unreachable();
}

/* Make the added chains visible; true when the back-end wants a kick. */
static inline __attribute__((always_inline)) bool
vring_shadow_publish(enum vuiso_layout layout, struct vuiso_shadow_ring *s)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return vsplit_shadow_publish(&s->u.split);
	case VUISO_LAYOUT_PACKED:
		return vpacked_shadow_publish(&s->u.packed);
	}
	__builtin_unreachable();
}

/*
 * Is there a next used element?  Return how many are known to be ready (at
 * least 1), 0 when none, or a negative errno with @why set.
 */
static inline __attribute__((always_inline)) int
vring_shadow_used(enum vuiso_layout layout, struct vuiso_shadow_ring *s,
		  uint32_t inflight, char *why)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return vsplit_shadow_used(&s->u.split, inflight, why);
	case VUISO_LAYOUT_PACKED:
		return vpacked_shadow_used(&s->u.packed);
	}
	__builtin_unreachable();
}

/* Read the next used element.  The engine validates @id against its
 * request table before it calls vring_shadow_done(). */
static inline __attribute__((always_inline)) void
vring_shadow_get_used(enum vuiso_layout layout, struct vuiso_shadow_ring *s,
		      uint32_t *id, uint32_t *len)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		vsplit_shadow_get_used(&s->u.split, id, len);
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_shadow_get_used(&s->u.packed, id, len);
		return;
	}
	__builtin_unreachable();
}

/* The chain @id, validated as in flight, is complete: release its ring
 * accounting (split: the engine's slots are its descriptors). */
static inline __attribute__((always_inline)) void
vring_shadow_done(enum vuiso_layout layout, struct vuiso_shadow_ring *s,
		  uint16_t id)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_shadow_done(&s->u.packed, id);
		return;
	}
	__builtin_unreachable();
}

/* Ask the back-end for a call at its next used element; a full barrier
 * orders that before the caller's next look. */
static inline __attribute__((always_inline)) void
vring_shadow_calls(enum vuiso_layout layout, struct vuiso_shadow_ring *s)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		vsplit_shadow_calls(&s->u.split);
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_shadow_calls(&s->u.packed);
		return;
	}
	__builtin_unreachable();
}

/* Ask the back-end for no more calls (a stop polls what is left). */
static inline __attribute__((always_inline)) void
vring_shadow_calls_off(enum vuiso_layout layout, struct vuiso_shadow_ring *s)
{
	switch (layout) {
	case VUISO_LAYOUT_SPLIT:
		vsplit_shadow_calls_off(&s->u.split);
		return;
	case VUISO_LAYOUT_PACKED:
		vpacked_shadow_calls_off(&s->u.packed);
		return;
	}
	__builtin_unreachable();
}

#endif /* VUISO_VRING_H */
