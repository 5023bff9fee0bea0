/* SPDX-License-Identifier: MIT */
/*
 * The device model: feature negotiation, guest RAM, the isolated region,
 * queue start and stop, and each queue's event handling.
 *
 * This is the part of the example VMM that embeds libvuiso; minimal.c
 * (vuiso-minimal) is the same sequence in one short file.  The vhost-user
 * messages are in vhost_user.c, the guest's drivers in guest/, the
 * workloads in blk.c and fs.c, the isolation proof in proof.c, the
 * back-end restart (--reconnect) in restart.c.  With
 * --isolation=on the data path is:
 *
 *   guest driver kick -> vmm_queue_kick -> vuiso_vq_kick_from_guest
 *       -> ops.kick_backend -> write(kick eventfd)            [back-end runs]
 *   back-end call eventfd -> vmm_queue_wait -> vuiso_vq_call_from_backend
 *       -> ops.notify_guest -> q->irq = true -> driver reaps the used ring
 *
 * With --isolation=off the driver's kick writes the back-end's kick eventfd
 * directly and the back-end's call eventfd is the driver's interrupt, which
 * is what vhost-user does without isolation.
 */
#include "vmm.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

double vmm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void vmm_fail(struct vmm_dev *dev, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&dev->err_lock);
	if (!atomic_load(&dev->failed)) {
		va_start(ap, fmt);
		vsnprintf(dev->err, sizeof(dev->err), fmt, ap);
		va_end(ap);
		atomic_store_explicit(&dev->failed, 1, memory_order_release);
	}
	pthread_mutex_unlock(&dev->err_lock);
}

/* ---- libvuiso callbacks ---- */

static void ops_kick_backend(void *opaque, unsigned qidx)
{
	struct vmm_dev *dev = opaque;
	uint64_t one = 1;

	if (qidx < dev->nq && write(dev->q[qidx].kick_fd, &one, 8) != 8)
		vmm_fail(dev, "queue %u: writing the kick eventfd failed: %s",
			 qidx, strerror(errno));
}

static void ops_notify_guest(void *opaque, unsigned qidx)
{
	struct vmm_dev *dev = opaque;

	/* The queue's own thread is the one in the library: no locking. */
	if (qidx < dev->nq)
		dev->q[qidx].irq = true;
}

static void ops_error(void *opaque, unsigned qidx, int err, const char *msg)
{
	struct vmm_dev *dev = opaque;

	vmm_fail(dev, "libvuiso: queue %u broken: %s (%s)", qidx, msg,
		 strerror(-err));
}

static const struct vuiso_ops vmm_vuiso_ops = {
	.version = VUISO_OPS_VERSION,
	.kick_backend = ops_kick_backend,
	.notify_guest = ops_notify_guest,
	.error = ops_error,
};

/* ---- bring-up ---- */

static int vu_err(struct vmm_dev *dev, int r)
{
	vmm_fail(dev, "vhost-user: %s",
		 dev->vu.err[0] ? dev->vu.err : strerror(-r));
	return r;
}

void vmm_dev_init(struct vmm_dev *dev, struct vmm_opts *opts)
{
	memset(dev, 0, sizeof(*dev));
	pthread_mutex_init(&dev->err_lock, NULL);
	pthread_mutex_init(&dev->park_lock, NULL);
	pthread_cond_init(&dev->park_cond, NULL);
	dev->opts = opts;
	dev->mem.fd = -1;
	dev->vu.sock = -1;
	dev->enabled_at_start = VMM_MAX_QUEUES;
	for (unsigned i = 0; i < VMM_MAX_QUEUES; i++) {
		dev->q[i].owner = &dev->q[i];
		dev->q[i].kick_fd = -1;
		dev->q[i].call_fd = -1;
	}
}

/*
 * --backend-ring: the shadow ring's layout is whatever RING_PACKED says in
 * SET_FEATURES, so forcing a layout is one bit.  Without isolation the
 * back-end reads the guest's own ring: nothing to choose.
 */
