// SPDX-License-Identifier: MIT
/*
 * Device lifecycle: configuration, the isolated region, the guest memory
 * map, dirty logging and feature negotiation.  All control path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <urcu-bp.h>

#include "svq.h"

#define DEFAULT_QUEUE_SIZE 256
#define DEFAULT_POOL_SIZE (4ULL << 20)
#define DEFAULT_BACKEND_BASE (4ULL << 30)

VUISO_API unsigned vuiso_version(void)
{
	return VUISO_VERSION;
}

/* ---- Features ---- */

/* VIRTIO 1.2, 6: device-type bits are 0-23 and 50-127. */
#define DEVICE_BITS ((VUISO_BIT(24) - 1) | ~(VUISO_BIT(50) - 1))

VUISO_API uint64_t vuiso_features_for_guest(uint64_t backend_features)
{
	uint64_t f = backend_features & DEVICE_BITS;

	/* The shadow implements these toward the guest itself; a packed
	 * guest ring is translated when the back-end has none. */
	f |= VUISO_BIT(VUISO_F_INDIRECT_DESC) | VUISO_BIT(VUISO_F_EVENT_IDX) |
	     VUISO_BIT(VUISO_F_RING_PACKED);
	f |= backend_features & VUISO_BIT(VUISO_F_VERSION_1);
	return f;
}

VUISO_API uint64_t vuiso_features_for_backend(uint64_t backend_features,
					      uint64_t guest_features)
{
	uint64_t f = guest_features & backend_features & DEVICE_BITS;

	f |= backend_features &
	     (VUISO_BIT(VUISO_F_EVENT_IDX) | VUISO_BIT(VUISO_F_VERSION_1) |
	      VUISO_BIT(VUISO_F_VHOST_USER_PROTOCOL_FEATURES));
	/*
	 * Shadow layout: packed whenever the back-end offers it, whatever the
	 * guest's (the engine translates).  A packed ring keeps a request's
	 * descriptor, availability and completion on one cache line, so fewer
	 * lines travel between the VMM's CPU and a back-end polling on another:
	 * against dpdk-testpmd a split guest moved 15 % more 64-byte frames
	 * through a packed shadow ring (docs/performance.md, section 4).
	 */
	f |= backend_features & VUISO_BIT(VUISO_F_RING_PACKED);
	return f;
}

VUISO_API void vuiso_vq_config_set_base(struct vuiso_vq_config *cfg,
					uint32_t num)
{
	switch ((enum vuiso_layout)cfg->layout) {
	case VUISO_LAYOUT_SPLIT:
		cfg->avail_idx = (uint16_t)num;
		cfg->used_idx = (uint16_t)num;
		return;
	case VUISO_LAYOUT_PACKED:
		cfg->avail_idx = (uint16_t)num;
		cfg->used_idx = (uint16_t)(num >> 16);
		return;
	}
	/* An unknown layout: vuiso_vq_start() refuses the config. */
}

/* ---- Configuration and region ---- */

struct dev_params {
	uint32_t num_queues;
	uint32_t queue_size_max;
	uint64_t pool_size;
	uint64_t backend_base;
	uint32_t budget;
	uint32_t flags;
	uint64_t ring_bytes;
	uint64_t stride;
	uint64_t size;
};

static int dev_params(const struct vuiso_dev_config *cfg, struct dev_params *p)
{
	if (!cfg || cfg->version != VUISO_DEV_CONFIG_VERSION || !cfg->ops ||
	    cfg->ops->version != VUISO_OPS_VERSION ||
	    (cfg->flags & ~VUISO_DEV_F_CLEAR_WRITABLE))
		return -EINVAL;
	p->num_queues = cfg->num_queues;
	p->queue_size_max = cfg->queue_size_max ? cfg->queue_size_max
						: DEFAULT_QUEUE_SIZE;
	p->pool_size = cfg->pool_size ? cfg->pool_size : DEFAULT_POOL_SIZE;
	p->backend_base = cfg->backend_base ? cfg->backend_base
					    : DEFAULT_BACKEND_BASE;
	p->budget = cfg->budget;
	p->flags = cfg->flags;
	if (!p->num_queues || p->num_queues > VUISO_MAX_QUEUES)
		return -EINVAL;
	if (p->queue_size_max > VUISO_QUEUE_SIZE_MAX ||
	    (p->queue_size_max & (p->queue_size_max - 1)))
		return -EINVAL;
	if (p->pool_size < VUISO_POOL_MIN || p->pool_size > VUISO_POOL_MAX ||
	    (p->pool_size & (p->pool_size - 1)))
		return -EINVAL;
	if (p->backend_base % 4096)
		return -EINVAL;
	svq_region_layout(p->queue_size_max, p->pool_size, &p->ring_bytes,
			  &p->stride);
	p->size = p->stride * p->num_queues;
	if (p->size - 1 > UINT64_MAX - p->backend_base)
		return -EINVAL;
	return 0;
}

VUISO_API int vuiso_region_size(const struct vuiso_dev_config *cfg,
				uint64_t *size)
{
	struct dev_params p;
	int ret = dev_params(cfg, &p);

	if (ret)
		return ret;
	*size = p.size;
	return 0;
}

