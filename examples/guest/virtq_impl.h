/* SPDX-License-Identifier: MIT */
/*
 * Internal to the guest drivers: the per-layout ops table and the
 * little-endian shared-memory accessors.  Not for users of virtq.h.
 */
#ifndef VIRTQ_IMPL_H
#define VIRTQ_IMPL_H

#include <endian.h>

#include "virtq.h"

/* What each layout implements; virtq.c dispatches through it. */
struct virtq_ops {
	int (*area_sizes)(unsigned num, struct virtq_areas *sizes);
	/* Set the initial ring state over the three ring areas, which
	 * virtq_init() has mapped and zeroed. */
	void (*init)(struct virtq *vq, void *desc, void *driver, void *device);
	/* @writable: device-writable bytes of the chain, already summed. */
	int (*add)(struct virtq *vq, const struct virtq_sg *sg, unsigned out,
		   unsigned in, void *token, uint32_t writable);
	bool (*kick_prepare)(struct virtq *vq);
	int (*get_used)(struct virtq *vq, void **token, uint32_t *len);
	bool (*enable_cb)(struct virtq *vq);
	void (*disable_cb)(struct virtq *vq);
	uint16_t (*avail_idx)(const struct virtq *vq);
	uint16_t (*used_idx)(const struct virtq *vq);
	void (*describe)(const struct virtq *vq, char *buf, size_t size);
};

extern const struct virtq_ops virtq_split_ops;
extern const struct virtq_ops virtq_packed_ops;

/*
 * Shared ring fields are accessed atomically (the device runs
 * concurrently) and converted from little-endian.
 */
static inline uint16_t virtq_ld16(const uint16_t *p, int order)
{
	return le16toh(__atomic_load_n(p, order));
}

static inline void virtq_st16(uint16_t *p, uint16_t v, int order)
{
	__atomic_store_n(p, htole16(v), order);
}

static inline uint32_t virtq_ld32(const uint32_t *p)
{
	return le32toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

/* VIRTIO's vring_need_event(): has the index moved past @event going
 * from @old_idx to @new_idx (all modulo 2^16)? */
static inline bool virtq_need_event(uint16_t event, uint16_t new_idx,
				    uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

/* Host view of the indirect table of id @id. */
static inline void *virtq_indirect_table(const struct virtq *vq, unsigned id)
{
	return vq->indirect_hva + (size_t)16 * vq->max_indirect * id;
}

#endif /* VIRTQ_IMPL_H */