static int choose_backend_ring(struct vmm_dev *dev, struct vmm_opts *opts,
			       uint64_t offered)
{
	const uint64_t packed = 1ULL << VIRTQ_F_RING_PACKED;

	switch (opts->backend_ring) {
	case VMM_BACKEND_RING_AUTO:
		return 0;
	case VMM_BACKEND_RING_SPLIT:
		if (!opts->isolation && (dev->backend_features & packed))
			break;
		dev->backend_features &= ~packed;
		return 0;
	case VMM_BACKEND_RING_PACKED:
		if (!(offered & packed)) {
			vmm_fail(dev,
				 "--backend-ring=packed: the back-end does not "
				 "offer VIRTIO_F_RING_PACKED (bit 34); it "
				 "offered 0x%016" PRIx64,
				 offered);
			return -ENOTSUP;
		}
		if (!opts->isolation && !(dev->backend_features & packed))
			break;
		dev->backend_features |= packed;
		return 0;
	}
	vmm_fail(dev, "with --isolation=off the back-end uses the guest's "
		      "ring: --backend-ring must match --guest-ring");
	return -EINVAL;
}

int vmm_backend_negotiate(struct vmm_dev *dev, uint64_t *offered,
			  uint64_t *proto, uint64_t *qnum)
{
	const uint64_t want_proto =
		(1ULL << VMM_VU_PROTO_F_MQ) |
		(1ULL << VMM_VU_PROTO_F_REPLY_ACK) |
		(1ULL << VMM_VU_PROTO_F_CONFIG) |
		(1ULL << VMM_VU_PROTO_F_CONFIGURE_MEM_SLOTS);
	int r;

	*proto = 0;
	r = vmm_vu_set_owner(&dev->vu);
	if (r < 0)
		return r;
	r = vmm_vu_get_features(&dev->vu, offered);
	if (r < 0)
		return r;
	if ((*offered >> VMM_VU_F_PROTOCOL_FEATURES) & 1) {
		r = vmm_vu_get_protocol_features(&dev->vu, proto);
		if (r < 0)
			return r;
		r = vmm_vu_set_protocol_features(&dev->vu, *proto & want_proto);
		if (r < 0)
			return r;
	}
	return vmm_vu_get_queue_num(&dev->vu, qnum);
}

