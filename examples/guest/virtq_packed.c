/* SPDX-License-Identifier: MIT */
/*
 * Packed virtqueue driver (VIRTIO 1.2, 2.8), written the way Linux
 * drivers/virtio/virtio_ring.c drives a packed ring.
 *
 * Descriptors are filled in ring order from next_avail; each carries the
 * AVAIL/USED bits of its own lap (AVAIL = wrap, USED = !wrap), the chain's
 * buffer id, and NEXT on all but the last.  The head's flags are stored
 * last, with release ordering, which makes the whole chain available at
 * once.  Buffer ids come from a private free list.  The device writes one
 * used descriptor per chain at our last_used position; we skip the chain's
 * descriptor count from there (1 for an indirect table).
 */
#include "virtq_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define F_AVAIL VIRTQ_PACKED_DESC_F_AVAIL
#define F_USED VIRTQ_PACKED_DESC_F_USED
#define F_LAP (F_AVAIL | F_USED)

static int packed_area_sizes(unsigned num, struct virtq_areas *sizes)
{
	/* Positions must fit in the 15 bits of off_wrap and vring_base. */
	if (num == 0 || num > 32768)
		return -EINVAL;
	sizes->desc = 16ULL * num;
	sizes->driver = sizeof(struct virtq_packed_event);
	sizes->device = sizeof(struct virtq_packed_event);
	return 0;
}

/* The wrap counter that AVAIL/USED bits of either kind stand for. */
static inline bool lap_wrap(uint16_t lap)
{
	return lap & F_AVAIL;
}

/* Position @pos in the lap of @lap, as off_wrap and vring_base encode it. */
static inline uint16_t off_wrap(uint16_t pos, uint16_t lap)
{
	return (uint16_t)(pos | (lap_wrap(lap) ? VIRTQ_PACKED_WRAP : 0));
}

/* The next position after @pos, and its lap bits. */
static inline uint16_t step(const struct virtq *vq, uint16_t pos, uint16_t *lap)
{
	if (++pos == vq->num) {
		*lap ^= F_LAP;
		return 0;
	}
	return pos;
}

/* WRITE and NEXT of descriptor @k of a chain of @total, @out readable. */
static inline uint16_t chain_flags(unsigned k, unsigned out, unsigned total)
{
	return (k >= out ? VIRTQ_DESC_F_WRITE : 0) |
	       (k + 1 < total ? VIRTQ_DESC_F_NEXT : 0);
}

