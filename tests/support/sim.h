/* SPDX-License-Identifier: MIT */
/*
 * Test fixtures: a simulated guest (RAM + the shared guest driver of
 * examples/guest, split or packed) and a simulated vhost-user back-end (maps
 * the isolated region through its fd, as a real back-end does, and serves
 * the shadow ring, split or packed).
 *
 * The ring code here and in examples/guest is written independently of
 * lib/ on purpose, so that the tests check the library against a second
 * reading of the spec.
 */
#ifndef VUISO_TEST_SIM_H
#define VUISO_TEST_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtq.h"
#include "vuiso/vuiso.h"

/* ---- Simulated guest ---- */

#define SIM_MAX_RAM 4
/* Entries per indirect table the guest driver may build. */
#define SIM_MAX_INDIRECT 16
/* Buffers per chain sim_add() takes. */
#define SIM_MAX_SEGS 64

struct sim_ram {
	uint64_t gpa;  /* guest physical start */
	uint64_t size; /* bytes */
	uint8_t *hva;  /* host mapping, with PROT_NONE guard pages around */
};

/*
 * Guest RAM plus the shared guest driver of examples/guest (one driver per
 * layout, the same code the example VMM runs): the tests drive it through
 * the sim_* calls below, and hostile tests write its rings by hand through
 * @desc / @avail / @used and the driver state in @vq.
 */
struct sim_guest {
	struct sim_ram ram[SIM_MAX_RAM];
	unsigned nram;
	uint32_t qsize;
	bool packed;    /* the ring is packed (else split) */
	bool event_idx; /* VIRTIO_F_EVENT_IDX */
	struct virtq vq;
	/* ring areas: split desc/avail/used, packed desc/driver/device */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint8_t *desc, *avail, *used;
	uint64_t indirect_gpa; /* the driver's indirect tables, below heap */
	/* buffer allocator: bump pointer in the data area */
	uint64_t heap_gpa, heap_end, heap_next;
	uint64_t kicks;  /* notifications the guest sent */
	bool shares_ram; /* a second ring on another guest's RAM */
	/* per buffer id, for harnesses that rewrite chains in flight */
	uint16_t *chain_head;     /* head descriptor (packed: position) */
	uint64_t *chain_indirect; /* its indirect table, or 0 */
};

/* Guest RAM: @nram contiguous-in-GPA ranges of @ram_size bytes each, each
 * with its own host mapping (so buffers can straddle ranges), and a ring of
 * @qsize entries, packed when @packed. */
int sim_guest_init(struct sim_guest *g, unsigned nram, uint64_t ram_size,
		   uint32_t qsize, bool event_idx, bool packed);
void sim_guest_fini(struct sim_guest *g);
void *sim_gpa(struct sim_guest *g, uint64_t gpa);
/* Map for vuiso_dev_set_guest_memory(). */
unsigned sim_guest_regions(struct sim_guest *g, struct vuiso_mem_region *out);
/* Config for vuiso_vq_start(): the ring, its layout and the driver's
 * indices (a device that took everything made available). */
void sim_guest_vq_config(struct sim_guest *g, uint64_t guest_features,
			 uint64_t backend_features,
			 struct vuiso_vq_config *cfg);
/* Allocate @len bytes of guest buffer, 64-byte aligned; 0 when full. */
uint64_t sim_alloc(struct sim_guest *g, uint64_t len);
void sim_heap_reset(struct sim_guest *g);
/* Fill every byte of guest RAM with a position-dependent pattern. */
void sim_guest_fill(struct sim_guest *g, uint8_t seed);
/* Ring descriptors free in the driver. */
unsigned sim_guest_free(const struct sim_guest *g);

struct sim_buf {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/* Write one little-endian split-ring descriptor at @d (for chains no
 * driver would write: the attack tests and fuzz harnesses). */
void sim_put_desc(uint8_t *d, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next);
/* The same for a packed-ring descriptor. */
void sim_put_pdesc(uint8_t *d, uint64_t addr, uint32_t len, uint16_t id,
		   uint16_t flags);

/* Put a chain on the ring (direct, or as one indirect table) and make it
 * available.  @b lists device-readable buffers first.  Returns the buffer
 * id (split: the head descriptor), or -1 when the ring is full. */
int sim_add(struct sim_guest *g, const struct sim_buf *b, unsigned n,
	    bool indirect);
/* Hostile split-ring writes: put @head in the next avail entry and publish
 * avail->idx; or publish any avail->idx.  The driver's own state follows. */
void sim_split_avail_raw(struct sim_guest *g, uint16_t head);
void sim_split_avail_idx_raw(struct sim_guest *g, uint16_t idx);
/* A second ring on @g's RAM (areas, indirect tables and @heap_bytes of
 * heap taken from @g's heap): a view that sim_guest_fini() frees without
 * unmapping the RAM it shares. */
int sim_guest_second_ring(struct sim_guest *g, struct sim_guest *out,
			  uint32_t qsize, uint64_t heap_bytes);

/* Guest RAM got new host mappings (same GPAs): point the driver there. */
void sim_guest_remap(struct sim_guest *g);
/* The device reset of the guest driver: zero its rings, free every id. */
int sim_guest_ring_reset(struct sim_guest *g);
/* Descriptor @k of the chain in flight under @id, in the ring or in its
 * indirect table (split: follows the ring's next fields). */
uint8_t *sim_chain_desc(struct sim_guest *g, uint16_t id, unsigned k);

/* Decide on a kick for what was added.  True if the device wants one. */
bool sim_kick_needed(struct sim_guest *g);
/* Reap one used entry; returns false when none, or when the device
 * returned an id or length the driver refuses (then *id is UINT32_MAX). */
bool sim_reap(struct sim_guest *g, uint32_t *id, uint32_t *len);
/* Re-arm used notifications (EVENT_IDX: at the next used entry). */
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
	bool packed; /* the shadow ring is packed (else split) */
	/* split: desc/avail/used; packed: desc ring, driver and device
	 * event suppression */
	uint8_t *desc, *avail, *used;
	bool event_idx;
	uint16_t last_avail; /* split: index; packed: position */
	uint16_t used_idx;   /* split: index; packed: position */
	uint16_t used_flushed;
	bool avail_wrap, used_wrap; /* packed wrap counters */
	uint32_t unflushed;         /* packed: positions used since flush */
	uint16_t *ndesc;            /* packed: descriptors per popped id */
	uint64_t calls;             /* times it decided to call the driver */
	uint64_t bad;               /* invalid shadow descriptors seen */
};

int sim_backend_init(struct sim_backend *b, const struct vuiso_region_info *ri,
		     const struct vuiso_vq_shadow *sh, bool event_idx);
void sim_backend_fini(struct sim_backend *b);
/* Pop a shadow chain; @segs must hold qsize entries.  Returns the number
 * of segments, 0 when the ring is empty, -1 for an invalid shadow chain.
 * *@head is the id to push back (split: head descriptor; packed: buffer
 * id). */
int sim_backend_pop(struct sim_backend *b, uint16_t *head,
		    struct sim_seg *segs);
void sim_backend_push(struct sim_backend *b, uint32_t id, uint32_t len);
/* Publish used->idx; returns true when the driver wants a call. */
bool sim_backend_flush(struct sim_backend *b);
/* Re-arm kicks (split avail_event, packed device event area) after
 * draining. */
void sim_backend_arm(struct sim_backend *b);

/* ---- Small helpers ---- */

uint64_t sim_rand(uint64_t *state);

#endif