int vmm_dev_open(struct vmm_dev *dev, struct vmm_opts *opts,
		 uint64_t driver_wants, unsigned nq)
{
	uint64_t offered, guest_offer, proto = 0, qnum;
	unsigned need;
	int r;

	dev->opts = opts;
	dev->nq = nq;

	r = vmm_vu_connect(&dev->vu, opts->socket);
	if (r < 0)
		return vu_err(dev, r);
	if (opts->backend_pid > 0)
		dev->vu.peer_pid = opts->backend_pid;

	r = vmm_backend_negotiate(dev, &offered, &proto, &qnum);
	if (r < 0)
		return vu_err(dev, r);
	dev->backend_offered = offered;

	/* Features the user insists on: refuse clearly if absent. */
	for (unsigned bit = 0; bit < 64; bit++) {
		if (!((opts->require_features >> bit) & 1) ||
		    ((offered >> bit) & 1))
			continue;
		vmm_fail(dev,
			 "back-end does not offer required feature %s (bit "
			 "%u); it offered 0x%016" PRIx64,
			 vmm_feature_name(opts->type, bit), bit, offered);
		return -ENOTSUP;
	}
	if (!((offered >> VIRTQ_F_VERSION_1) & 1)) {
		vmm_fail(dev, "back-end does not offer VIRTIO_F_VERSION_1; "
			      "legacy devices are not supported");
		return -ENOTSUP;
	}

	need = vmm_backend_queues_needed(dev);
	if (qnum < need) {
		vmm_fail(dev,
			 "back-end supports %" PRIu64 " queue%s, %u needed%s",
			 qnum, opts->type == VMM_DEV_NET ? " pair(s)" : "(s)",
			 need,
			 vmm_vu_has_proto(&dev->vu, VMM_VU_PROTO_F_MQ)
				 ? ""
				 : " (it does not offer the MQ protocol "
				   "feature)");
		return -ENOTSUP;
	}

	/*
	 * The guest driver sees what the VMM offers it.  Isolated, libvuiso
	 * decides: it implements indirect descriptors and event idx toward
	 * the guest itself and masks what it cannot shadow.  Not isolated,
	 * the back-end's offer goes to the guest minus the vhost-only bits.
	 */
	if (opts->isolation)
		guest_offer = vuiso_features_for_guest(offered);
	else
		guest_offer = offered & ~((1ULL << VMM_VU_F_PROTOCOL_FEATURES) |
					  (1ULL << 26));
	guest_offer |= dev->model_features;
	/* The guest driver knows both layouts; --guest-ring says which one it
	 * accepts. */
	if (opts->guest_ring == VIRTQ_LAYOUT_PACKED)
		driver_wants |= 1ULL << VIRTQ_F_RING_PACKED;
	else
		driver_wants &= ~(1ULL << VIRTQ_F_RING_PACKED);
	if (opts->no_indirect)
		driver_wants &= ~(1ULL << VIRTQ_F_INDIRECT_DESC);
	if (opts->no_event_idx)
		driver_wants &= ~(1ULL << VIRTQ_F_EVENT_IDX);
	dev->guest_features = guest_offer & driver_wants;
	if (!((dev->guest_features >> VIRTQ_F_VERSION_1) & 1)) {
		vmm_fail(dev, "VIRTIO_F_VERSION_1 not offered to the guest");
		return -ENOTSUP;
	}
	if (opts->guest_ring == VIRTQ_LAYOUT_PACKED &&
	    !vmm_has(dev, VIRTQ_F_RING_PACKED)) {
		/* Isolated, libvuiso always offers it (it translates). */
		vmm_fail(
			dev,
			"--guest-ring=packed: VIRTIO_F_RING_PACKED (bit 34) is "
			"not offered to the guest; with --isolation=off the "
			"back-end must offer it, and it offered 0x%016" PRIx64,
			offered);
		return -ENOTSUP;
	}
	if (opts->isolation)
		dev->backend_features = vuiso_features_for_backend(
			offered, dev->guest_features);
	else
		dev->backend_features =
			dev->guest_features |
			(offered & (1ULL << VMM_VU_F_PROTOCOL_FEATURES));
	/* The device model's own bits reach the back-end only if offered. */
	dev->backend_features &= ~(dev->model_features & ~offered);
	r = choose_backend_ring(dev, opts, offered);
	if (r < 0)
		return r;
	r = vmm_vu_set_features(&dev->vu, dev->backend_features);
	if (r < 0)
		return vu_err(dev, r);
	if (!opts->quiet)
		fprintf(stderr,
			"vmm: back-end pid %d offered features 0x%016" PRIx64
			" protocol 0x%" PRIx64 " queues %" PRIu64 "\n"
			"vmm: guest driver features 0x%016" PRIx64
			", back-end features 0x%016" PRIx64 "\n"
			"vmm: guest ring %s, back-end ring %s\n",
			(int)dev->vu.peer_pid, offered, proto, qnum,
			dev->guest_features, dev->backend_features,
			vmm_has(dev, VIRTQ_F_RING_PACKED) ? "packed" : "split",
			((dev->backend_features >> VIRTQ_F_RING_PACKED) & 1)
				? "packed"
				: "split");
	return 0;
}

static void guest_notify(void *opaque)
{
	struct vmm_queue *q = opaque;
	uint64_t one = 1;

	if (q->svq) {
		/* An MMIO write trapping into the VMM: handled on this thread
		 * by vmm_queue_wait()/vmm_queue_kick(). */
		q->kick_pending = true;
		return;
	}
	/* Not isolated: the guest's doorbell is the back-end's kick fd
	 * (an ioeventfd in a real VMM). */
	if (write(q->kick_fd, &one, 8) != 8)
		vmm_fail(q->dev, "queue %u: kick eventfd write failed: %s",
			 q->idx, strerror(errno));
}

/* The memory table: with isolation on, only the isolated region(s). */
static int memory_table(struct vmm_dev *dev, struct vmm_vu_mem_region *regs,
			unsigned *n)
{
	*n = 0;
	if (!dev->iso) {
		regs[(*n)++] = (struct vmm_vu_mem_region){
			.gpa = dev->mem.gpa,
			.size = dev->mem.size,
			.uaddr = (uint64_t)(uintptr_t)dev->mem.hva,
			.mmap_offset = 0,
			.fd = dev->mem.fd,
		};
		return 0;
	}
	for (unsigned i = 0;
	     i < vuiso_dev_num_regions(dev->iso) && *n < VMM_VU_MAX_MEM_REGIONS;
	     i++) {
		struct vuiso_region_info info;
		int r = vuiso_dev_get_region(dev->iso, i, &info);

		if (r < 0)
			return vmm_vu_fail(&dev->vu, r,
					   "vuiso_dev_get_region(%u): %s", i,
					   strerror(-r));
		regs[(*n)++] = (struct vmm_vu_mem_region){
			.gpa = info.backend_addr,
			.size = info.size,
			.uaddr = info.user_addr, /* a label */
			.mmap_offset = info.fd_offset,
			.fd = info.fd,
		};
	}
	return 0;
}