static void packed_init(struct virtq *vq, void *desc, void *driver,
			void *device)
{
	struct virtq_packed *p = &vq->packed;

	/* Zeroed flags: neither available nor used in lap 1. */
	p->desc = desc;
	p->driver = driver;
	p->device = device;
	p->next_avail = 0;
	p->avail_lap = F_AVAIL;
	p->last_used = 0;
	p->used_lap = F_LAP;
	p->num_added = 0;
	/* With EVENT_IDX ask for an interrupt at the first used descriptor
	 * (DESC mode), so the device's off_wrap handling runs from the
	 * start; without it, plain ENABLE. */
	p->event_flags = vq->event_idx ? VIRTQ_PACKED_EVENT_DESC
				       : VIRTQ_PACKED_EVENT_ENABLE;
	p->driver->off_wrap = htole16(vq->event_idx ? VIRTQ_PACKED_WRAP : 0);
	p->driver->flags = htole16(p->event_flags);
	for (unsigned i = 0; i < vq->num; i++)
		vq->slots[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
}

static void fill_desc(struct virtq_packed_desc *d, const struct virtq_sg *sg,
		      uint16_t id)
{
	d->addr = htole64(sg->gpa);
	d->len = htole32(sg->len);
	d->id = htole16(id);
}

static int packed_add(struct virtq *vq, const struct virtq_sg *sg, unsigned out,
		      unsigned in, void *token, uint32_t writable)
{
	struct virtq_packed *p = &vq->packed;
	struct virtq_packed_desc *desc = p->desc;
	unsigned total = out + in, ndesc;
	uint16_t id = vq->free_head, head = p->next_avail, pos;
	uint16_t lap = p->avail_lap, head_flags;
	struct virtq_slot *slot;

	if (vq->indirect && total > 1 && total <= vq->max_indirect) {
		struct virtq_packed_desc *tbl;

		if (vq->num_free < 1)
			return -ENOSPC;
		/* The table is indexed by buffer id: ids are unique while in
		 * flight.  A packed indirect table is a plain array: no NEXT
		 * and no id inside it, only WRITE. */
		tbl = virtq_indirect_table(vq, id);
		for (unsigned k = 0; k < total; k++) {
			fill_desc(&tbl[k], &sg[k], 0);
			tbl[k].flags =
				htole16(k >= out ? VIRTQ_DESC_F_WRITE : 0);
		}
		desc[head].addr = htole64(vq->indirect_gpa +
					  16ULL * vq->max_indirect * id);
		desc[head].len = htole32(16 * total);
		desc[head].id = htole16(id);
		head_flags = VIRTQ_DESC_F_INDIRECT | lap;
		ndesc = 1;
		pos = head;
	} else {
		if (total > vq->num)
			return -EINVAL;
		if (vq->num_free < total)
			return -ENOSPC;
		/* The head's fields now, its flags last (below); the others
		 * in ring order, each with the bits of its own lap. */
		fill_desc(&desc[head], &sg[0], id);
		head_flags = lap | chain_flags(0, out, total);
		pos = head;
		for (unsigned k = 1; k < total; k++) {
			pos = step(vq, pos, &lap);
			fill_desc(&desc[pos], &sg[k], id);
			virtq_st16(&desc[pos].flags,
				   lap | chain_flags(k, out, total),
				   __ATOMIC_RELAXED);
		}
		ndesc = total;
	}
	slot = &vq->slots[id];
	slot->token = token;
	slot->ndesc = (uint16_t)ndesc;
	slot->writable = writable;
	vq->free_head = slot->next;
	vq->num_free -= ndesc;
	vq->inflight++;
	p->next_avail = step(vq, pos, &lap);
	p->avail_lap = lap;
	p->num_added += ndesc;
	/* Release: every other descriptor of the chain (and the indirect
	 * table) before the head's flags; pairs with the device's acquire
	 * load of the head flags. */
	virtq_st16(&desc[head].flags, head_flags, __ATOMIC_RELEASE);
	return 0;
}

static bool packed_kick_prepare(struct virtq *vq)
{
	struct virtq_packed *p = &vq->packed;
	uint16_t off_wrap, flags, event, new_idx, old_idx;
	bool lapped;

	if (p->num_added == 0)
		return false;
	/* Full barrier: the head flags we stored before reading the
	 * device's event suppression; pairs with the device's barrier
	 * between its event suppression store and its re-check of the
	 * descriptor at its next avail position. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	off_wrap = virtq_ld16(&p->device->off_wrap, __ATOMIC_RELAXED);
	flags = virtq_ld16(&p->device->flags, __ATOMIC_RELAXED) & 3;
	new_idx = p->next_avail;
	old_idx = (uint16_t)(p->next_avail - p->num_added);
	lapped = p->num_added >= vq->num;
	p->num_added = 0;
	switch (flags) {
	case VIRTQ_PACKED_EVENT_ENABLE:
		return true;
	case VIRTQ_PACKED_EVENT_DISABLE:
		return false;
	case VIRTQ_PACKED_EVENT_DESC:
		/* DESC without EVENT_IDX is not valid: kick, to be safe. */
		if (!vq->event_idx || lapped)
			return true;
		/* Positions of the window [old, new) are counted from the
		 * start of our current lap (old may be negative, i.e. in
		 * the previous lap); an event of the previous lap is moved
		 * there by subtracting num, as Linux
		 * virtqueue_kick_prepare_packed() does. */
		event = off_wrap & (uint16_t)~VIRTQ_PACKED_WRAP;
		if (!!(off_wrap & VIRTQ_PACKED_WRAP) != lap_wrap(p->avail_lap))
			event = (uint16_t)(event - vq->num);
		return virtq_need_event(event, new_idx, old_idx);
	}
	return true; /* reserved value 3: a kick is always safe */
}

/* Is the descriptor at last_used a used one of the current lap? */
static bool used_ready(const struct virtq *vq, uint16_t flags)
{
	return (flags & F_LAP) == vq->packed.used_lap;
}

