/* SPDX-License-Identifier: MIT */
/*
 * Simulated guest RAM.  The drivers that place requests on it are in
 * guest/ (one per ring layout).
 */
#include "guest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

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

void *vmm_guest_map(void *opaque, uint64_t gpa, uint64_t len)
{
	struct vmm_guest_mem *mem = opaque;

	if (gpa < mem->gpa || gpa - mem->gpa > mem->size ||
	    len > mem->size - (gpa - mem->gpa))
		return NULL;
	return vmm_gpa_to_hva(mem, gpa);
}