int vmm_backend_send_memory(struct vmm_dev *dev)
{
	struct vmm_vu_mem_region regs[VMM_VU_MAX_MEM_REGIONS];
	uint64_t slots;
	unsigned n;
	int r;

	r = memory_table(dev, regs, &n);
	if (r < 0)
		return r;
	if (vmm_vu_has_proto(&dev->vu, VMM_VU_PROTO_F_CONFIGURE_MEM_SLOTS) &&
	    !dev->opts->no_mem_slots) {
		r = vmm_vu_get_max_mem_slots(&dev->vu, &slots);
		if (r < 0)
			return r;
		if (slots < n)
			return vmm_vu_fail(&dev->vu, -ENOSPC,
					   "back-end has %" PRIu64
					   " memory slots, %u needed",
					   slots, n);
		for (unsigned i = 0; i < n; i++) {
			r = vmm_vu_add_mem_reg(&dev->vu, &regs[i]);
			if (r < 0)
				return r;
		}
		if (!dev->opts->quiet)
			fprintf(stderr,
				"vmm: %u memory region(s) sent with "
				"ADD_MEM_REG "
				"(%" PRIu64 " slots)\n",
				n, slots);
		return 0;
	}
	r = vmm_vu_set_mem_table(&dev->vu, regs, n);
	if (r < 0)
		return r;
	if (!dev->opts->quiet)
		fprintf(stderr,
			"vmm: %u memory region(s) sent with SET_MEM_TABLE\n",
			n);
	return 0;
}

int vmm_guest_ring_init(struct vmm_dev *dev, struct virtq *vq, unsigned idx,
			unsigned num, void (*notify)(void *), void *opaque)
{
	struct virtq_config cfg = {
		.layout = vmm_has(dev, VIRTQ_F_RING_PACKED)
				  ? VIRTQ_LAYOUT_PACKED
				  : VIRTQ_LAYOUT_SPLIT,
		.num = num,
		.features = dev->guest_features,
		.max_indirect = VMM_MAX_INDIRECT,
		.map = vmm_guest_map,
		.map_opaque = &dev->mem,
		.notify = notify,
		.notify_opaque = opaque,
	};
	struct virtq_areas size;
	int r;

	r = virtq_area_sizes(cfg.layout, cfg.num, &size);
	if (r < 0) {
		vmm_fail(dev, "queue %u: bad queue size %u", idx, cfg.num);
		return r;
	}
	cfg.gpa.desc = vmm_guest_alloc(&dev->mem, size.desc, 4096);
	cfg.gpa.driver = vmm_guest_alloc(&dev->mem, size.driver, 4096);
	cfg.gpa.device = vmm_guest_alloc(&dev->mem, size.device, 4096);
	if (vmm_has(dev, VIRTQ_F_INDIRECT_DESC))
		cfg.indirect_gpa = vmm_guest_alloc(
			&dev->mem, 16ULL * cfg.num * cfg.max_indirect, 4096);
	if (!cfg.gpa.desc || !cfg.gpa.driver || !cfg.gpa.device ||
	    (vmm_has(dev, VIRTQ_F_INDIRECT_DESC) && !cfg.indirect_gpa)) {
		vmm_fail(dev, "queue %u: guest RAM too small for the ring",
			 idx);
		return -ENOMEM;
	}
	r = virtq_init(vq, &cfg);
	if (r < 0)
		vmm_fail(dev, "queue %u: guest ring: %s", idx, strerror(-r));
	return r;
}

/* The guest driver sets up its ring in guest RAM, in the layout it
 * negotiated. */
static int guest_ring_init(struct vmm_dev *dev, struct vmm_queue *q)
{
	int r = vmm_guest_ring_init(dev, &q->vq, q->idx, dev->opts->queue_size,
				    guest_notify, q);

	/* Without isolation the back-end writes the used lengths into the
	 * guest's ring itself (see ignore_readonly_len); with isolation
	 * libvuiso reports them, and they must be exact. */
	q->vq.ignore_readonly_len = !dev->iso;
	return r;
}

