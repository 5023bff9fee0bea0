/* SPDX-License-Identifier: MIT */
/*
 * Simulated guest RAM and split-ring driver (VIRTIO 1.2, 2.7), written the
 * way Linux drivers/virtio/virtio_ring.c drives a device.  The ring is
 * little-endian; this program runs on little-endian hosts only (checked at
 * build time below).
 */
#include "guest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the example VMM's virtio driver assumes a little-endian host"
#endif

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_USED_F_NO_NOTIFY 1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

/* Private per-head state, never re-read from the shared ring. */
struct vmm_ring_slot {
	void *token;       /* NULL when the head is free */
	uint16_t ndesc;    /* descriptors the chain uses in the table */
	uint16_t last;     /* last descriptor of the chain */
	uint32_t writable; /* device-writable bytes, to check used.len */
};

int vmm_guest_mem_init(struct vmm_guest_mem *mem, uint64_t size)
{
	memset(mem, 0, sizeof(*mem));
	mem->fd = memfd_create(VMM_GUEST_RAM_NAME, MFD_CLOEXEC);
	if (mem->fd < 0)
		return -errno;
	if (ftruncate(mem->fd, (off_t)size) < 0) {
		int err = -errno;

		close(mem->fd);
		return err;
	}
	mem->hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mem->fd,
			0);
	if (mem->hva == MAP_FAILED) {
		int err = -errno;

		close(mem->fd);
		return err;
	}
	mem->size = size;
	/* Start at 1 MiB so that GPA 0 never names a buffer. */
	mem->gpa = 0;
	mem->brk = 1 << 20;
	return 0;
}

void vmm_guest_mem_fini(struct vmm_guest_mem *mem)
{
	if (mem->hva)
		munmap(mem->hva, mem->size);
	if (mem->fd >= 0)
		close(mem->fd);
	mem->hva = NULL;
	mem->fd = -1;
}

uint64_t vmm_guest_alloc(struct vmm_guest_mem *mem, uint64_t size,
			 uint64_t align)
{
	uint64_t off = (mem->brk + align - 1) & ~(align - 1);

	if (off > mem->size || size > mem->size - off)
		return 0;
	mem->brk = off + size;
	return mem->gpa + off;
}

static inline uint16_t *avail_ring(struct vmm_vring *vr)
{
	return vr->avail + 2;
}

static inline uint16_t *used_idx_p(struct vmm_vring *vr)
{
	return (uint16_t *)(vr->used + 2);
}

static inline struct vring_used_elem *used_ring(struct vmm_vring *vr)
{
	return (struct vring_used_elem *)(vr->used + 4);
}

int vmm_vring_init(struct vmm_vring *vr, struct vmm_guest_mem *mem,
		   unsigned num, uint64_t features, unsigned max_indirect)
{
	memset(vr, 0, sizeof(*vr));
	if (num == 0 || (num & (num - 1)) || num > 32768)
		return -EINVAL;
	vr->mem = mem;
	vr->num = num;
	vr->event_idx = (features >> VMM_F_EVENT_IDX) & 1;
	vr->indirect = ((features >> VMM_F_INDIRECT_DESC) & 1) &&
		       max_indirect > 1;
	vr->max_indirect = vr->indirect ? max_indirect : 0;
	vr->desc_gpa = vmm_guest_alloc(mem, 16ULL * num, 4096);
	vr->avail_gpa = vmm_guest_alloc(mem, 6 + 2ULL * num, 4096);
	vr->used_gpa = vmm_guest_alloc(mem, 6 + 8ULL * num, 4096);
	if (vr->indirect)
		vr->indirect_gpa =
			vmm_guest_alloc(mem, 16ULL * num * max_indirect, 4096);
	if (!vr->desc_gpa || !vr->avail_gpa || !vr->used_gpa ||
	    (vr->indirect && !vr->indirect_gpa))
		return -ENOMEM;
	vr->desc = vmm_gpa_to_hva(mem, vr->desc_gpa);
	vr->avail = vmm_gpa_to_hva(mem, vr->avail_gpa);
	vr->used = vmm_gpa_to_hva(mem, vr->used_gpa);
	memset(vr->desc, 0, 16ULL * num);
	memset(vr->avail, 0, 6 + 2ULL * num);
	memset(vr->used, 0, 6 + 8ULL * num);
	vr->slots = calloc(num, sizeof(*vr->slots));
	if (!vr->slots)
		return -ENOMEM;
	for (unsigned i = 0; i < num; i++)
		vr->desc[i].next = (uint16_t)((i + 1) & (num - 1));
	vr->free_head = 0;
	vr->num_free = num;
	return 0;
}

void vmm_vring_fini(struct vmm_vring *vr)
{
	free(vr->slots);
	vr->slots = NULL;
}

static void fill_desc(struct vring_desc *d, const struct vmm_sg *sg,
		      bool writable, bool more, uint16_t next)
{
	d->addr = sg->gpa;
	d->len = sg->len;
	d->flags = (uint16_t)((writable ? VRING_DESC_F_WRITE : 0) |
			      (more ? VRING_DESC_F_NEXT : 0));
	d->next = next;
}

