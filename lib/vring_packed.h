/* SPDX-License-Identifier: MIT */
/*
 * The packed virtqueue (VIRTIO 1.2, 2.8): its layout in memory and the
 * private state of its two sides.  Only vring_packed.c and the dispatch in
 * vring.h use this header.
 */
#ifndef VUISO_VRING_PACKED_H
#define VUISO_VRING_PACKED_H

#include "internal.h"

/* Descriptor flags; AVAIL and USED carry the wrap counters. */
#define VPACKED_F_NEXT 1
#define VPACKED_F_WRITE 2
#define VPACKED_F_INDIRECT 4
#define VPACKED_F_AVAIL (1u << 7)
#define VPACKED_F_USED (1u << 15)

/* Event suppression structure: le16 off_wrap, le16 flags. */
#define VPACKED_EVENT_OFF_WRAP 0
#define VPACKED_EVENT_FLAGS 2
#define VPACKED_EVENT_ENABLE 0
#define VPACKED_EVENT_DISABLE 1
#define VPACKED_EVENT_DESC 2

/* Descriptor: le64 addr, le32 len, le16 id, le16 flags. */
#define VPACKED_DESC_ADDR 0
#define VPACKED_DESC_LEN 8
#define VPACKED_DESC_ID 12
#define VPACKED_DESC_FLAGS 14

/* A ring position and its wrap counter, as vhost-user encodes them. */
#define VPACKED_WRAP_BIT 15

/* Guest side of a packed ring (libvuiso is the device). */
struct vpacked_guest {
	uint32_t size;     /* descriptors in the ring */
	bool event_idx;    /* VIRTIO_F_EVENT_IDX: DESC event mode allowed */
	bool indirect;     /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint64_t desc_gpa; /* descriptor ring, re-translated every call */
	uint64_t drv_gpa;  /* driver event suppression (the driver writes) */
	uint64_t dev_gpa;  /* device event suppression (we write) */
	uint8_t *desc;     /* host pointers, valid for one call only */
	uint8_t *drv;
	uint8_t *dev;
	uint16_t last_avail;  /* position of the next descriptor to take */
	bool avail_wrap;      /* wrap counter at that position */
	uint16_t used;        /* position of the next used descriptor */
	bool used_wrap;       /* wrap counter at that position */
	uint32_t inflight;    /* descriptors taken and not yet used */
	uint32_t unflushed;   /* descriptors made used since the last flush */
	uint16_t first_pos;   /* first used descriptor of the unflushed batch */
	uint16_t first_flags; /* its flags, stored last by the flush */
	bool kicks_known;     /* the device area holds what we last wrote */
	bool kicks_off;       /* we last wrote DISABLE */
	uint8_t *busy;        /* per buffer id: non-zero while in flight */
};

/* Shadow side of a packed ring (libvuiso is the driver). */
struct vpacked_shadow {
	uint32_t size;     /* descriptors in the ring */
	bool event_idx;    /* VIRTIO_F_EVENT_IDX negotiated with back-end */
	uint8_t *desc;     /* VMM mapping inside the region */
	uint8_t *drv;      /* driver event suppression (we write) */
	uint8_t *dev;      /* device event suppression (the back-end writes) */
	uint16_t avail;    /* next position to fill (private) */
	bool avail_wrap;   /* its wrap counter */
	uint16_t used;     /* next position to read a used descriptor at */
	bool used_wrap;    /* its wrap counter */
	uint32_t unkicked; /* descriptors added since the last kick decision */
	uint16_t *ndesc;   /* per buffer id: ring descriptors, 0 when free */
};

struct vuiso_chain;
struct vuiso_sbuf;
struct vuiso_log;

VUISO_INTERNAL int vpacked_guest_map(struct vpacked_guest *g,
				     const struct vuiso_memmap *m,
				     size_t *hint);
VUISO_INTERNAL int vpacked_guest_avail(struct vpacked_guest *g, char *why);
VUISO_INTERNAL int vpacked_guest_walk(struct vpacked_guest *g,
				      const struct vuiso_memmap *m,
				      size_t *hint, struct vuiso_chain *c,
				      uint8_t *scratch, char *why);
VUISO_INTERNAL void vpacked_guest_consume(struct vpacked_guest *g,
					  const struct vuiso_chain *c);
VUISO_INTERNAL void vpacked_guest_put_used(struct vpacked_guest *g, uint16_t id,
					   uint16_t ndesc, uint32_t len,
					   const struct vuiso_log *log);
VUISO_INTERNAL bool vpacked_guest_flush(struct vpacked_guest *g,
					const struct vuiso_log *log);
VUISO_INTERNAL void vpacked_guest_kicks(struct vpacked_guest *g, bool on,
					const struct vuiso_log *log);

VUISO_INTERNAL void vpacked_shadow_add(struct vpacked_shadow *s,
				       const struct vuiso_sbuf *b, unsigned n);
VUISO_INTERNAL bool vpacked_shadow_publish(struct vpacked_shadow *s);
VUISO_INTERNAL int vpacked_shadow_used(struct vpacked_shadow *s);
VUISO_INTERNAL void vpacked_shadow_get_used(struct vpacked_shadow *s,
					    uint32_t *id, uint32_t *len);
VUISO_INTERNAL void vpacked_shadow_done(struct vpacked_shadow *s, uint16_t id);
VUISO_INTERNAL void vpacked_shadow_calls(struct vpacked_shadow *s);

#endif /* VUISO_VRING_PACKED_H */