static int start_queue(struct vmm_dev *dev, struct vmm_queue *q)
{
	bool guest_packed = vmm_has(dev, VIRTQ_F_RING_PACKED);
	uint64_t desc, used, avail;
	unsigned num, base;
	int r;

	r = guest_ring_init(dev, q);
	if (r < 0)
		return r;
	q->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	q->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->kick_fd < 0 || q->call_fd < 0) {
		vmm_fail(dev, "eventfd: %s", strerror(errno));
		return -errno;
	}

	if (dev->iso) {
		struct vuiso_vq_config cfg = {
			.version = VUISO_VQ_CONFIG_VERSION,
			.layout = guest_packed ? VUISO_LAYOUT_PACKED
					       : VUISO_LAYOUT_SPLIT,
			.size = q->vq.num,
			.desc_gpa = q->vq.gpa.desc,
			.avail_gpa = q->vq.gpa.driver,
			.used_gpa = q->vq.gpa.device,
			.guest_features = dev->guest_features,
			.backend_features = dev->backend_features,
			/* Where the guest ring stands: 0 / 0 for a fresh
			 * split ring, VUISO_PACKED_WRAP for a packed one. */
			.avail_idx = virtq_avail_idx(&q->vq),
			.used_idx = virtq_used_idx(&q->vq),
		};
		struct vuiso_vq_shadow sh;

		q->svq = vuiso_dev_get_vq(dev->iso, q->idx);
		if (!q->svq) {
			vmm_fail(dev, "libvuiso has no queue %u", q->idx);
			return -EINVAL;
		}
		r = vuiso_vq_start(q->svq, &cfg, &sh);
		if (r < 0) {
			vmm_fail(dev,
				 "vuiso_vq_start(queue %u, %s guest ring): %s",
				 q->idx, guest_packed ? "packed" : "split",
				 strerror(-r));
			return r;
		}
		/* The back-end gets the shadow ring, never the guest's, in
		 * the layout SET_FEATURES chose. */
		num = sh.size;
		/* In the region's synthetic user-address space (the
		 * back-end's own view): never a VMM address. */
		desc = sh.desc_backend;
		used = sh.used_backend;
		avail = sh.avail_backend;
		base = sh.vring_base;
		q->backend_packed = sh.layout == VUISO_LAYOUT_PACKED;
	} else {
		/* The back-end reads the guest's own ring. */
		num = q->vq.num;
		desc = (uint64_t)(uintptr_t)vmm_gpa_to_hva(&dev->mem,
							   q->vq.gpa.desc);
		avail = (uint64_t)(uintptr_t)vmm_gpa_to_hva(&dev->mem,
							    q->vq.gpa.driver);
		used = (uint64_t)(uintptr_t)vmm_gpa_to_hva(&dev->mem,
							   q->vq.gpa.device);
		/* vhost-user: split, the avail index; packed, the avail
		 * half and the used half in bits 16-31. */
		base = virtq_avail_idx(&q->vq);
		if (guest_packed)
			base |= (unsigned)virtq_used_idx(&q->vq) << 16;
		q->backend_packed = guest_packed;
	}
	q->started = true;

	r = vmm_backend_set_vring(dev, q, num, base, desc, used, avail);
	return r < 0 ? vu_err(dev, r) : 0;
}

int vmm_backend_set_vring(struct vmm_dev *dev, struct vmm_queue *q,
			  unsigned num, unsigned base, uint64_t desc,
			  uint64_t used, uint64_t avail)
{
	int r;

	if ((r = vmm_vu_set_vring_num(&dev->vu, q->idx, num)) < 0 ||
	    (r = vmm_vu_set_vring_base(&dev->vu, q->idx, base)) < 0 ||
	    (r = vmm_vu_set_vring_addr(&dev->vu, q->idx, desc, used, avail)) <
		    0 ||
	    (r = vmm_vu_set_vring_call(&dev->vu, q->idx, q->call_fd)) < 0 ||
	    (r = vmm_vu_set_vring_kick(&dev->vu, q->idx, q->kick_fd)) < 0)
		return r;
	/* Without PROTOCOL_FEATURES a ring is enabled once it starts. */
	if (((dev->backend_features >> VMM_VU_F_PROTOCOL_FEATURES) & 1) &&
	    q->enabled)
		return vmm_vu_set_vring_enable(&dev->vu, q->idx, true);
	return 0;
}

