/* SPDX-License-Identifier: MIT */
/*
 * The simulated guest's RAM: a memfd the VMM maps, with a bump allocator
 * for rings and request buffers.  The guest's virtio drivers (split and
 * packed rings) are in guest/virtq.h.
 */
#ifndef VMM_GUEST_H
#define VMM_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtq.h"

/* The memfd name; the isolation proof looks for it in the back-end's maps. */
#define VMM_GUEST_RAM_NAME "vmm-guest-ram"

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

/* virtq_map_fn over guest RAM (@opaque is the struct vmm_guest_mem). */
void *vmm_guest_map(void *opaque, uint64_t gpa, uint64_t len);

#endif /* VMM_GUEST_H */
