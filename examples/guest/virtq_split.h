/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue (VIRTIO 1.2, 2.7): its on-memory structures, all
 * little-endian, and the driver's state.  Included through virtq.h.
 */
#ifndef VIRTQ_SPLIT_H
#define VIRTQ_SPLIT_H

#include <stdint.h>

#define VIRTQ_SPLIT_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_SPLIT_USED_F_NO_NOTIFY 1

struct virtq_split_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* ring[num] is followed by used_event (with EVENT_IDX). */
struct virtq_split_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct virtq_split_used_elem {
	uint32_t id;
	uint32_t len;
};

/* ring[num] is followed by avail_event (with EVENT_IDX). */
struct virtq_split_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_split_used_elem ring[];
};

struct virtq_split {
	struct virtq_split_desc *desc;   /* descriptor table (guest RAM) */
	struct virtq_split_avail *avail; /* driver area (guest RAM) */
	struct virtq_split_used *used;   /* device area (guest RAM) */
	uint16_t avail_idx;              /* our copy of avail->idx */
	uint16_t kicked_idx;  /* avail_idx at the last kick decision */
	uint16_t last_used;   /* next used entry to read */
	uint16_t avail_flags; /* our copy of avail->flags */
};

#endif /* VIRTQ_SPLIT_H */
