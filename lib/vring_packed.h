/* SPDX-License-Identifier: MIT */
/*
 * The packed virtqueue (VIRTIO 1.2, 2.8), both ways.
 *
 * A packed ring is one array of descriptors that the driver and the device
 * walk in the same direction.  Each side keeps a position and a wrap
 * counter; a descriptor is available when its AVAIL flag equals the
 * driver's wrap counter and its USED flag does not, and used when both
 * equal the device's.  A chain takes consecutive descriptors; the device
 * writes one used descriptor per chain, carrying the buffer id of the
 * chain's last descriptor, and both sides skip as many positions as the
 * chain took (so the driver must remember that count per buffer id).
 *
 * Guest side: libvuiso is the device.  Each descriptor of a chain is read
 * once per walk into private memory and validated there, its availability
 * included: a descriptor the driver did not make available for the current
 * wrap is a protocol error, not a reason to wait.  An indirect table is
 * copied whole into private scratch first.  Buffer ids are checked against a
 * private in-flight table, and the descriptors in flight against the ring
 * size, so a guest that reuses an id or overlaps chains breaks the queue.
 *
 * Shadow side: libvuiso is the driver.  Descriptors are written, never read
 * back; the only values read from the shadow ring are the used descriptors
 * (flags, id, len) and the back-end's event suppression.  The engine checks
 * each used id against its request table; this side keeps the descriptor
 * count per id that tells how far to skip.
 *
 * This header holds the layout's structs and its per-request fast path,
 * inline in the engine through the dispatch of vring.h; the structural
 * operations are in vring_packed.c.  Include vring.h, not this.
 *
 * Memory ordering follows VIRTIO 2.8.21 / 2.8.22; every fence names the
 * barrier of the other side that it pairs with.
 */
#ifndef VUISO_VRING_PACKED_H
#define VUISO_VRING_PACKED_H

#ifndef VUISO_VRING_H
#error "include vring.h: it defines the layout-neutral types used here"
#endif

/* Descriptor flags; AVAIL and USED carry the wrap counters. */
#define VPACKED_F_NEXT 1
#define VPACKED_F_WRITE 2
#define VPACKED_F_INDIRECT 4
#define VPACKED_F_AVAIL (1u << 7)
#define VPACKED_F_USED (1u << 15)

/* Event suppression structure: le16 off_wrap, le16 flags. */
#define VPACKED_EVENT_OFF_WRAP 0
#define VPACKED_EVENT_FLAGS 2
#define VPACKED_EVENT_ENABLE 0
#define VPACKED_EVENT_DISABLE 1
#define VPACKED_EVENT_DESC 2

/* Descriptor: le64 addr, le32 len, le16 id, le16 flags. */
#define VPACKED_DESC_ADDR 0
#define VPACKED_DESC_LEN 8
#define VPACKED_DESC_ID 12
#define VPACKED_DESC_FLAGS 14

/* A ring position and its wrap counter, as vhost-user encodes them. */
#define VPACKED_WRAP_BIT 15

/*
 * The wrap counter of a lap is kept as the AVAIL/USED pair a descriptor
 * carries in that lap ("lap bits"): for availability AVAIL = w, USED = !w;
 * for use both = w.  Either pattern flips to the next lap's by one XOR with
 * both bits, its AVAIL bit is the wrap counter, and testing a descriptor is
 * one mask and one compare, with no per-descriptor conversion from a bool.
 */
#define VPACKED_F_LAP (VPACKED_F_AVAIL | VPACKED_F_USED)