static int packed_get_used(struct virtq *vq, void **token, uint32_t *len)
{
	struct virtq_packed *p = &vq->packed;
	struct virtq_packed_desc *d = &p->desc[p->last_used];
	struct virtq_slot *slot;
	uint16_t flags, id;
	uint32_t ulen;
	unsigned pos;

	/* Acquire: pairs with the device's release store of the used
	 * descriptor's flags, so its id, len and the buffer contents are
	 * visible. */
	flags = virtq_ld16(&d->flags, __ATOMIC_ACQUIRE);
	if (!used_ready(vq, flags))
		return 0;
	if (vq->inflight == 0)
		return -EPROTO;
	/* Read once into private variables; only they are checked and used. */
	id = virtq_ld16(&d->id, __ATOMIC_RELAXED);
	ulen = virtq_ld32(&d->len);
	if (id >= vq->num || !vq->slots[id].token)
		return -EPROTO;
	slot = &vq->slots[id];
	if (slot->writable == 0 && vq->ignore_readonly_len)
		ulen = 0;
	if (ulen > slot->writable)
		return -EPROTO;
	*token = slot->token;
	*len = ulen;
	slot->token = NULL;
	slot->next = vq->free_head;
	vq->free_head = id;
	vq->num_free += slot->ndesc;
	vq->inflight--;
	pos = p->last_used + slot->ndesc;
	if (pos >= vq->num) {
		pos -= vq->num;
		p->used_lap ^= F_LAP;
	}
	p->last_used = (uint16_t)pos;
	return 1;
}

static bool packed_enable_cb(struct virtq *vq)
{
	struct virtq_packed *p = &vq->packed;

	if (vq->event_idx)
		virtq_st16(&p->driver->off_wrap,
			   off_wrap(p->last_used, p->used_lap),
			   __ATOMIC_RELAXED);
	if (p->event_flags == VIRTQ_PACKED_EVENT_DISABLE) {
		p->event_flags = vq->event_idx ? VIRTQ_PACKED_EVENT_DESC
					       : VIRTQ_PACKED_EVENT_ENABLE;
		/* Release: off_wrap before the flags that make the device
		 * read it; pairs with the device's acquire of the flags. */
		virtq_st16(&p->driver->flags, p->event_flags, __ATOMIC_RELEASE);
	}
	/* Full barrier: the event suppression stores before re-reading the
	 * used descriptor; pairs with the device's barrier between writing
	 * used descriptors and reading the driver event suppression. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return used_ready(
		vq, virtq_ld16(&p->desc[p->last_used].flags, __ATOMIC_ACQUIRE));
}

static void packed_disable_cb(struct virtq *vq)
{
	struct virtq_packed *p = &vq->packed;

	if (p->event_flags == VIRTQ_PACKED_EVENT_DISABLE)
		return;
	p->event_flags = VIRTQ_PACKED_EVENT_DISABLE;
	virtq_st16(&p->driver->flags, p->event_flags, __ATOMIC_RELAXED);
}

static uint16_t packed_avail_idx(const struct virtq *vq)
{
	return off_wrap(vq->packed.next_avail, vq->packed.avail_lap);
}

static uint16_t packed_used_idx(const struct virtq *vq)
{
	return off_wrap(vq->packed.last_used, vq->packed.used_lap);
}

static void packed_describe(const struct virtq *vq, char *buf, size_t size)
{
	const struct virtq_packed *p = &vq->packed;
	uint16_t flags =
		virtq_ld16(&p->desc[p->last_used].flags, __ATOMIC_ACQUIRE);

	snprintf(buf, size,
		 "packed ring: next avail %u wrap %d, last used %u wrap %d "
		 "(descriptor flags there 0x%04x), %u descriptors free",
		 p->next_avail, lap_wrap(p->avail_lap), p->last_used,
		 lap_wrap(p->used_lap), flags, vq->num_free);
}

const struct virtq_ops virtq_packed_ops = {
	.area_sizes = packed_area_sizes,
	.init = packed_init,
	.add = packed_add,
	.kick_prepare = packed_kick_prepare,
	.get_used = packed_get_used,
	.enable_cb = packed_enable_cb,
	.disable_cb = packed_disable_cb,
	.avail_idx = packed_avail_idx,
	.used_idx = packed_used_idx,
	.describe = packed_describe,
};
