/* SPDX-License-Identifier: MIT */
/*
 * The simulated virtio guest driver: one driver per ring layout (split,
 * VIRTIO 1.2 section 2.7, in virtq_split.c; packed, section 2.8, in
 * virtq_packed.c) behind this layout-neutral interface.  The example VMM
 * drives real back-ends with it; tests, benchmarks and fuzz harnesses link
 * the same code (meson: guest_drivers_dep) instead of keeping copies.
 *
 * It places requests on a virtqueue the way Linux
 * drivers/virtio/virtio_ring.c does: chains or indirect tables, event
 * suppression (EVENT_IDX), kick decisions from the device's suppression
 * state, and used buffers checked against private per-id state.
 *
 * Memory: the driver never owns guest RAM.  The caller places the ring areas
 * (sizes from virtq_area_sizes()) and optionally an indirect-table area in
 * guest memory and passes their GPAs plus an accessor that maps a contiguous
 * guest range to a host pointer.  Buffer GPAs in struct virtq_sg are only
 * written into descriptors, never dereferenced.
 *
 * Trust: everything the device writes (used ring or used descriptors, the
 * device's event suppression state) is read once and validated; a value
 * that is not valid makes virtq_get_used() return -EPROTO, never crashes.
 *
 * Threads: a queue is driven by one thread at a time; no locking inside.
 *
 * The ring state is public on purpose: attack tests and fuzzers write
 * hostile descriptors straight into vq->split / vq->packed.
 */
#ifndef VIRTQ_H
#define VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtq_packed.h"
#include "virtq_split.h"

/* Transport feature bits the drivers act on (VIRTIO 1.2, 6). */
#define VIRTQ_F_INDIRECT_DESC 28
#define VIRTQ_F_EVENT_IDX 29
#define VIRTQ_F_VERSION_1 32
#define VIRTQ_F_RING_PACKED 34

/* Descriptor flags, the same bits in both layouts. */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

enum virtq_layout {
	VIRTQ_LAYOUT_SPLIT = 0,
	VIRTQ_LAYOUT_PACKED = 1,
};

/* One buffer of a request, in guest physical memory. */
struct virtq_sg {
	uint64_t gpa;
	uint32_t len;
};

/*
 * Map the guest range [@gpa, @gpa + @len) to a host pointer, or NULL when it
 * is not contiguous guest RAM.  Called by virtq_init() only.
 */
typedef void *virtq_map_fn(void *opaque, uint64_t gpa, uint64_t len);

/* The three ring areas of either layout (bytes, or guest addresses). */
struct virtq_areas {
	uint64_t desc;   /* descriptor table (packed: descriptor ring) */
	uint64_t driver; /* split: avail ring; packed: driver event area */
	uint64_t device; /* split: used ring; packed: device event area */
};

/* Every area of every layout is correctly placed at this alignment. */
#define VIRTQ_AREA_ALIGN 16

struct virtq_config {
	enum virtq_layout layout;
	unsigned num;      /* queue size: 1..32768, a power of two for split */
	uint64_t features; /* negotiated; EVENT_IDX and INDIRECT_DESC count */
	struct virtq_areas gpa; /* where the caller placed the ring areas */
	/* Indirect tables: num tables of max_indirect 16-byte entries,
	 * contiguous; 0 / 0 for none.  Used only with INDIRECT_DESC. */
	uint64_t indirect_gpa;
	unsigned max_indirect;
	virtq_map_fn *map;
	void *map_opaque;
	void (*notify)(void *opaque); /* the guest's doorbell write */
	void *notify_opaque;
};

/* Private per-id state, never re-read from the shared ring. */
struct virtq_slot {
	void *token;       /* the caller's cookie; NULL while the id is free */
	uint32_t writable; /* device-writable bytes: the bound for used len */
	uint16_t ndesc;    /* ring descriptors the chain occupies */
	uint16_t last;     /* split: last descriptor of the chain */
	uint16_t next;     /* free-list link (split: per descriptor;
			    * packed: per buffer id) */
};

struct virtq_ops;