/*
 * The region fd goes to the back-end, which holds it as long as it lives:
 *  - F_SEAL_SHRINK: otherwise it could truncate the memfd and make every
 *    VMM access past the new end fault with SIGBUS;
 *  - F_SEAL_SEAL: otherwise it could add seals of its own, such as
 *    F_SEAL_FUTURE_WRITE, after which no process (a restarted back-end
 *    included) can map the region writable again.
 * A region the library creates is also sealed against growing, which
 * harms no one but has no use either.
 */
#define REQUIRED_SEALS (F_SEAL_SHRINK | F_SEAL_SEAL)

static int region_create(uint64_t size, int *fdp)
{
	int fd =
		memfd_create("vuiso-isolated", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int err;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, REQUIRED_SEALS | F_SEAL_GROW) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*fdp = fd;
	return 0;
}

static int region_adopt(int fd, uint64_t size, int *fdp)
{
	struct stat st;
	int seals, nfd;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < size)
		return -EINVAL;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -EINVAL; /* not a memfd: it cannot carry seals */
	if ((seals & REQUIRED_SEALS) != REQUIRED_SEALS)
		return -EINVAL;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		return -errno;
	*fdp = nfd;
	return 0;
}

VUISO_API int vuiso_dev_new(const struct vuiso_dev_config *cfg,
			    struct vuiso_dev **out)
{
	struct vuiso_dev *dev;
	struct dev_params p;
	void *map;
	int ret;

	ret = dev_params(cfg, &p);
	if (ret)
		return ret;
	dev = calloc(1, sizeof(*dev) + p.num_queues * sizeof(dev->vq[0]));
	if (!dev)
		return -ENOMEM;
	dev->ops = *cfg->ops;
	dev->opaque = cfg->opaque;
	dev->num_queues = p.num_queues;
	dev->queue_size_max = p.queue_size_max;
	dev->pool_size = p.pool_size;
	dev->backend_base = p.backend_base;
	dev->budget = p.budget;
	dev->flags = p.flags;
	dev->ring_bytes = p.ring_bytes;
	dev->stride = p.stride;
	dev->size = p.size;
	dev->fd = -1;
	pthread_mutex_init(&dev->mem_lock, NULL);
	atomic_init(&dev->mem, NULL);
	atomic_init(&dev->logging, 0);

	ret = cfg->region_fd >= 0
		      ? region_adopt(cfg->region_fd, p.size, &dev->fd)
		      : region_create(p.size, &dev->fd);
	if (ret)
		goto fail;
	map = mmap(NULL, p.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev->fd,
		   0);
	if (map == MAP_FAILED) {
		ret = -errno;
		goto fail;
	}
	dev->map = map;
	for (uint32_t i = 0; i < p.num_queues; i++) {
		ret = svq_init(&dev->vq[i], dev, i);
		if (ret)
			goto fail;
	}
	if (dev->ops.region_add)
		dev->ops.region_add(dev->opaque, 0, dev->fd, dev->size,
				    dev->backend_base, dev->map);
	*out = dev;
	return 0;
fail:
	vuiso_dev_free(dev);
	return ret;
}

VUISO_API void vuiso_dev_free(struct vuiso_dev *dev)
{
	if (!dev)
		return;
	if (dev->map && dev->ops.region_del)
		dev->ops.region_del(dev->opaque, 0);
	for (uint32_t i = 0; i < dev->num_queues; i++)
		svq_destroy(&dev->vq[i]);
	if (dev->map)
		munmap(dev->map, dev->size);
	if (dev->fd >= 0)
		close(dev->fd);
	/* No reader can be left: the caller runs nothing else on @dev. */
	free(atomic_load_explicit(&dev->mem, memory_order_relaxed));
	pthread_mutex_destroy(&dev->mem_lock);
	free(dev);
}

VUISO_API unsigned vuiso_dev_num_regions(const struct vuiso_dev *dev)
{
	(void)dev;
	return 1;
}

VUISO_API int vuiso_dev_get_region(const struct vuiso_dev *dev, unsigned index,
				   struct vuiso_region_info *info)
{
	if (index != 0)
		return -ENOENT;
	info->fd = dev->fd;
	info->fd_offset = 0;
	info->size = dev->size;
	info->backend_addr = dev->backend_base;
	/* A label, not the mapping: no VMM address goes to the back-end. */
	info->user_addr = dev->backend_base;
	info->vmm_addr = dev->map;
	return 0;
}

VUISO_API struct vuiso_vq *vuiso_dev_get_vq(struct vuiso_dev *dev,
					    unsigned qidx)
{
	if (qidx >= dev->num_queues)
		return NULL;
	return &dev->vq[qidx];
}

/* ---- Guest memory map and logging ---- */

VUISO_API int vuiso_dev_set_guest_memory(struct vuiso_dev *dev,
					 const struct vuiso_mem_region *regions,
					 size_t n)
{
	struct vuiso_memmap *m, *old;
	int ret = vuiso_memmap_new(regions, n, &m);

	if (ret)
		return ret;
	pthread_mutex_lock(&dev->mem_lock);
	/* Release: the table's contents are visible before the pointer;
	 * pairs with the acquire load at the start of every data-path call. */
	old = atomic_exchange_explicit(&dev->mem, m, memory_order_acq_rel);
	pthread_mutex_unlock(&dev->mem_lock);
	/* Wait until no data-path call can still hold @old. */
	synchronize_rcu();
	free(old);
	return 0;
}

VUISO_API void vuiso_dev_set_logging(struct vuiso_dev *dev, int on)
{
	atomic_store_explicit(&dev->logging, !!on, memory_order_relaxed);
}
