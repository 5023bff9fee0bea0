/* SPDX-License-Identifier: MIT */
/*
 * Layout-neutral part of the simulated guest driver: configuration checks,
 * private per-id state, and dispatch to the layout's ops table.  Every
 * layout has its own case; an unknown one is refused, never run as split.
 */
#include "virtq_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct virtq_ops *ops_of(enum virtq_layout layout)
{
	switch (layout) {
	case VIRTQ_LAYOUT_SPLIT:
		return &virtq_split_ops;
	case VIRTQ_LAYOUT_PACKED:
		return &virtq_packed_ops;
	}
	return NULL;
}

int virtq_area_sizes(enum virtq_layout layout, unsigned num,
		     struct virtq_areas *sizes)
{
	const struct virtq_ops *ops = ops_of(layout);

	if (!ops)
		return -EINVAL;
	return ops->area_sizes(num, sizes);
}

int virtq_init(struct virtq *vq, const struct virtq_config *cfg)
{
	const struct virtq_ops *ops = ops_of(cfg->layout);
	struct virtq_areas sizes;
	void *desc, *driver, *device;
	int r;

	memset(vq, 0, sizeof(*vq));
	if (!ops || !cfg->map || !cfg->notify)
		return -EINVAL;
	r = ops->area_sizes(cfg->num, &sizes);
	if (r < 0)
		return r;
	vq->layout = cfg->layout;
	vq->ops = ops;
	vq->num = cfg->num;
	vq->event_idx = (cfg->features >> VIRTQ_F_EVENT_IDX) & 1;
	vq->gpa = cfg->gpa;
	vq->notify = cfg->notify;
	vq->notify_opaque = cfg->notify_opaque;
	if (((cfg->features >> VIRTQ_F_INDIRECT_DESC) & 1) &&
	    cfg->indirect_gpa && cfg->max_indirect > 1) {
		/* 16 * 32768 * 65535 fits in 64 bits: no overflow. */
		uint64_t bytes = 16ULL * cfg->num * cfg->max_indirect;

		if (cfg->max_indirect > UINT16_MAX)
			return -EINVAL;
		vq->indirect_hva =
			cfg->map(cfg->map_opaque, cfg->indirect_gpa, bytes);
		if (!vq->indirect_hva)
			return -EFAULT;
		vq->indirect = true;
		vq->max_indirect = cfg->max_indirect;
		vq->indirect_gpa = cfg->indirect_gpa;
	}
	desc = cfg->map(cfg->map_opaque, cfg->gpa.desc, sizes.desc);
	driver = cfg->map(cfg->map_opaque, cfg->gpa.driver, sizes.driver);
	device = cfg->map(cfg->map_opaque, cfg->gpa.device, sizes.device);
	if (!desc || !driver || !device)
		return -EFAULT;
	vq->slots = calloc(cfg->num, sizeof(*vq->slots));
	if (!vq->slots)
		return -ENOMEM;
	vq->num_free = cfg->num;
	memset(desc, 0, sizes.desc);
	memset(driver, 0, sizes.driver);
	memset(device, 0, sizes.device);
	ops->init(vq, desc, driver, device);
	return 0;
}

void virtq_fini(struct virtq *vq)
{
	free(vq->slots);
	vq->slots = NULL;
}

int virtq_add(struct virtq *vq, const struct virtq_sg *sg, unsigned out,
	      unsigned in, void *token)
{
	unsigned total = out + in;
	uint64_t writable = 0;

	if (total == 0 || total < out || !token)
		return -EINVAL;
	for (unsigned k = out; k < total; k++)
		writable += sg[k].len;
	/* A used length is 32 bits: larger chains are bounded by that. */
	if (writable > UINT32_MAX)
		writable = UINT32_MAX;
	return vq->ops->add(vq, sg, out, in, token, (uint32_t)writable);
}

bool virtq_kick_prepare(struct virtq *vq)
{
	return vq->ops->kick_prepare(vq);
}

bool virtq_kick(struct virtq *vq)
{
	if (!vq->ops->kick_prepare(vq))
		return false;
	vq->kicks++;
	vq->notify(vq->notify_opaque);
	return true;
}

int virtq_get_used(struct virtq *vq, void **token, uint32_t *len)
{
	return vq->ops->get_used(vq, token, len);
}

bool virtq_enable_cb(struct virtq *vq)
{
	return vq->ops->enable_cb(vq);
}

void virtq_disable_cb(struct virtq *vq)
{
	vq->ops->disable_cb(vq);
}

uint16_t virtq_avail_idx(const struct virtq *vq)
{
	return vq->ops->avail_idx(vq);
}

uint16_t virtq_used_idx(const struct virtq *vq)
{
	return vq->ops->used_idx(vq);
}

void virtq_describe(const struct virtq *vq, char *buf, size_t size)
{
	if (!vq->ops) {
		snprintf(buf, size, "not initialised");
		return;
	}
	vq->ops->describe(vq, buf, size);
}