/* Guest side of a packed ring (libvuiso is the device). */
struct vpacked_guest {
	uint32_t size;     /* descriptors in the ring */
	bool event_idx;    /* VIRTIO_F_EVENT_IDX: DESC event mode allowed */
	bool indirect;     /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa; /* descriptor ring, re-translated every call */
	uint64_t drv_gpa;  /* driver event suppression (the driver writes) */
	uint64_t dev_gpa;  /* device event suppression (we write) */
	uint8_t *desc;     /* host pointers, valid for one call only */
	uint8_t *drv;
	uint8_t *dev;
	uint16_t last_avail;  /* position of the next descriptor to take */
	uint16_t avail_lap;   /* lap bits that make it available */
	uint16_t used;        /* position of the next used descriptor */
	uint16_t used_lap;    /* lap bits that mark it used */
	uint32_t inflight;    /* descriptors taken and not yet used */
	uint32_t unflushed;   /* descriptors made used since the last flush */
	uint16_t first_pos;   /* first used descriptor of the unflushed batch */
	uint16_t first_flags; /* its flags, stored last by the flush */
	bool kicks_known;     /* the device area holds what we last wrote */
	bool kicks_off;       /* we last wrote DISABLE */
	uint8_t *busy;        /* per buffer id: non-zero while in flight */
};

/* Shadow side of a packed ring (libvuiso is the driver). */
struct vpacked_shadow {
	uint32_t size;      /* descriptors in the ring */
	bool event_idx;     /* VIRTIO_F_EVENT_IDX negotiated with back-end */
	uint8_t *desc;      /* VMM mapping inside the region */
	uint8_t *drv;       /* driver event suppression (we write) */
	uint8_t *dev;       /* device event suppression (the back-end writes) */
	uint16_t avail;     /* next position to fill (private) */
	uint16_t avail_lap; /* lap bits that make it available */
	uint16_t used;      /* next position to read a used descriptor at */
	uint16_t used_lap;  /* lap bits that mark it used */
	uint32_t unkicked;  /* descriptors added since the last kick decision */
	uint16_t *ndesc;    /* per buffer id in flight: ring descriptors */
};

/* ---- Fast path, inline in the engine (vring.h dispatches) ---- */

static inline uint8_t *vpacked_desc(uint8_t *ring, uint32_t pos)
{
	return ring + 16u * pos;
}

/* Lap bits of an available (used) descriptor with wrap counter @w. */
static inline uint16_t vpacked_avail_lap(bool w)
{
	return w ? VPACKED_F_AVAIL : VPACKED_F_USED;
}

static inline uint16_t vpacked_used_lap(bool w)
{
	return w ? VPACKED_F_LAP : 0;
}

/* The wrap counter that lap bits of either kind stand for. */
static inline bool vpacked_lap_wrap(uint16_t lap)
{
	return lap & VPACKED_F_AVAIL;
}

/* Position @pos and the wrap counter of @lap as off_wrap encodes them. */
static inline uint16_t vpacked_off_wrap(uint16_t pos, uint16_t lap)
{
	return (uint16_t)(pos | vpacked_lap_wrap(lap) << VPACKED_WRAP_BIT);
}

/* Does a descriptor's @flags carry exactly the lap bits @lap? */
static inline bool vpacked_in_lap(uint16_t flags, uint16_t lap)
{
	return (flags & VPACKED_F_LAP) == lap;
}

/* Move a position and its lap bits @n (at most @size) places on. */
static inline void vpacked_advance(uint16_t *pos, uint16_t *lap, uint32_t n,
				   uint32_t size)
{
	uint32_t p = *pos + n;

	if (p >= size) {
		p -= size;
		*lap ^= VPACKED_F_LAP;
	}
	*pos = (uint16_t)p;
}

/*
 * VIRTIO 2.8.10: the other side asked for a notification when the
 * descriptor at @off_wrap (position | wrap counter << 15) is made
 * available / used.  We just moved @count positions, ending at @pos in the
 * lap of @lap.  An event position of the previous lap is moved back by a
 * ring size, so that one window test works across the wrap.
 */
static inline bool vpacked_event_hit(uint16_t off_wrap, uint16_t pos,
				     uint16_t lap, uint32_t count,
				     uint32_t size)
{
	uint16_t event = off_wrap & ~(1u << VPACKED_WRAP_BIT);

	if ((bool)(off_wrap >> VPACKED_WRAP_BIT) != vpacked_lap_wrap(lap))
		event = (uint16_t)(event - size);
	return vring_need_event(event, pos, (uint16_t)(pos - count));
}

