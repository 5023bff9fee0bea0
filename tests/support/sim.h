/* SPDX-License-Identifier: MIT */
/*
 * Test fixtures: a simulated guest (RAM + split-ring driver) and a simulated
 * vhost-user back-end (maps the isolated region through its fd, as a real
 * back-end does, and serves the shadow split ring).
 *
 * The ring code here is written independently of lib/ on purpose, so that
 * the tests check the library against a second reading of the spec.
 */
#ifndef VUISO_TEST_SIM_H
#define VUISO_TEST_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuiso/vuiso.h"

/* ---- Simulated guest ---- */

#define SIM_MAX_RAM 4

struct sim_ram {
	uint64_t gpa;  /* guest physical start */
	uint64_t size; /* bytes */
	uint8_t *hva;  /* host mapping, with PROT_NONE guard pages around */
};

struct sim_guest {
	struct sim_ram ram[SIM_MAX_RAM];
	unsigned nram;
	/* split ring */
	uint32_t qsize;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint8_t *desc, *avail, *used;
	bool event_idx;
	uint16_t avail_idx; /* next avail index to publish */
	uint16_t last_used; /* next used entry to reap */
	uint16_t free_head; /* descriptor free list */
	uint32_t nfree;
	uint16_t *next_free;    /* private free-list links */
	uint16_t *chain_len;    /* descriptors a head holds */
	uint64_t *indirect_gpa; /* indirect table of a head, or 0 */
	/* buffer allocator: bump pointer in the data area */
	uint64_t heap_gpa, heap_end, heap_next;
	uint64_t kicks; /* notifications the guest sent */
};

/* Guest RAM: @nram contiguous-in-GPA ranges of @ram_size bytes each, each
 * with its own host mapping (so buffers can straddle ranges). */
int sim_guest_init(struct sim_guest *g, unsigned nram, uint64_t ram_size,
		   uint32_t qsize, bool event_idx);
void sim_guest_fini(struct sim_guest *g);
void *sim_gpa(struct sim_guest *g, uint64_t gpa);
/* Map for vuiso_dev_set_guest_memory(). */
unsigned sim_guest_regions(struct sim_guest *g, struct vuiso_mem_region *out);
/* Config for vuiso_vq_start(). */
void sim_guest_vq_config(struct sim_guest *g, uint64_t guest_features,
			 uint64_t backend_features,
			 struct vuiso_vq_config *cfg);
/* Allocate @len bytes of guest buffer, 64-byte aligned; 0 when full. */
uint64_t sim_alloc(struct sim_guest *g, uint64_t len);
void sim_heap_reset(struct sim_guest *g);
/* Fill every byte of guest RAM with a position-dependent pattern. */
void sim_guest_fill(struct sim_guest *g, uint8_t seed);

struct sim_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* Write one little-endian split-ring descriptor at @d (for chains no
 * driver would write: the attack tests and fuzz harnesses). */
void sim_put_desc(uint8_t *d, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next);

/* Put a chain on the ring (direct, or as one indirect table allocated
 * from the heap).  Returns the head id, or -1 when the ring is full. */
int sim_add(struct sim_guest *g, const struct sim_buf *b, unsigned n,
	    bool indirect);
/* Publish avail->idx.  Returns true if the device wants a kick. */
bool sim_kick_needed(struct sim_guest *g);
/* Reap one used entry; returns false when none. */
bool sim_reap(struct sim_guest *g, uint32_t *id, uint32_t *len);
/* Arm used_event (with EVENT_IDX) so the device notifies at the next
 * used entry. */
void sim_guest_arm(struct sim_guest *g);

/* ---- Simulated back-end ---- */

struct sim_seg {
	uint8_t *ptr;
	uint32_t len;
	bool write;
};

struct sim_backend {
	uint8_t *map; /* its own mapping of the region fd */
	uint64_t map_size;
	uint64_t base; /* region's address in the back-end view */
	uint32_t qsize;
	uint8_t *desc, *avail, *used;
	bool event_idx;
	uint16_t last_avail;
	uint16_t used_idx;
	uint16_t used_flushed;
	uint64_t calls; /* times it decided to call the driver */
	uint64_t bad;   /* invalid shadow descriptors seen */
};

int sim_backend_init(struct sim_backend *b, const struct vuiso_region_info *ri,
		     const struct vuiso_vq_shadow *sh, bool event_idx);
void sim_backend_fini(struct sim_backend *b);
/* Pop a shadow chain; @segs must hold qsize entries.  Returns the number
 * of segments, 0 when the ring is empty, -1 for an invalid shadow chain. */
int sim_backend_pop(struct sim_backend *b, uint16_t *head,
		    struct sim_seg *segs);
void sim_backend_push(struct sim_backend *b, uint32_t id, uint32_t len);
/* Publish used->idx; returns true when the driver wants a call. */
bool sim_backend_flush(struct sim_backend *b);
/* Re-arm kicks (avail_event) after draining. */
void sim_backend_arm(struct sim_backend *b);

/* ---- Small helpers ---- */

uint64_t sim_rand(uint64_t *state);

#endif