struct virtq {
	enum virtq_layout layout;
	const struct virtq_ops *ops; /* the layout's driver */
	unsigned num;                /* queue size */
	bool event_idx;              /* VIRTIO_F_EVENT_IDX negotiated */
	/* Put chains of 2..max_indirect buffers in an indirect table.  Set
	 * by virtq_init() from the features; a test may clear it between
	 * adds (or set it again, if an indirect area was given). */
	bool indirect;
	/*
	 * Take a used length on a chain with no device-writable bytes as 0
	 * instead of failing, as Linux does (it never reads the length of
	 * an out-only buffer).  For a back-end that writes the guest's ring
	 * itself (no isolation): DPDK 22.11's packed dequeue reports the
	 * buffer's own length for a transmit buffer.  Off by default, so
	 * that the tests see every length libvuiso reports.
	 */
	bool ignore_readonly_len;
	unsigned max_indirect;  /* entries per indirect table */
	struct virtq_areas gpa; /* ring area GPAs (for the device config) */
	uint64_t indirect_gpa;  /* table of id i at + i * 16 * max_indirect */
	uint8_t *indirect_hva;  /* host view of the indirect area */
	void (*notify)(void *opaque);
	void *notify_opaque;
	struct virtq_slot *slots; /* num entries */
	unsigned num_free;        /* free ring descriptors */
	unsigned inflight;        /* chains the device holds */
	uint16_t free_head;       /* split: first free descriptor;
				   * packed: first free buffer id */
	uint64_t kicks;           /* notifications sent */
	union {
		struct virtq_split split;
		struct virtq_packed packed;
	};
};

/* Bytes of each ring area of @layout at queue size @num; -EINVAL if that
 * size is not valid for the layout. */
int virtq_area_sizes(enum virtq_layout layout, unsigned num,
		     struct virtq_areas *sizes);

/*
 * Set up a queue on the caller's areas: zeroes the rings and arms
 * interrupts.  Returns 0, -EINVAL for a bad config, -EFAULT when an area
 * does not map, -ENOMEM.
 */
int virtq_init(struct virtq *vq, const struct virtq_config *cfg);
/* Free the private state; the areas stay the caller's. */
void virtq_fini(struct virtq *vq);

/*
 * Add a chain: @out device-readable buffers then @in device-writable ones,
 * and make it available to the device at once.  An indirect table is used
 * when vq->indirect and the chain has 2..max_indirect buffers.  @token
 * (not NULL) comes back from virtq_get_used().  Returns 0, -ENOSPC when
 * the ring has no room now, -EINVAL for a chain that can never fit.
 */
int virtq_add(struct virtq *vq, const struct virtq_sg *sg, unsigned out,
	      unsigned in, void *token);

/*
 * Decide whether the device wants a notification for the chains added
 * since the last decision (its suppression state: split used->flags or
 * avail_event, packed device event area).  false when nothing was added.
 */
bool virtq_kick_prepare(struct virtq *vq);
/* virtq_kick_prepare() and, if it says so, the doorbell.  Returns whether
 * the device was notified. */
bool virtq_kick(struct virtq *vq);

/*
 * Take one used buffer.  Returns 1 and fills @token and @len, 0 when none,
 * or -EPROTO when the device returned an id that is not in flight, a length
 * over the chain's writable bytes, or more used buffers than are in flight.
 * The queue is unchanged after -EPROTO.
 */
int virtq_get_used(struct virtq *vq, void **token, uint32_t *len);

/*
 * Re-arm used-buffer notifications after a batch of virtq_get_used():
 * returns true if more used buffers arrived meanwhile (take them and call
 * again), as Linux virtqueue_enable_cb().
 */
bool virtq_enable_cb(struct virtq *vq);
/* Ask the device not to notify (best effort, as in VIRTIO). */
void virtq_disable_cb(struct virtq *vq);

/*
 * The driver's indices in the vhost-user / libvuiso encoding: split, the
 * free-running 16-bit avail index and last used index; packed, ring
 * position | wrap counter << 15 (0x8000 for a fresh queue).
 */
uint16_t virtq_avail_idx(const struct virtq *vq);
uint16_t virtq_used_idx(const struct virtq *vq);

/* One line of ring state for diagnostics (the device's side included). */
void virtq_describe(const struct virtq *vq, char *buf, size_t size);

#endif /* VIRTQ_H */