/* Whether the side that owns the event structure at @ev wants to hear that
 * we moved @count positions to (@pos, @lap). */
static inline bool vpacked_event_wanted(const uint8_t *ev, bool event_idx,
					uint16_t pos, uint16_t lap,
					uint32_t count, uint32_t size)
{
	uint16_t flags = vuiso_ld16(ev + VPACKED_EVENT_FLAGS);

	if (flags == VPACKED_EVENT_DISABLE)
		return false;
	if (flags == VPACKED_EVENT_DESC && event_idx)
		return vpacked_event_hit(
			vuiso_ld16(ev + VPACKED_EVENT_OFF_WRAP), pos, lap,
			count, size);
	/* ENABLE, or a value we do not know: notifying is always safe. */
	return true;
}

/* ------------------------------------------------------------------ */
/* Guest side                                                          */
/* ------------------------------------------------------------------ */

static inline int vpacked_guest_map(struct vpacked_guest *g,
				    const struct vuiso_memmap *m, size_t *hint)
{
	g->desc = vuiso_memmap_contig(m, g->desc_gpa, 16ULL * g->size, hint);
	g->drv = vuiso_memmap_contig(m, g->drv_gpa, 4, hint);
	g->dev = vuiso_memmap_contig(m, g->dev_gpa, 4, hint);
	if (!g->desc || !g->drv || !g->dev)
		return -EFAULT;
	return 0;
}

static inline int vpacked_guest_avail(struct vpacked_guest *g, char *why)
{
	uint16_t flags = vuiso_ld16(vpacked_desc(g->desc, g->last_avail) +
				    VPACKED_DESC_FLAGS);

	(void)why;
	if (!vpacked_in_lap(flags, g->avail_lap))
		return 0;
	/*
	 * Pairs with the driver's write barrier between filling a chain and
	 * storing its head's flags: the whole chain is visible from here.
	 */
	atomic_thread_fence(memory_order_acquire);
	return 1;
}

/* The entries of an indirect table, already copied to private memory. */
static inline int vpacked_walk_indirect(struct vuiso_chain *c, const uint8_t *t,
					uint32_t n, uint32_t size, char *why)
{
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *d = t + 16u * i;
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
		int ret;

		memcpy(&addr, d + VPACKED_DESC_ADDR, 8);
		memcpy(&len, d + VPACKED_DESC_LEN, 4);
		memcpy(&flags, d + VPACKED_DESC_FLAGS, 2);
		flags = le16toh(flags);
		/* NEXT has no meaning in a packed indirect table: every entry
		 * of the table belongs to the chain. */
		if (unlikely(flags & VPACKED_F_INDIRECT))
			return vring_bad(
				why, -EPROTO,
				"guest: nested indirect table at head %u",
				c->head);
		ret = vring_chain_push(c, le64toh(addr), le32toh(len),
				       flags & VPACKED_F_WRITE, size, why);
		if (unlikely(ret))
			return ret;
	}
	return 0;
}

