/* SPDX-License-Identifier: MIT */
/*
 * The simulated guest: guest RAM in a memfd and a virtio split-ring driver
 * that places requests on a virtqueue exactly as a guest kernel would
 * (descriptor table, avail ring, optional indirect tables, event index).
 */
#ifndef VMM_GUEST_H
#define VMM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The memfd name; the isolation proof looks for it in the back-end's maps. */
#define VMM_GUEST_RAM_NAME "vmm-guest-ram"

#define VMM_F_INDIRECT_DESC 28
#define VMM_F_EVENT_IDX 29
#define VMM_F_VERSION_1 32

struct vmm_guest_mem {
	int fd;        /* the memfd */
	uint8_t *hva;  /* where the VMM maps it */
	uint64_t size; /* bytes */
	uint64_t gpa;  /* guest physical address of the first byte */
	uint64_t brk;  /* bump allocator, offset of the next free byte */
};

int vmm_guest_mem_init(struct vmm_guest_mem *mem, uint64_t size);
void vmm_guest_mem_fini(struct vmm_guest_mem *mem);
/* Allocate guest RAM; returns the GPA, or 0 when RAM is exhausted. */
uint64_t vmm_guest_alloc(struct vmm_guest_mem *mem, uint64_t size,
			 uint64_t align);

static inline void *vmm_gpa_to_hva(const struct vmm_guest_mem *mem,
				   uint64_t gpa)
{
	return mem->hva + (gpa - mem->gpa);
}

/* One buffer of a request, in guest physical memory. */
struct vmm_sg {
	uint64_t gpa;
	uint32_t len;
};

struct vring_desc;

/* Driver side of a split virtqueue (what the guest kernel keeps). */
struct vmm_vring {
	struct vmm_guest_mem *mem;
	unsigned num;          /* queue size, a power of two */
	bool event_idx;        /* VIRTIO_F_EVENT_IDX negotiated */
	bool indirect;         /* VIRTIO_F_INDIRECT_DESC negotiated */
	unsigned max_indirect; /* entries per indirect table */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;      /* descriptor table (guest RAM) */
	uint16_t *avail;              /* flags, idx, ring[num], used_event */
	uint8_t *used;                /* flags, idx, ring[num], avail_event */
	uint16_t free_head;           /* first free descriptor */
	unsigned num_free;            /* free descriptors */
	uint16_t avail_idx;           /* our copy of avail->idx */
	uint16_t kicked_idx;          /* avail idx at the last kick decision */
	uint16_t last_used;           /* next used entry to read */
	unsigned inflight;            /* chains the device holds */
	struct vmm_ring_slot *slots;  /* per head: token and chain length */
	uint64_t indirect_gpa;        /* num tables of max_indirect entries */
	void (*notify)(void *opaque); /* the guest's kick (an MMIO write) */
	void *notify_opaque;
	uint64_t kicks; /* kicks the driver sent */
};

int vmm_vring_init(struct vmm_vring *vr, struct vmm_guest_mem *mem,
		   unsigned num, uint64_t features, unsigned max_indirect);
void vmm_vring_fini(struct vmm_vring *vr);

/*
 * Add a chain: @out device-readable buffers then @in device-writable ones.
 * Uses an indirect table when negotiated and the chain has more than one
 * buffer.  Return 0, or -ENOSPC when the ring is full.
 */
int vmm_vring_add(struct vmm_vring *vr, const struct vmm_sg *sg, unsigned out,
		  unsigned in, void *token);
/* Publish added chains and kick the device if it asked for kicks. */
void vmm_vring_kick(struct vmm_vring *vr);
/*
 * Take one used chain.  Returns 1 and fills @token and @len, 0 when none,
 * or -EPROTO when the device returned an id or length that is not valid.
 */
int vmm_vring_get_used(struct vmm_vring *vr, void **token, uint32_t *len);
/*
 * Re-arm the interrupt after a batch of get_used: returns true if more used
 * entries arrived meanwhile (call get_used again).
 */
bool vmm_vring_enable_cb(struct vmm_vring *vr);
/* The device's current used index (for diagnostics). */
uint16_t vmm_vring_used_idx(struct vmm_vring *vr);

#endif /* VMM_GUEST_H */
