/* SPDX-License-Identifier: MIT */
/*
 * Private state of a device and its shadow virtqueues.
 */
#ifndef VUISO_SVQ_H
#define VUISO_SVQ_H

#include <pthread.h>

#include "vring.h"

/*
 * One slot per shadow buffer.  A split shadow ring uses the slot id as the
 * descriptor index, a packed one as the buffer id of the chain's first
 * slot; either way a slot in use is a shadow descriptor in flight, so free
 * slots are free room in the shadow ring.  The slot keeps, in private
 * memory, everything completion needs, so the shadow descriptor (which the
 * back-end can rewrite) is never read back.
 */
struct svq_slot {
	struct vuiso_seg seg; /* the guest buffer as validated at pop; its
			       * address is translated again at completion */
	uint32_t blk;         /* bounce block index in the pool */
	uint16_t next;        /* next slot of the chain, or free-list link */
	uint8_t order;        /* bounce block order */
};

/* Request state, indexed by the head slot id the back-end returns. */
enum svq_req_state {
	SVQ_REQ_NEVER = 0,    /* never made available since start */
	SVQ_REQ_INFLIGHT = 1, /* owned by the back-end */
	SVQ_REQ_DONE = 2,     /* completed; the id is free */
};

struct svq_req {
	uint32_t writable;    /* device-writable bytes of the chain */
	uint32_t guest_token; /* vring_token(): used id, descriptors taken */
	uint16_t nslots;      /* slots in the chain */
	uint8_t state;        /* enum svq_req_state */
	uint32_t seq;         /* forwarding order (vuiso_vq.seq when taken) */
};

enum svq_run {
	SVQ_STOPPED = 0, /* not started, nothing in flight */
	SVQ_RUNNING,     /* taking guest requests */
	SVQ_STOPPING,    /* stop timed out: completions only */
	SVQ_DETACHED,    /* the back-end is gone; requests kept for the next */
};

struct vuiso_vq {
	struct vuiso_dev *dev;
	unsigned idx;                      /* queue index */
	enum vuiso_layout glayout;         /* the guest ring's layout */
	enum vuiso_layout slayout;         /* the shadow ring's layout */
	const struct vuiso_ring_ops *gops; /* ops of glayout */
	const struct vuiso_ring_ops *sops; /* ops of slayout */
	enum svq_run run;
	bool broken;         /* a violation was seen */
	bool guest_pending;  /* guest work left: back-pressure or budget */
	bool clear_writable; /* VUISO_DEV_F_CLEAR_WRITABLE */
	uint32_t size;       /* queue size since start */
	uint32_t budget;     /* chains per data-path call */

	struct vuiso_guest_ring g;  /* the guest's ring */
	struct vuiso_shadow_ring s; /* the back-end's ring */

	uint8_t *ring_base;    /* shadow ring area, VMM mapping */
	uint64_t ring_backend; /* same, back-end view */
	uint8_t *pool_base;    /* bounce pool, VMM mapping */
	uint64_t pool_backend; /* same, back-end view */
	struct vuiso_pool pool;

	struct svq_slot *slot; /* queue_size_max slots */
	struct svq_req *req;   /* queue_size_max requests */
	uint16_t free_slot;    /* free-list head */
	uint32_t nfree;        /* free slots */
	uint32_t inflight;     /* requests owned by the back-end */
	uint32_t seq;          /* next request's forwarding number (wraps) */
	uint64_t *byage;       /* scratch: in-flight requests, oldest first */

	struct vuiso_ring_ids ids; /* per-id memory of the ring layouts */
	struct vuiso_seg *seg;     /* scratch: the chain being popped */
	struct vuiso_sbuf *sbuf;   /* scratch: its shadow buffers */
	uint8_t *indirect;         /* scratch: an indirect table copy */

	struct vuiso_log log;        /* guest writes of the current call */
	struct vuiso_vq_stats stats; /* counters; inflight and broken are
				      * filled in by vuiso_vq_get_stats() */
	int err;                     /* violation to report, or 0 */
	char why[VUISO_ERRMSG_MAX];  /* its message */
};

struct vuiso_dev {
	struct vuiso_ops ops; /* copied from the config */
	void *opaque;
	uint32_t num_queues;
	uint32_t queue_size_max;
	uint64_t pool_size;    /* per queue */
	uint64_t backend_base; /* region start, back-end view */
	uint32_t budget;       /* 0: queue size */
	uint32_t flags;        /* VUISO_DEV_F_* */

	int fd;              /* the region memfd */
	uint8_t *map;        /* its VMM mapping */
	uint64_t size;       /* bytes */
	uint64_t ring_bytes; /* shadow ring area per queue */
	uint64_t stride;     /* ring area + pool, per queue */

	/* The guest memory map: read under RCU, replaced under mem_lock. */
	struct vuiso_memmap *_Atomic mem;
	pthread_mutex_t mem_lock;
	atomic_int logging; /* dirty logging on */

	struct vuiso_vq vq[]; /* num_queues */
};

/* Queue setup and teardown, from dev.c. */
VUISO_INTERNAL int svq_init(struct vuiso_vq *vq, struct vuiso_dev *dev,
			    unsigned idx);
VUISO_INTERNAL void svq_destroy(struct vuiso_vq *vq);

/* Layout of the region for a validated config. */
VUISO_INTERNAL void svq_region_layout(uint32_t queue_size_max,
				      uint64_t pool_size, uint64_t *ring_bytes,
				      uint64_t *stride);

#endif /* VUISO_SVQ_H */