static inline __attribute__((always_inline)) int
vpacked_guest_walk(struct vpacked_guest *g, const struct vuiso_memmap *m,
		   size_t *hint, struct vuiso_chain *c, uint8_t *scratch,
		   char *why)
{
	const uint32_t size = g->size;
	uint16_t pos = g->last_avail, lap = g->avail_lap, id;
	uint32_t ndesc = 0;
	int ret;

	c->head = pos;
	c->nseg = 0;
	c->out_bytes = 0;
	c->in_bytes = 0;

	for (;;) {
		const uint8_t *d = vpacked_desc(g->desc, pos);
		uint64_t addr;
		uint32_t len;
		uint16_t flags;

		if (unlikely(++ndesc > size))
			return vring_bad(
				why, -ELOOP,
				"guest: chain at head %u longer than the ring of %u descriptors",
				c->head, size);
		/* Each field once, into locals. */
		flags = vuiso_ld16(d + VPACKED_DESC_FLAGS);
		addr = vuiso_ld64(d + VPACKED_DESC_ADDR);
		len = vuiso_ld32(d + VPACKED_DESC_LEN);
		id = vuiso_ld16(d + VPACKED_DESC_ID);
		if (unlikely(!vpacked_in_lap(flags, lap)))
			return vring_bad(
				why, -EPROTO,
				"guest: descriptor %u of the chain at head %u is not available for wrap counter %u (flags 0x%x)",
				pos, c->head, vpacked_lap_wrap(lap), flags);

		if (flags & VPACKED_F_INDIRECT) {
			if (unlikely(ndesc != 1 || (flags & VPACKED_F_NEXT)))
				return vring_bad(
					why, -EPROTO,
					"guest: indirect descriptor in a chain of more than one descriptor at head %u",
					c->head);
			if (unlikely(!g->indirect))
				return vring_bad(
					why, -EPROTO,
					"guest: indirect descriptor without VIRTIO_F_INDIRECT_DESC");
			if (unlikely(!len || len % 16 || len / 16 > size))
				return vring_bad(
					why, -EPROTO,
					"guest: indirect table length %u is not a multiple of 16 between 16 and %u",
					len, 16 * size);
			/* One read of the whole table into private memory. */
			if (unlikely(vuiso_memmap_read(m, addr, scratch, len,
						       hint)))
				return vring_bad(
					why, -EFAULT,
					"guest: indirect table 0x%" PRIx64
					"+%u is not in guest memory",
					addr, len);
			ret = vpacked_walk_indirect(c, scratch, len / 16, size,
						    why);
			if (unlikely(ret))
				return ret;
			break;
		}

		ret = vring_chain_push(c, addr, len, flags & VPACKED_F_WRITE,
				       size, why);
		if (unlikely(ret))
			return ret;
		if (!(flags & VPACKED_F_NEXT))
			break;
		vpacked_advance(&pos, &lap, 1, size);
	}

	/* The buffer id is the last descriptor's (VIRTIO 2.8.6). */
	if (unlikely(id >= size))
		return vring_bad(
			why, -EPROTO,
			"guest: buffer id %u out of range (queue size %u) at head %u",
			id, size, c->head);
	if (unlikely(g->busy[id]))
		return vring_bad(
			why, -EPROTO,
			"guest: buffer id %u reused while in flight at head %u",
			id, c->head);
	if (unlikely(g->inflight + ndesc > size))
		return vring_bad(
			why, -EPROTO,
			"guest: chain at head %u overlaps descriptors still in flight",
			c->head);
	c->token = vring_token(id, (uint16_t)ndesc);
	return 0;
}

static inline void vpacked_guest_consume(struct vpacked_guest *g,
					 const struct vuiso_chain *c)
{
	uint16_t ndesc = vring_token_ndesc(c->token);

	g->busy[vring_token_id(c->token)] = 1;
	g->inflight += ndesc;
	vpacked_advance(&g->last_avail, &g->avail_lap, ndesc, g->size);
}

static inline void vpacked_guest_put_used(struct vpacked_guest *g, uint16_t id,
					  uint16_t ndesc, uint32_t len,
					  struct vuiso_log *log)
{
	uint8_t *d = vpacked_desc(g->desc, g->used);
	uint16_t flags = g->used_lap;

	vuiso_st32(d + VPACKED_DESC_LEN, len);
	vuiso_st16(d + VPACKED_DESC_ID, id);
	if (likely(g->unflushed)) {
		/*
		 * Release: id and len before the flags.  The driver does not
		 * look here before it has seen the first descriptor of the
		 * batch, which the flush publishes with release.
		 */
		atomic_store_explicit(
			(_Atomic uint16_t *)(d + VPACKED_DESC_FLAGS),
			htole16(flags), memory_order_release);
	} else {
		/* The batch's first: its flags go out last, in the flush. */
		g->first_pos = g->used;
		g->first_flags = flags;
	}
	vring_log(log, g->desc_gpa + 16u * g->used, 16);
	g->busy[id] = 0;
	g->inflight -= ndesc;
	g->unflushed += ndesc;
	vpacked_advance(&g->used, &g->used_lap, ndesc, g->size);
}

