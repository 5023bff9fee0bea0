/* SPDX-License-Identifier: MIT */
/*
 * The split virtqueue (VIRTIO 1.2, 2.7): its layout in memory and the
 * private state of its two sides.  Only vring_split.c and the dispatch in
 * vring.h use this header.
 */
#ifndef VUISO_VRING_SPLIT_H
#define VUISO_VRING_SPLIT_H

#include "internal.h"

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Byte sizes of the three split-ring areas for a queue of @n entries. */
static inline uint64_t vring_desc_bytes(uint32_t n)
{
	return 16ULL * n;
}

static inline uint64_t vring_avail_bytes(uint32_t n, bool event_idx)
{
	return 4ULL + 2ULL * n + (event_idx ? 2 : 0);
}

static inline uint64_t vring_used_bytes(uint32_t n, bool event_idx)
{
	return 4ULL + 8ULL * n + (event_idx ? 2 : 0);
}

/* Guest side of a split ring (libvuiso is the device). */
struct vsplit_guest {
	uint32_t size;     /* entries, power of two */
	bool event_idx;    /* VIRTIO_F_EVENT_IDX negotiated with the guest */
	bool indirect;     /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa; /* ring addresses, re-translated every call */
	uint64_t avail_gpa;
	uint64_t used_gpa;
	uint8_t *desc; /* host pointers, valid for one call only */
	uint8_t *avail;
	uint8_t *used;
	uint16_t last_avail;   /* next avail entry to consume */
	uint16_t used_idx;     /* next used index to write */
	uint16_t used_flushed; /* used->idx as last published */
	bool kicks_off;        /* we set VRING_USED_F_NO_NOTIFY */
};

/* Shadow side of a split ring (libvuiso is the driver). */
struct vsplit_shadow {
	uint32_t size;  /* entries, power of two */
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated with back-end */
	uint8_t *desc;  /* VMM mapping inside the region */
	uint8_t *avail;
	uint8_t *used;
	uint16_t avail_idx;    /* next avail index (private, never read back) */
	uint16_t avail_kicked; /* avail_idx at the last kick decision */
	uint16_t last_used;    /* next used entry to read */
};

struct vuiso_chain;
struct vuiso_sbuf;
struct vuiso_log;

VUISO_INTERNAL int vsplit_guest_map(struct vsplit_guest *g,
				    const struct vuiso_memmap *m, size_t *hint);
VUISO_INTERNAL int vsplit_guest_avail(struct vsplit_guest *g, char *why);
VUISO_INTERNAL int vsplit_guest_walk(struct vsplit_guest *g,
				     const struct vuiso_memmap *m, size_t *hint,
				     struct vuiso_chain *c, uint8_t *scratch,
				     char *why);
VUISO_INTERNAL void vsplit_guest_put_used(struct vsplit_guest *g, uint16_t id,
					  uint32_t len,
					  const struct vuiso_log *log);
VUISO_INTERNAL bool vsplit_guest_flush(struct vsplit_guest *g,
				       const struct vuiso_log *log);
VUISO_INTERNAL void vsplit_guest_kicks(struct vsplit_guest *g, bool on,
				       const struct vuiso_log *log);

VUISO_INTERNAL void vsplit_shadow_add(struct vsplit_shadow *s,
				      const struct vuiso_sbuf *b, unsigned n);
VUISO_INTERNAL bool vsplit_shadow_publish(struct vsplit_shadow *s);
VUISO_INTERNAL int vsplit_shadow_used(struct vsplit_shadow *s,
				      uint32_t inflight, char *why);
VUISO_INTERNAL void vsplit_shadow_get_used(struct vsplit_shadow *s,
					   uint32_t *id, uint32_t *len);
VUISO_INTERNAL void vsplit_shadow_calls(struct vsplit_shadow *s);

#endif /* VUISO_VRING_SPLIT_H */
