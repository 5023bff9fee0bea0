/* SPDX-License-Identifier: MIT */
/*
 * Packed virtqueue (VIRTIO 1.2, 2.8): its on-memory structures, all
 * little-endian, and the driver's state.  Included through virtq.h.
 */
#ifndef VIRTQ_PACKED_H
#define VIRTQ_PACKED_H

#include <stdbool.h>
#include <stdint.h>

/* Descriptor flags beyond NEXT, WRITE, INDIRECT. */
#define VIRTQ_PACKED_DESC_F_AVAIL (1u << 7)
#define VIRTQ_PACKED_DESC_F_USED (1u << 15)

/* Event suppression flags (the low two bits of the flags field). */
#define VIRTQ_PACKED_EVENT_ENABLE 0
#define VIRTQ_PACKED_EVENT_DISABLE 1
#define VIRTQ_PACKED_EVENT_DESC 2

/* The wrap counter bit of an off_wrap value or an encoded index. */
#define VIRTQ_PACKED_WRAP 0x8000u

struct virtq_packed_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t id;
	uint16_t flags;
};

/* Both event suppression areas: driver area (the driver writes it, the
 * device reads it) and device area (the other way round). */
struct virtq_packed_event {
	uint16_t off_wrap; /* ring position | wrap counter << 15 */
	uint16_t flags;    /* VIRTQ_PACKED_EVENT_* */
};

struct virtq_packed {
	struct virtq_packed_desc *desc;    /* descriptor ring (guest RAM) */
	struct virtq_packed_event *driver; /* written by the driver */
	struct virtq_packed_event *device; /* read for kick decisions */
	/* Each wrap counter is kept as the AVAIL/USED bits a descriptor of
	 * its lap carries: one mask and compare per test, one XOR per lap. */
	uint16_t next_avail;  /* ring position of the next descriptor to fill */
	uint16_t avail_lap;   /* AVAIL/USED bits that make it available */
	uint16_t last_used;   /* ring position of the next used descriptor */
	uint16_t used_lap;    /* AVAIL/USED bits that mark it used */
	uint32_t num_added;   /* descriptors added since the last decision */
	uint16_t event_flags; /* our copy of driver->flags */
};

#endif /* VIRTQ_PACKED_H */