static inline bool vpacked_guest_flush(struct vpacked_guest *g,
				       struct vuiso_log *log)
{
	uint32_t n = g->unflushed;
	uint8_t *first = vpacked_desc(g->desc, g->first_pos) +
			 VPACKED_DESC_FLAGS;

	if (!n)
		return false;
	g->unflushed = 0;
	/*
	 * Release: every used descriptor of the batch, and the bytes copied
	 * into the guest's buffers, before the first one's flags; pairs with
	 * the driver's read barrier after it sees those flags.
	 */
	atomic_store_explicit((_Atomic uint16_t *)first,
			      htole16(g->first_flags), memory_order_release);
	vring_log(log, g->desc_gpa + 16u * g->first_pos + VPACKED_DESC_FLAGS,
		  2);
	/*
	 * Full barrier: the used flags are visible before we read the
	 * driver's event suppression; pairs with the driver's full barrier
	 * between writing it and re-checking the ring for used descriptors.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	return vpacked_event_wanted(g->drv, g->event_idx, g->used, g->used_lap,
				    n, g->size);
}

/* Always inline: the engine asks for kicks off once per chain, and with
 * EVENT_IDX that is a test of one field. */
static inline __attribute__((always_inline)) void
vpacked_guest_kicks(struct vpacked_guest *g, bool on, struct vuiso_log *log)
{
	if (g->event_idx) {
		/* Off: leave the event position behind; the driver kicks only
		 * when it makes that descriptor available. */
		if (!on)
			return;
		vuiso_st16(g->dev + VPACKED_EVENT_OFF_WRAP,
			   vpacked_off_wrap(g->last_avail, g->avail_lap));
		if (!g->kicks_known) {
			vuiso_st16(g->dev + VPACKED_EVENT_FLAGS,
				   VPACKED_EVENT_DESC);
			g->kicks_known = true;
		}
		vring_log(log, g->dev_gpa, 4);
	} else {
		if (g->kicks_known && on != g->kicks_off)
			return;
		vuiso_st16(g->dev + VPACKED_EVENT_FLAGS,
			   on ? VPACKED_EVENT_ENABLE : VPACKED_EVENT_DISABLE);
		g->kicks_known = true;
		g->kicks_off = !on;
		vring_log(log, g->dev_gpa + VPACKED_EVENT_FLAGS, 2);
		if (!on)
			return;
	}
	/*
	 * The re-enabled state is visible before the caller looks at the
	 * ring again.  Pairs with the driver's full barrier between making a
	 * chain available and reading the device event suppression.
	 */
	atomic_thread_fence(memory_order_seq_cst);
}

/* WRITE and NEXT of a shadow descriptor, without the lap bits. */
static inline uint16_t vpacked_sbuf_flags(const struct vuiso_sbuf *b, bool next)
{
	return (b->write ? VPACKED_F_WRITE : 0) | (next ? VPACKED_F_NEXT : 0);
}

/* A shadow descriptor's fields but its flags. */
static inline void vpacked_put_sbuf(uint8_t *d, const struct vuiso_sbuf *b,
				    uint16_t id)
{
	vuiso_st64(d + VPACKED_DESC_ADDR, b->addr);
	vuiso_st32(d + VPACKED_DESC_LEN, b->len);
	vuiso_st16(d + VPACKED_DESC_ID, id);
}

static inline __attribute__((always_inline)) void
vpacked_shadow_add(struct vpacked_shadow *s, const struct vuiso_sbuf *b,
		   unsigned n)
{
	/* Locals: the stores into the ring would make the compiler reload
	 * every field from @s after them. */
	const uint32_t size = s->size;
	uint8_t *const ring = s->desc;
	uint16_t pos = s->avail, lap = s->avail_lap, id = b[0].id;
	uint8_t *head = vpacked_desc(ring, pos);
	uint16_t head_flags = lap | vpacked_sbuf_flags(&b[0], n > 1);

	/* Every descriptor names the buffer, the last one counts. */
	vpacked_put_sbuf(head, &b[0], id);
	for (unsigned i = 1; i < n; i++) {
		uint8_t *d;

		vpacked_advance(&pos, &lap, 1, size);
		d = vpacked_desc(ring, pos);
		vpacked_put_sbuf(d, &b[i], id);
		vuiso_st16(d + VPACKED_DESC_FLAGS,
			   lap | vpacked_sbuf_flags(&b[i], i + 1 < n));
	}
	vpacked_advance(&pos, &lap, 1, size);
	s->avail = pos;
	s->avail_lap = lap;
	s->ndesc[id] = (uint16_t)n;
	s->unkicked += n;
	/*
	 * Release: the rest of the chain and the head's own fields before
	 * the head's flags; pairs with the back-end's read barrier after it
	 * finds the head available.
	 */
	atomic_store_explicit((_Atomic uint16_t *)(head + VPACKED_DESC_FLAGS),
			      htole16(head_flags), memory_order_release);
}

static inline bool vpacked_shadow_publish(struct vpacked_shadow *s)
{
	uint32_t n = s->unkicked;

	if (!n)
		return false;
	s->unkicked = 0;
	/*
	 * Full barrier: the heads' flags are visible before we read the
	 * back-end's event suppression; pairs with its full barrier between
	 * writing that and looking at the ring again.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	return vpacked_event_wanted(s->dev, s->event_idx, s->avail,
				    s->avail_lap, n, s->size);
}

static inline int vpacked_shadow_used(struct vpacked_shadow *s)
{
	uint16_t flags =
		vuiso_ld16(vpacked_desc(s->desc, s->used) + VPACKED_DESC_FLAGS);

	if (!vpacked_in_lap(flags, s->used_lap))
		return 0;
	/*
	 * Pairs with the back-end's write barrier between writing a used
	 * descriptor's id and len and storing its flags.
	 */
	atomic_thread_fence(memory_order_acquire);
	return 1;
}

static inline void vpacked_shadow_get_used(struct vpacked_shadow *s,
					   uint32_t *id, uint32_t *len)
{
	const uint8_t *d = vpacked_desc(s->desc, s->used);

	*id = vuiso_ld16(d + VPACKED_DESC_ID);
	*len = vuiso_ld32(d + VPACKED_DESC_LEN);
}

static inline void vpacked_shadow_done(struct vpacked_shadow *s, uint16_t id)
{
	uint16_t n = s->ndesc[id];

	/* n >= 1: the engine found @id in flight, and add() set it.  The
	 * entry is left as it is: only an id in flight is ever read, and
	 * add() writes it before the id goes out again. */
	vpacked_advance(&s->used, &s->used_lap, n, s->size);
}

/* Ask the back-end for no more calls (driver event suppression). */
static inline void vpacked_shadow_calls_off(struct vpacked_shadow *s)
{
	vuiso_st16(s->drv + VPACKED_EVENT_FLAGS, VPACKED_EVENT_DISABLE);
}

static inline void vpacked_shadow_calls(struct vpacked_shadow *s)
{
	if (s->event_idx) {
		vuiso_st16(s->drv + VPACKED_EVENT_OFF_WRAP,
			   vpacked_off_wrap(s->used, s->used_lap));
		vuiso_st16(s->drv + VPACKED_EVENT_FLAGS, VPACKED_EVENT_DESC);
	}
	/* Without EVENT_IDX the flags stay ENABLE: calls are never off. */
	/*
	 * Pairs with the back-end's full barrier between marking a
	 * descriptor used and reading the driver event suppression: the
	 * caller looks at the ring again next.
	 */
	atomic_thread_fence(memory_order_seq_cst);
}

#endif /* VUISO_VRING_PACKED_H */
