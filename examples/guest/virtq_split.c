/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue driver (VIRTIO 1.2, 2.7), written the way Linux
 * drivers/virtio/virtio_ring.c drives a split ring: descriptors from a
 * private free list, the avail index published after the ring entry, used
 * entries checked against private per-head state.
 */
#include "virtq_impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int split_area_sizes(unsigned num, struct virtq_areas *sizes)
{
	if (num == 0 || (num & (num - 1)) || num > 32768)
		return -EINVAL;
	sizes->desc = 16ULL * num;
	sizes->driver = 6 + 2ULL * num;
	sizes->device = 6 + 8ULL * num;
	return 0;
}

static uint16_t *used_event(struct virtq *vq)
{
	return &vq->split.avail->ring[vq->num];
}

static uint16_t *avail_event(struct virtq *vq)
{
	return (uint16_t *)&vq->split.used->ring[vq->num];
}

static void split_init(struct virtq *vq, void *desc, void *driver, void *device)
{
	struct virtq_split *s = &vq->split;

	s->desc = desc;
	s->avail = driver;
	s->used = device;
	for (unsigned i = 0; i < vq->num; i++)
		vq->slots[i].next = (uint16_t)((i + 1) & (vq->num - 1));
	vq->free_head = 0;
}

static void fill_desc(struct virtq_split_desc *d, const struct virtq_sg *sg,
		      bool writable, bool more, uint16_t next)
{
	d->addr = htole64(sg->gpa);
	d->len = htole32(sg->len);
	d->flags = htole16((uint16_t)((writable ? VIRTQ_DESC_F_WRITE : 0) |
				      (more ? VIRTQ_DESC_F_NEXT : 0)));
	d->next = htole16(next);
}

static int split_add(struct virtq *vq, const struct virtq_sg *sg, unsigned out,
		     unsigned in, void *token, uint32_t writable)
{
	struct virtq_split *s = &vq->split;
	unsigned total = out + in;
	struct virtq_slot *slot;
	uint16_t head = vq->free_head, i, last = 0;

	if (vq->indirect && total > 1 && total <= vq->max_indirect) {
		struct virtq_split_desc *tbl;

		if (vq->num_free < 1)
			return -ENOSPC;
		tbl = virtq_indirect_table(vq, head);
		for (unsigned k = 0; k < total; k++)
			fill_desc(&tbl[k], &sg[k], k >= out, k + 1 < total,
				  (uint16_t)(k + 1));
		s->desc[head].addr = htole64(vq->indirect_gpa +
					     16ULL * vq->max_indirect * head);
		s->desc[head].len = htole32(16 * total);
		s->desc[head].flags = htole16(VIRTQ_DESC_F_INDIRECT);
		vq->free_head = vq->slots[head].next;
		vq->num_free--;
		last = head;
		total = 1;
	} else {
		if (total > vq->num)
			return -EINVAL;
		if (vq->num_free < total)
			return -ENOSPC;
		i = head;
		for (unsigned k = 0; k < total; k++) {
			uint16_t next = vq->slots[i].next;

			fill_desc(&s->desc[i], &sg[k], k >= out, k + 1 < total,
				  next);
			last = i;
			i = next;
		}
		vq->free_head = i;
		vq->num_free -= total;
	}
	slot = &vq->slots[head];
	slot->token = token;
	slot->ndesc = (uint16_t)total;
	slot->last = last;
	slot->writable = writable;
	s->avail->ring[s->avail_idx & (vq->num - 1)] = htole16(head);
	s->avail_idx++;
	vq->inflight++;
	/* Release: the ring entry and descriptors before the index; pairs
	 * with the device's acquire load of avail->idx. */
	virtq_st16(&s->avail->idx, s->avail_idx, __ATOMIC_RELEASE);
	return 0;
}