int vmm_vring_add(struct vmm_vring *vr, const struct vmm_sg *sg, unsigned out,
		  unsigned in, void *token)
{
	unsigned total = out + in;
	struct vmm_ring_slot *slot;
	uint32_t writable = 0;
	uint16_t head, i, last = 0;

	if (total == 0 || !token)
		return -EINVAL;
	for (unsigned k = out; k < total; k++)
		writable += sg[k].len;
	head = vr->free_head;
	if (vr->indirect && total > 1 && total <= vr->max_indirect) {
		struct vring_desc *tbl;
		uint64_t tgpa;

		if (vr->num_free < 1)
			return -ENOSPC;
		tgpa = vr->indirect_gpa + 16ULL * vr->max_indirect * head;
		tbl = vmm_gpa_to_hva(vr->mem, tgpa);
		for (unsigned k = 0; k < total; k++)
			fill_desc(&tbl[k], &sg[k], k >= out, k + 1 < total,
				  (uint16_t)(k + 1));
		vr->desc[head].addr = tgpa;
		vr->desc[head].len = 16 * total;
		vr->desc[head].flags = VRING_DESC_F_INDIRECT;
		vr->free_head = vr->desc[head].next;
		vr->num_free--;
		last = head;
		total = 1;
	} else {
		if (total > vr->num || vr->num_free < total)
			return -ENOSPC;
		i = head;
		for (unsigned k = 0; k < total; k++) {
			uint16_t next = vr->desc[i].next;

			fill_desc(&vr->desc[i], &sg[k], k >= out, k + 1 < total,
				  next);
			last = i;
			i = next;
		}
		vr->free_head = i;
		vr->num_free -= total;
	}
	slot = &vr->slots[head];
	slot->token = token;
	slot->ndesc = (uint16_t)total;
	slot->last = last;
	slot->writable = writable;
	avail_ring(vr)[vr->avail_idx & (vr->num - 1)] = head;
	vr->avail_idx++;
	vr->inflight++;
	/* Release: the ring entry and descriptors before the index; pairs
	 * with the device's acquire load of avail->idx. */
	__atomic_store_n(&vr->avail[1], vr->avail_idx, __ATOMIC_RELEASE);
	return 0;
}

static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

void vmm_vring_kick(struct vmm_vring *vr)
{
	uint16_t old = vr->kicked_idx, cur = vr->avail_idx;
	bool need;

	if (old == cur)
		return;
	/* Full barrier: our avail->idx store before reading the device's
	 * suppression state; pairs with the device's barrier between its
	 * avail_event/flags store and its avail->idx re-check. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vr->kicked_idx = cur;
	if (vr->event_idx) {
		uint16_t *ev = (uint16_t *)(vr->used + 4 + 8ULL * vr->num);

		need = need_event(__atomic_load_n(ev, __ATOMIC_RELAXED), cur,
				  old);
	} else {
		uint16_t flags =
			__atomic_load_n((uint16_t *)vr->used, __ATOMIC_RELAXED);

		need = !(flags & VRING_USED_F_NO_NOTIFY);
	}
	if (need) {
		vr->kicks++;
		vr->notify(vr->notify_opaque);
	}
}

int vmm_vring_get_used(struct vmm_vring *vr, void **token, uint32_t *len)
{
	/* Acquire: pairs with the device's release of used->idx, so the
	 * element and the buffer contents are visible. */
	uint16_t uidx = __atomic_load_n(used_idx_p(vr), __ATOMIC_ACQUIRE);
	struct vmm_ring_slot *slot;
	struct vring_used_elem e;

	if (uidx == vr->last_used)
		return 0;
	if ((uint16_t)(uidx - vr->last_used) > vr->inflight)
		return -EPROTO;
	memcpy(&e, &used_ring(vr)[vr->last_used & (vr->num - 1)], sizeof(e));
	if (e.id >= vr->num || !vr->slots[e.id].token)
		return -EPROTO;
	slot = &vr->slots[e.id];
	if (e.len > slot->writable)
		return -EPROTO;
	*token = slot->token;
	*len = e.len;
	slot->token = NULL;
	vr->desc[slot->last].next = vr->free_head;
	vr->free_head = (uint16_t)e.id;
	vr->num_free += slot->ndesc;
	vr->inflight--;
	vr->last_used++;
	return 1;
}

bool vmm_vring_enable_cb(struct vmm_vring *vr)
{
	if (vr->event_idx)
		__atomic_store_n(&avail_ring(vr)[vr->num], vr->last_used,
				 __ATOMIC_RELAXED);
	/* Full barrier: used_event store before re-reading used->idx; pairs
	 * with the device's barrier between used->idx and used_event. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(used_idx_p(vr), __ATOMIC_ACQUIRE) !=
	       vr->last_used;
}

uint16_t vmm_vring_used_idx(struct vmm_vring *vr)
{
	return __atomic_load_n(used_idx_p(vr), __ATOMIC_ACQUIRE);
}