int vmm_dev_start(struct vmm_dev *dev, uint64_t guest_ram)
{
	int r;

	r = vmm_guest_mem_init(&dev->mem, guest_ram);
	if (r < 0) {
		vmm_fail(dev, "guest RAM (%" PRIu64 " bytes): %s", guest_ram,
			 strerror(-r));
		return r;
	}

	if (dev->opts->isolation) {
		struct vuiso_dev_config cfg = {
			.version = VUISO_DEV_CONFIG_VERSION,
			.num_queues = dev->nq,
			.queue_size_max = dev->opts->queue_size,
			.pool_size = dev->opts->pool_size,
			.budget = dev->opts->budget,
			.region_fd = -1,
			.ops = &vmm_vuiso_ops,
			.opaque = dev,
		};
		struct vuiso_mem_region ram = {
			.gpa = dev->mem.gpa,
			.size = dev->mem.size,
			.hva = dev->mem.hva,
		};

		r = vuiso_dev_new(&cfg, &dev->iso);
		if (r < 0) {
			vmm_fail(dev, "vuiso_dev_new: %s", strerror(-r));
			return r;
		}
		r = vuiso_dev_set_guest_memory(dev->iso, &ram, 1);
		if (r < 0) {
			vmm_fail(dev, "vuiso_dev_set_guest_memory: %s",
				 strerror(-r));
			return r;
		}
	}
	/* Only the isolated region(s) are ever sent, with isolation on. */
	r = vmm_backend_send_memory(dev);
	if (r < 0)
		return vu_err(dev, r);

	for (unsigned i = 0; i < dev->nq; i++) {
		dev->q[i].dev = dev;
		dev->q[i].idx = i;
		dev->q[i].enabled = i < dev->enabled_at_start;
		r = start_queue(dev, &dev->q[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Where the driver's avail index stands once the chains it still has in
 * flight are handed back: a stop gives back what the back-end never took,
 * and the workloads leave in flight only buffers a back-end takes when it
 * has something for them (net receive buffers).  Split counts chains;
 * packed counts ring descriptors, with the wrap counter in bit 15.
 */
static uint16_t driver_avail_rewound(const struct virtq *vq)
{
	uint16_t avail = virtq_avail_idx(vq);
	unsigned pos, wrap, d;

	if (vq->layout == VIRTQ_LAYOUT_SPLIT)
		return (uint16_t)(avail - vq->inflight);
	d = vq->num - vq->num_free;
	pos = avail & 0x7fffu;
	wrap = avail & VIRTQ_PACKED_WRAP;
	if (pos < d) {
		pos += vq->num;
		wrap ^= VIRTQ_PACKED_WRAP;
	}
	return (uint16_t)((pos - d) | wrap);
}

/*
 * Isolated: the two-step stop, which never waits on the back-end.  The
 * back-end's GET_VRING_BASE answer settles the shadow ring; what it never
 * took goes back to the guest ring and @st has the guest's indices.
 */
static int stop_isolated(struct vmm_dev *dev, struct vmm_queue *q,
			 struct vuiso_vq_state *st)
{
	uint32_t base;
	int r;

	r = vuiso_vq_stop_begin(q->svq);
	if (r < 0) {
		vmm_fail(dev, "vuiso_vq_stop_begin(queue %u): %s", q->idx,
			 strerror(-r));
		return r;
	}
	r = vmm_vu_get_vring_base(&dev->vu, q->idx, q->backend_packed, &base);
	if (r < 0)
		return vu_err(dev, r);
	r = vuiso_vq_stop_finish(q->svq, base, st);
	if (r < 0) {
		vmm_fail(dev,
			 "vuiso_vq_stop_finish(queue %u, back-end base 0x%x): "
			 "%s",
			 q->idx, base, strerror(-r));
		return r;
	}
	if (r > 0) {
		/* The workloads stop only once every request completed, and
		 * qemu-storage-daemon, virtiofsd and dpdk-testpmd finish what
		 * they took before they answer GET_VRING_BASE. */
		vmm_fail(dev,
			 "queue %u: the back-end answered GET_VRING_BASE 0x%x "
			 "holding %d request(s) it took and never completed",
			 q->idx, base, r);
		return -EPROTO;
	}
	return 0;
}

int vmm_dev_stop(struct vmm_dev *dev)
{
	bool healthy = !vmm_failed(dev);
	int ret = 0;

	for (unsigned i = 0; i < dev->nq; i++) {
		struct vmm_queue *q = &dev->q[i];
		uint16_t want_avail = driver_avail_rewound(&q->vq);
		uint16_t want_used = virtq_used_idx(&q->vq);
		struct vuiso_vq_state st;
		uint32_t base;
		int r;

		if (!q->started)
			continue;
		q->started = false;
		if (q->svq && !healthy) {
			/* Nothing to check: drop what is in flight. */
			vuiso_vq_reset(q->svq);
			continue;
		}
		if (q->svq) {
			r = stop_isolated(dev, q, &st);
			if (r < 0) {
				vuiso_vq_reset(q->svq);
				ret = r;
				healthy = false;
				continue;
			}
		} else if (!healthy) {
			continue;
		} else {
			r = vmm_vu_get_vring_base(&dev->vu, i,
						  q->backend_packed, &base);
			if (r < 0) {
				ret = vu_err(dev, r);
				healthy = false;
				continue;
			}
			/* The back-end read the guest's own ring: its answer
			 * is the guest's index (packed: avail half in bits
			 * 0-15, used half in 16-31; DPDK 22.11 leaves the used
			 * half 0, and only the avail half restarts a ring). */
			st.avail_idx = (uint16_t)base;
			st.used_idx = q->backend_packed && (base >> 16)
					      ? (uint16_t)(base >> 16)
					      : want_used;
		}
		/* The guest side's indices must be where the driver stands,
		 * less the buffers it still had posted (given back). */
		if (st.avail_idx != want_avail || st.used_idx != want_used) {
			vmm_fail(dev,
				 "queue %u: stopped at guest avail 0x%04x used "
				 "0x%04x; the driver has avail 0x%04x used "
				 "0x%04x with %u chain(s) posted",
				 i, st.avail_idx, st.used_idx,
				 virtq_avail_idx(&q->vq), want_used,
				 q->vq.inflight);
			ret = -EPROTO;
		}
	}
	return ret;
}

void vmm_dev_close(struct vmm_dev *dev)
{
	vmm_vu_close(&dev->vu);
	for (unsigned i = 0; i < VMM_MAX_QUEUES; i++) {
		struct vmm_queue *q = &dev->q[i];

		if (q->kick_fd >= 0)
			close(q->kick_fd);
		if (q->call_fd >= 0)
			close(q->call_fd);
		q->kick_fd = q->call_fd = -1;
		virtq_fini(&q->vq);
	}
	vuiso_dev_free(dev->iso);
	dev->iso = NULL;
	vmm_guest_mem_fini(&dev->mem);
}

/* ---- data path ---- */

int vmm_queue_submit(struct vmm_queue *q, const struct virtq_sg *sg,
		     unsigned out, unsigned in, void *token)
{
	return virtq_add(&q->vq, sg, out, in, token);
}

static int handle_kick(struct vmm_queue *q)
{
	int r;

	q->kick_pending = false;
	r = vuiso_vq_kick_from_guest(q->svq);
	if (r == 1) {
		q->kick_pending = true; /* budget ran out: call again */
	} else if (r < 0) {
		vmm_fail(q->dev, "vuiso_vq_kick_from_guest(queue %u): %s",
			 q->idx, strerror(-r));
		return -EIO;
	}
	return 0;
}

static int handle_call(struct vmm_queue *q)
{
	int r;

	q->call_pending = false;
	r = vuiso_vq_call_from_backend(q->svq);
	if (r == 1) {
		q->call_pending = true;
	} else if (r < 0) {
		vmm_fail(q->dev, "vuiso_vq_call_from_backend(queue %u): %s",
			 q->idx, strerror(-r));
		return -EIO;
	}
	return 0;
}

void vmm_queue_kick(struct vmm_queue *q)
{
	virtq_kick(&q->vq);
	if (q->kick_pending)
		handle_kick(q);
}

/* The guest's interrupt handler: take every used chain. */
static int reap(struct vmm_queue *q)
{
	void *token;
	uint32_t len;
	int n = 0, r;

	do {
		while ((r = virtq_get_used(&q->vq, &token, &len)) == 1) {
			n++;
			if (q->complete(q, token, len) < 0)
				return -EIO;
		}
		if (r < 0) {
			vmm_fail(q->dev,
				 "queue %u: guest driver found an invalid used "
				 "ring entry (bad id, length or index)",
				 q->idx);
			return -EIO;
		}
	} while (virtq_enable_cb(&q->vq));
	return n;
}

/* No completion for the stall timeout: say where each queue stands. */
static void stalled(struct vmm_queue *const *qs, unsigned n)
{
	struct vmm_dev *dev = qs[0]->dev;
	char ring[VMM_WAIT_MAX][160];

	for (unsigned i = 0; i < n; i++)
		virtq_describe(&qs[i]->vq, ring[i], sizeof(ring[i]));
	vmm_fail(dev,
		 "queue %u: no completion for %u s with %u request(s) in "
		 "flight (back-end or notification stalled; %s, %" PRIu64
		 " driver kicks)%s%s",
		 qs[0]->idx, dev->opts->stall_timeout_s, qs[0]->vq.inflight,
		 ring[0], qs[0]->vq.kicks, n > 1 ? "; and queue " : "",
		 n > 1 ? ring[1] : "");
}

/* @timeout_s < 0: the stall timeout, then fail. */
static int wait_queues(struct vmm_queue *const *qs, unsigned n,
		       double timeout_s)
{
	struct vmm_dev *dev = qs[0]->dev;
	double idle_start = 0;
	int ms = timeout_s >= 0 && timeout_s < 0.5 ? (int)(timeout_s * 1000)
						   : 500;

	for (;;) {
		struct pollfd pfd[VMM_WAIT_MAX + 1];
		bool again = false;
		unsigned inflight = 0;
		uint64_t cnt;
		int r, done = 0;

		if (vmm_failed(dev))
			return -EIO;
		if (atomic_load_explicit(&dev->backend_gone,
					 memory_order_acquire)) {
			/* --reconnect: wait here for the new back-end. */
			if (vmm_queues_park(qs, n) < 0)
				return -EIO;
			idle_start = 0;
			continue;
		}
		for (unsigned i = 0; i < n; i++) {
			struct vmm_queue *q = qs[i];

			if (q->kick_pending && handle_kick(q) < 0)
				return -EIO;
			if (q->call_pending && handle_call(q) < 0)
				return -EIO;
			if (q->irq) {
				q->irq = false;
				r = reap(q);
				if (r < 0)
					return r;
				done += r;
			}
			again |= q->kick_pending || q->call_pending || q->irq;
			inflight += q->vq.inflight;
		}
		if (done > 0)
			return done;
		if (again)
			continue;

		for (unsigned i = 0; i < n; i++)
			pfd[i] = (struct pollfd){.fd = qs[i]->call_fd,
						 .events = POLLIN};
		/* events 0: only POLLHUP/POLLERR, i.e. the back-end died. */
		pfd[n] = (struct pollfd){.fd = dev->vu.sock, .events = 0};
		r = poll(pfd, n + 1, ms);
		if (r < 0 && errno != EINTR) {
			vmm_fail(dev, "poll: %s", strerror(errno));
			return -EIO;
		}
		if (r > 0 && (pfd[n].revents & (POLLHUP | POLLERR)) &&
		    dev->opts->reconnect) {
			/* Everyone parks, the main thread reconnects. */
			atomic_store_explicit(&dev->backend_gone, 1,
					      memory_order_release);
			continue;
		}
		if (r > 0 && (pfd[n].revents & (POLLHUP | POLLERR))) {
			vmm_fail(
				dev,
				"back-end (pid %d) closed the vhost-user "
				"connection while queue %u%s had %u request(s) "
				"in flight: the back-end died or dropped us",
				(int)dev->vu.peer_pid, qs[0]->idx,
				n > 1 ? " and its pair" : "", inflight);
			return -EIO;
		}
		for (unsigned i = 0; r > 0 && i < n; i++) {
			struct vmm_queue *q = qs[i];

			if (!(pfd[i].revents & POLLIN) ||
			    read(q->call_fd, &cnt, 8) != 8)
				continue;
			q->backend_calls++;
			if (q->svq)
				q->call_pending = true;
			else
				q->irq = true;
			idle_start = 0;
		}
		if (r == 0) {
			double now = vmm_now();

			if (idle_start == 0)
				idle_start = now - ms / 1000.0;
			if (timeout_s >= 0 && now - idle_start >= timeout_s)
				return 0;
			if (timeout_s < 0 &&
			    now - idle_start > dev->opts->stall_timeout_s) {
				stalled(qs, n);
				return -EIO;
			}
		}
	}
}

int vmm_queue_wait(struct vmm_queue *q)
{
	return wait_queues(&q, 1, -1);
}

int vmm_queues_wait(struct vmm_queue *const *qs, unsigned n)
{
	return wait_queues(qs, n, -1);
}

int vmm_queues_wait_for(struct vmm_queue *const *qs, unsigned n,
			double timeout_s)
{
	return wait_queues(qs, n, timeout_s);
}