static bool split_kick_prepare(struct virtq *vq)
{
	struct virtq_split *s = &vq->split;
	uint16_t old = s->kicked_idx, cur = s->avail_idx;

	if (old == cur)
		return false;
	/* Full barrier: our avail->idx store before reading the device's
	 * suppression state; pairs with the device's barrier between its
	 * avail_event/flags store and its avail->idx re-check. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	s->kicked_idx = cur;
	if (vq->event_idx)
		return virtq_need_event(
			virtq_ld16(avail_event(vq), __ATOMIC_RELAXED), cur,
			old);
	return !(virtq_ld16(&s->used->flags, __ATOMIC_RELAXED) &
		 VIRTQ_SPLIT_USED_F_NO_NOTIFY);
}

static int split_get_used(struct virtq *vq, void **token, uint32_t *len)
{
	struct virtq_split *s = &vq->split;
	/* Acquire: pairs with the device's release of used->idx, so the
	 * element and the buffer contents are visible. */
	uint16_t uidx = virtq_ld16(&s->used->idx, __ATOMIC_ACQUIRE);
	struct virtq_split_used_elem *e;
	struct virtq_slot *slot;
	uint32_t id, ulen;

	if (uidx == s->last_used)
		return 0;
	if ((uint16_t)(uidx - s->last_used) > vq->inflight)
		return -EPROTO;
	/* Read once into private variables; only they are checked and used. */
	e = &s->used->ring[s->last_used & (vq->num - 1)];
	id = virtq_ld32(&e->id);
	ulen = virtq_ld32(&e->len);
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
	vq->slots[slot->last].next = vq->free_head;
	vq->free_head = (uint16_t)id;
	vq->num_free += slot->ndesc;
	vq->inflight--;
	s->last_used++;
	return 1;
}

static bool split_enable_cb(struct virtq *vq)
{
	struct virtq_split *s = &vq->split;

	if (s->avail_flags & VIRTQ_SPLIT_AVAIL_F_NO_INTERRUPT) {
		s->avail_flags &= (uint16_t)~VIRTQ_SPLIT_AVAIL_F_NO_INTERRUPT;
		if (!vq->event_idx)
			virtq_st16(&s->avail->flags, s->avail_flags,
				   __ATOMIC_RELAXED);
	}
	if (vq->event_idx)
		virtq_st16(used_event(vq), s->last_used, __ATOMIC_RELAXED);
	/* Full barrier: used_event/flags store before re-reading used->idx;
	 * pairs with the device's barrier between used->idx and its read of
	 * used_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_ld16(&s->used->idx, __ATOMIC_ACQUIRE) != s->last_used;
}

static void split_disable_cb(struct virtq *vq)
{
	struct virtq_split *s = &vq->split;

	if (s->avail_flags & VIRTQ_SPLIT_AVAIL_F_NO_INTERRUPT)
		return;
	s->avail_flags |= VIRTQ_SPLIT_AVAIL_F_NO_INTERRUPT;
	/* With EVENT_IDX the flag is ignored: put used_event where the
	 * device passes it last, one full lap of the index away. */
	if (vq->event_idx)
		virtq_st16(used_event(vq), (uint16_t)(s->last_used - 1),
			   __ATOMIC_RELAXED);
	else
		virtq_st16(&s->avail->flags, s->avail_flags, __ATOMIC_RELAXED);
}

static uint16_t split_avail_idx(const struct virtq *vq)
{
	return vq->split.avail_idx;
}

static uint16_t split_used_idx(const struct virtq *vq)
{
	return vq->split.last_used;
}

static void split_describe(const struct virtq *vq, char *buf, size_t size)
{
	const struct virtq_split *s = &vq->split;

	snprintf(buf, size,
		 "split ring: avail %u, device used %u, driver used %u",
		 s->avail_idx, virtq_ld16(&s->used->idx, __ATOMIC_ACQUIRE),
		 s->last_used);
}

const struct virtq_ops virtq_split_ops = {
	.area_sizes = split_area_sizes,
	.init = split_init,
	.add = split_add,
	.kick_prepare = split_kick_prepare,
	.get_used = split_get_used,
	.enable_cb = split_enable_cb,
	.disable_cb = split_disable_cb,
	.avail_idx = split_avail_idx,
	.used_idx = split_used_idx,
	.describe = split_describe,
};
