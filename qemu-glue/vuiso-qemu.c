/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user memory isolation: the QEMU adapter over libvuiso.
 *
 * With memory-isolation=on the back-end never receives a guest RAM fd.
 * vhost-user.c calls in here from its VhostOps (see vuiso-qemu.h and
 * qemu-glue/DESIGN.md); this file owns one struct vuiso_dev per vhost-user
 * connection, takes over the guest's kick fd and the fd vhost wants
 * signalled on completion, and gives the back-end shadow rings, a fresh
 * shadow base and its own kick/call eventfds instead.
 *
 * Ring layouts: the guest ring is packed when the guest accepted
 * VIRTIO_F_RING_PACKED, the shadow ring when the back-end was sent it in
 * SET_FEATURES (libvuiso sets it only when both sides have it); any
 * combination works, libvuiso translates.  SET/GET_VRING_BASE carry QEMU's
 * encoding of virtio_queue_get_last_avail_idx(): split, the avail index;
 * packed, avail | avail wrap << 15 | (used | used wrap << 15) << 16.
 *
 * Everything runs in the main loop with the BQL held: the VhostOps are
 * called there, and so are the fd handlers and bottom halves installed
 * here.  One thread therefore drives every queue, which satisfies
 * libvuiso's "one queue, one thread at a time" rule trivially and lets
 * vuiso_dev_set_guest_memory() run between data-path calls.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/error-report.h"
#include "qemu/event_notifier.h"
#include "qemu/main-loop.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/vhost.h"
#include "hw/virtio/vuiso-qemu.h"
#include "standard-headers/linux/vhost_types.h"
#include "trace.h"

#include <vuiso/vuiso.h>

/* How long a device stop waits for the back-end to finish requests. */
#define VUISO_QEMU_STOP_MS 5000

typedef struct VuisoQemuVq {
    VuisoQemuDev *iso;
    unsigned idx;
    /* libvuiso queue; NULL until the device exists. */
    struct vuiso_vq *vq;
    /* Ring size and guest base (QEMU's encoding) from SET_VRING_NUM / _BASE. */
    unsigned num;
    uint32_t guest_base;
    /* Layout of the guest's ring at the last start, enum vuiso_layout. */
    uint32_t guest_layout;
    /* The guest's host notifier (read end), not owned; -1 if none. */
    int guest_kick_fd;
    /* What vhost wants signalled: guest or masked notifier; -1 if none. */
    int guest_call_fd;
    /* Our eventfds, the only ones the back-end sees. */
    EventNotifier shadow_kick;
    EventNotifier shadow_call;
    bool notifiers_ready;
    /* Bottom halves that continue when a call ran out of budget. */
    QEMUBH *kick_bh;
    QEMUBH *call_bh;
    /* Shadow ring addresses (VMM view) for SET_VRING_ADDR. */
    uint64_t shadow_desc;
    uint64_t shadow_avail;
    uint64_t shadow_used;
    /* Shadowing, handlers installed. */
    bool started;
    /* Drained by vuiso_qemu_drain(); state and result of vuiso_vq_stop(). */
    bool drained;
    struct vuiso_vq_state state;
    int stop_ret;
    /* vuiso_vq_stop() failed and requests may still be in flight. */
    bool needs_reset;
    /* The library reported this queue broken. */
    bool broken;
} VuisoQemuVq;

struct VuisoQemuDev {
    char *name;
    struct vuiso_dev *dev;
    unsigned num_queues;
    /* The isolated region was sent on the current connection. */
    bool region_sent;
    /* Features the back-end offered, and what we sent it. */
    uint64_t backend_offer;
    uint64_t backend_acked;
    /* Per-queue state, allocated on first use. */
    VuisoQemuVq *vqs[VIRTIO_QUEUE_MAX];
};

bool vuiso_qemu_available(void)
{
    return true;
}

static const char *vuiso_qemu_layout_name(uint32_t layout)
{
    switch ((enum vuiso_layout)layout) {
    case VUISO_LAYOUT_SPLIT:
        return "split";
    case VUISO_LAYOUT_PACKED:
        return "packed";
    }
    return "unknown";
}

/* --- libvuiso callbacks ------------------------------------------------ */

static void vuiso_qemu_kick_backend(void *opaque, unsigned qidx)
{
    VuisoQemuDev *iso = opaque;
    VuisoQemuVq *q = qidx < VIRTIO_QUEUE_MAX ? iso->vqs[qidx] : NULL;

    if (q && q->notifiers_ready) {
        event_notifier_set(&q->shadow_kick);
    }
}

static void vuiso_qemu_notify_guest(void *opaque, unsigned qidx)
{
    VuisoQemuDev *iso = opaque;
    VuisoQemuVq *q = qidx < VIRTIO_QUEUE_MAX ? iso->vqs[qidx] : NULL;
    static const uint64_t one = 1;

    if (q && q->guest_call_fd >= 0) {
        /*
         * The same write the back-end would have done: into the guest
         * notifier (irqfd or QEMU's handler) or, while masked, into
         * vhost's masked_notifier that vhost_virtqueue_pending() reads.
         */
        if (write(q->guest_call_fd, &one, sizeof(one)) < 0 &&
            errno != EAGAIN) {
            error_report_once("%s: vhost-user memory isolation: cannot notify "
                              "the guest on queue %u: %s", iso->name, qidx,
                              strerror(errno));
        }
    }
}

static void vuiso_qemu_error(void *opaque, unsigned qidx, int err,
                             const char *msg)
{
    VuisoQemuDev *iso = opaque;
    VuisoQemuVq *q = qidx < VIRTIO_QUEUE_MAX ? iso->vqs[qidx] : NULL;

    if (q) {
        q->broken = true;
    }
    error_report("%s: vhost-user memory isolation: queue %u stopped: %s (%s)",
                 iso->name, qidx, msg, strerror(-err));
}

static const struct vuiso_ops vuiso_qemu_ops = {
    .version = VUISO_OPS_VERSION,
    .kick_backend = vuiso_qemu_kick_backend,
    .notify_guest = vuiso_qemu_notify_guest,
    .error = vuiso_qemu_error,
};

/* --- data path --------------------------------------------------------- */

static void vuiso_qemu_run_kick(VuisoQemuVq *q)
{
    int r;

    if (!q->started) {
        return;
    }
    r = vuiso_vq_kick_from_guest(q->vq);
    if (r == 1) {
        /* Budget used up with guest work left: let the loop breathe. */
        qemu_bh_schedule(q->kick_bh);
    }
}

static void vuiso_qemu_run_call(VuisoQemuVq *q)
{
    int r;

    if (!q->started) {
        return;
    }
    r = vuiso_vq_call_from_backend(q->vq);
    if (r == 1) {
        qemu_bh_schedule(q->call_bh);
    }
}

static void vuiso_qemu_guest_kick(void *opaque)
{
    VuisoQemuVq *q = opaque;
    uint64_t v;

    /* The host notifier is an eventfd: reading it clears it. */
    if (read(q->guest_kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
        return;
    }
    vuiso_qemu_run_kick(q);
}

static void vuiso_qemu_backend_call(void *opaque)
{
    VuisoQemuVq *q = opaque;

    event_notifier_test_and_clear(&q->shadow_call);
    vuiso_qemu_run_call(q);
}

static void vuiso_qemu_kick_bh(void *opaque)
{
    vuiso_qemu_run_kick(opaque);
}

static void vuiso_qemu_call_bh(void *opaque)
{
    vuiso_qemu_run_call(opaque);
}

/* --- control path ------------------------------------------------------ */

static VuisoQemuVq *vuiso_qemu_vq(VuisoQemuDev *iso, unsigned idx)
{
    VuisoQemuVq *q;

    if (idx >= VIRTIO_QUEUE_MAX) {
        return NULL;
    }
    q = iso->vqs[idx];
    if (!q) {
        q = g_new0(VuisoQemuVq, 1);
        q->iso = iso;
        q->idx = idx;
        q->guest_kick_fd = -1;
        q->guest_call_fd = -1;
        q->kick_bh = qemu_bh_new(vuiso_qemu_kick_bh, q);
        q->call_bh = qemu_bh_new(vuiso_qemu_call_bh, q);
        iso->vqs[idx] = q;
    }
    if (!q->notifiers_ready) {
        if (event_notifier_init(&q->shadow_kick, 0) < 0) {
            return NULL;
        }
        if (event_notifier_init(&q->shadow_call, 0) < 0) {
            event_notifier_cleanup(&q->shadow_kick);
            return NULL;
        }
        q->notifiers_ready = true;
    }
    if (iso->dev && !q->vq && idx < iso->num_queues) {
        q->vq = vuiso_dev_get_vq(iso->dev, idx);
    }
    return q;
}

/*
 * Remove every handler and BH of @q: nothing runs on it afterwards.  The
 * guest's host notifier is closed by virtio when the device stops, so we
 * forget it; the next start sends SET_VRING_KICK again.
 */
static void vuiso_qemu_vq_quiesce(VuisoQemuVq *q)
{
    if (q->guest_kick_fd >= 0) {
        qemu_set_fd_handler(q->guest_kick_fd, NULL, NULL, NULL);
        q->guest_kick_fd = -1;
    }
    if (q->notifiers_ready) {
        qemu_set_fd_handler(event_notifier_get_fd(&q->shadow_call),
                            NULL, NULL, NULL);
    }
    qemu_bh_cancel(q->kick_bh);
    qemu_bh_cancel(q->call_bh);
}

VuisoQemuDev *vuiso_qemu_new(const char *name)
{
    VuisoQemuDev *iso = g_new0(VuisoQemuDev, 1);

    iso->name = g_strdup(name ? name : "vhost-user");
    return iso;
}

void vuiso_qemu_free(VuisoQemuDev *iso)
{
    unsigned i;

    if (!iso) {
        return;
    }
    for (i = 0; i < VIRTIO_QUEUE_MAX; i++) {
        VuisoQemuVq *q = iso->vqs[i];

        if (!q) {
            continue;
        }
        vuiso_qemu_vq_quiesce(q);
        qemu_bh_delete(q->kick_bh);
        qemu_bh_delete(q->call_bh);
        if (q->notifiers_ready) {
            event_notifier_cleanup(&q->shadow_kick);
            event_notifier_cleanup(&q->shadow_call);
        }
        g_free(q);
    }
    vuiso_dev_free(iso->dev);
    g_free(iso->name);
    g_free(iso);
}

void vuiso_qemu_connected(VuisoQemuDev *iso)
{
    unsigned i;

    iso->region_sent = false;
    for (i = 0; i < VIRTIO_QUEUE_MAX; i++) {
        VuisoQemuVq *q = iso->vqs[i];

        if (q && (q->started || q->needs_reset)) {
            vuiso_qemu_vq_quiesce(q);
            if (q->vq) {
                vuiso_vq_reset(q->vq);
            }
            q->started = false;
            q->needs_reset = false;
        }
    }
}

uint64_t vuiso_qemu_guest_features(VuisoQemuDev *iso, uint64_t backend)
{
    iso->backend_offer = backend;
    return vuiso_features_for_guest(backend);
}

uint64_t vuiso_qemu_backend_features(VuisoQemuDev *iso, uint64_t acked)
{
    iso->backend_acked = vuiso_features_for_backend(iso->backend_offer, acked);
    return iso->backend_acked;
}

static int vuiso_qemu_create(VuisoQemuDev *iso, unsigned num_queues)
{
    struct vuiso_dev_config cfg = {
        .version = VUISO_DEV_CONFIG_VERSION,
        .num_queues = num_queues,
        .queue_size_max = VIRTQUEUE_MAX_SIZE,
        .region_fd = -1,
        .ops = &vuiso_qemu_ops,
        .opaque = iso,
    };
    unsigned i;
    int r;

    if (iso->dev) {
        if (num_queues <= iso->num_queues) {
            return 0;
        }
        /* More queues than before: only possible while all are stopped. */
        for (i = 0; i < iso->num_queues; i++) {
            if (iso->vqs[i] && iso->vqs[i]->started) {
                return -EBUSY;
            }
        }
        for (i = 0; i < VIRTIO_QUEUE_MAX; i++) {
            if (iso->vqs[i]) {
                iso->vqs[i]->vq = NULL;
            }
        }
        vuiso_dev_free(iso->dev);
        iso->dev = NULL;
        iso->region_sent = false;
    }
    r = vuiso_dev_new(&cfg, &iso->dev);
    if (r < 0) {
        error_report("%s: vhost-user memory isolation: cannot create the "
                     "isolated region for %u queues: %s", iso->name,
                     num_queues, strerror(-r));
        iso->dev = NULL;
        return r;
    }
    iso->num_queues = num_queues;
    for (i = 0; i < num_queues; i++) {
        if (iso->vqs[i]) {
            iso->vqs[i]->vq = vuiso_dev_get_vq(iso->dev, i);
        }
    }
    return 0;
}

int vuiso_qemu_set_mem_table(VuisoQemuDev *iso, struct vhost_dev *dev,
                             const struct vhost_memory *mem,
                             VuisoQemuRegion *region)
{
    g_autofree struct vuiso_mem_region *regs = NULL;
    struct vuiso_region_info info;
    unsigned num_queues = MAX(dev->vq_index_end, dev->vq_index + dev->nvqs);
    uint32_t i;
    int r;

    r = vuiso_qemu_create(iso, num_queues);
    if (r < 0) {
        return r;
    }

    regs = g_new0(struct vuiso_mem_region, mem->nregions ? mem->nregions : 1);
    for (i = 0; i < mem->nregions; i++) {
        regs[i].gpa = mem->regions[i].guest_phys_addr;
        regs[i].size = mem->regions[i].memory_size;
        regs[i].hva = (void *)(uintptr_t)mem->regions[i].userspace_addr;
    }
    r = vuiso_dev_set_guest_memory(iso->dev, regs, mem->nregions);
    if (r < 0) {
        error_report("%s: vhost-user memory isolation: guest memory map "
                     "rejected: %s", iso->name, strerror(-r));
        return r;
    }

    if (iso->region_sent) {
        return 0;
    }
    r = vuiso_dev_get_region(iso->dev, 0, &info);
    if (r < 0) {
        return r;
    }
    region->fd = info.fd;
    region->guest_phys_addr = info.backend_addr;
    region->memory_size = info.size;
    region->userspace_addr = (uintptr_t)info.vmm_addr;
    region->mmap_offset = info.fd_offset;
    iso->region_sent = true;
    return 1;
}

void vuiso_qemu_set_vring_num(VuisoQemuDev *iso, unsigned idx, unsigned num)
{
    VuisoQemuVq *q = vuiso_qemu_vq(iso, idx);

    if (q) {
        q->num = num;
    }
}

void vuiso_qemu_set_vring_base(VuisoQemuDev *iso, unsigned idx,
                               uint32_t base)
{
    VuisoQemuVq *q = vuiso_qemu_vq(iso, idx);

    /* Decoded by vuiso_qemu_set_vring_addr(), which knows the layout. */
    if (q) {
        q->guest_base = base;
    }
}

int vuiso_qemu_set_vring_addr(VuisoQemuDev *iso, struct vhost_dev *dev,
                              struct vhost_vring_addr *addr,
                              struct vhost_vring_state *base)
{
    VuisoQemuVq *q = vuiso_qemu_vq(iso, addr->index);
    struct vhost_virtqueue *hvq;
    struct vuiso_vq_config cfg = { .version = VUISO_VQ_CONFIG_VERSION };
    struct vuiso_vq_shadow shadow = { 0 };
    uint32_t backend_layout;
    int r;

    if (!q || !q->vq) {
        error_report("%s: vhost-user memory isolation: queue %u has no "
                     "shadow (no memory table yet?)", iso->name, addr->index);
        return -EINVAL;
    }
    if (addr->index < dev->vq_index ||
        addr->index >= dev->vq_index + dev->nvqs) {
        return -EINVAL;
    }
    hvq = &dev->vqs[addr->index - dev->vq_index];

    if (q->started) {
        /*
         * vhost_dev_set_log() re-sends addresses; migration is blocked,
         * so there is nothing to change.
         */
        r = 0;
        goto send;
    }
    if (q->needs_reset) {
        vuiso_vq_reset(q->vq);
        q->needs_reset = false;
    }

    /*
     * vhost mapped the guest's rings as virtio laid them out: packed, the
     * descriptor ring and the driver and device event suppression areas.
     */
    cfg.guest_features = dev->vdev ? dev->vdev->guest_features
                                   : dev->acked_features;
    cfg.layout = virtio_has_feature(cfg.guest_features, VIRTIO_F_RING_PACKED)
                 ? VUISO_LAYOUT_PACKED : VUISO_LAYOUT_SPLIT;
    cfg.size = q->num;
    cfg.desc_gpa = hvq->desc_phys;
    cfg.avail_gpa = hvq->avail_phys;
    cfg.used_gpa = hvq->used_phys;
    /* The shadow ring is packed iff the back-end was sent RING_PACKED. */
    cfg.backend_features = iso->backend_acked;
    backend_layout = virtio_has_feature(cfg.backend_features,
                                        VIRTIO_F_RING_PACKED)
                     ? VUISO_LAYOUT_PACKED : VUISO_LAYOUT_SPLIT;
    vuiso_vq_config_set_base(&cfg, q->guest_base);
    if (cfg.layout == VUISO_LAYOUT_SPLIT && hvq->used) {
        /*
         * The used index the guest sees now (vhost mapped the used ring);
         * a packed base carries the used index itself.
         */
        cfg.used_idx = lduw_le_p((uint8_t *)hvq->used + 2);
    }

    r = vuiso_vq_start(q->vq, &cfg, &shadow);
    if (r < 0) {
        error_report("%s: vhost-user memory isolation: cannot start %s "
                     "queue %u: %s", iso->name,
                     vuiso_qemu_layout_name(cfg.layout), addr->index,
                     strerror(-r));
        return r;
    }
    if (shadow.size != q->num || shadow.layout != backend_layout) {
        /*
         * The back-end was already sent the guest's size (SET_VRING_NUM)
         * and its ring layout (SET_FEATURES).
         */
        error_report("%s: vhost-user memory isolation: queue %u: shadow "
                     "ring is %s of size %u, the back-end expects %s of "
                     "size %u", iso->name, addr->index,
                     vuiso_qemu_layout_name(shadow.layout), shadow.size,
                     vuiso_qemu_layout_name(backend_layout), q->num);
        vuiso_vq_reset(q->vq);
        return -EPROTO;
    }
    trace_vuiso_qemu_vq_start(iso->name, addr->index, cfg.size,
                              vuiso_qemu_layout_name(cfg.layout),
                              vuiso_qemu_layout_name(shadow.layout),
                              q->guest_base, shadow.vring_base);
    /* The shadow ring starts fresh; vhost-user.c sends this first. */
    base->index = addr->index;
    base->num = shadow.vring_base;
    r = 1;
    q->guest_layout = cfg.layout;
    q->shadow_desc = shadow.desc_addr;
    q->shadow_avail = shadow.avail_addr;
    q->shadow_used = shadow.used_addr;
    q->started = true;
    q->drained = false;
    q->broken = false;

    qemu_set_fd_handler(event_notifier_get_fd(&q->shadow_call),
                        vuiso_qemu_backend_call, NULL, q);
    /*
     * vhost_virtqueue_start() sends SET_VRING_KICK next, which installs the
     * guest's kick handler; a kick fd set before (any order) is current,
     * since a stop forgets it.
     */
    if (q->guest_kick_fd >= 0) {
        qemu_set_fd_handler(q->guest_kick_fd, vuiso_qemu_guest_kick, NULL, q);
        qemu_bh_schedule(q->kick_bh);
    }

send:
    addr->desc_user_addr = q->shadow_desc;
    addr->avail_user_addr = q->shadow_avail;
    addr->used_user_addr = q->shadow_used;
    addr->log_guest_addr = 0;
    addr->flags = 0;
    return r;
}

int vuiso_qemu_set_vring_kick(VuisoQemuDev *iso, unsigned idx, int fd)
{
    VuisoQemuVq *q = vuiso_qemu_vq(iso, idx);

    if (!q) {
        return -ENOMEM;
    }
    if (q->guest_kick_fd >= 0 && q->guest_kick_fd != fd) {
        qemu_set_fd_handler(q->guest_kick_fd, NULL, NULL, NULL);
    }
    q->guest_kick_fd = fd;
    if (fd >= 0 && q->started) {
        qemu_set_fd_handler(fd, vuiso_qemu_guest_kick, NULL, q);
        /* A kick may have arrived before the handler: look once. */
        qemu_bh_schedule(q->kick_bh);
    }
    return event_notifier_get_fd(&q->shadow_kick);
}

int vuiso_qemu_set_vring_call(VuisoQemuDev *iso, unsigned idx, int fd)
{
    VuisoQemuVq *q = vuiso_qemu_vq(iso, idx);

    if (!q) {
        return -ENOMEM;
    }
    q->guest_call_fd = fd;
    return event_notifier_get_fd(&q->shadow_call);
}

void vuiso_qemu_drain(VuisoQemuDev *iso, struct vhost_dev *dev)
{
    int i;

    for (i = 0; i < dev->nvqs; i++) {
        VuisoQemuVq *q = iso->vqs[dev->vq_index + i];

        if (!q || !q->started) {
            continue;
        }
        /* No new guest requests from here on. */
        if (q->guest_kick_fd >= 0) {
            qemu_set_fd_handler(q->guest_kick_fd, NULL, NULL, NULL);
            q->guest_kick_fd = -1;
        }
        qemu_bh_cancel(q->kick_bh);
        /* Complete what the back-end finishes; it is still running. */
        q->stop_ret = vuiso_vq_stop(q->vq, VUISO_QEMU_STOP_MS, &q->state);
        trace_vuiso_qemu_vq_stop(iso->name, dev->vq_index + i, q->stop_ret,
                                 q->state.vring_base, q->state.inflight);
        vuiso_qemu_vq_quiesce(q);
        q->started = false;
        q->drained = true;
        if (q->stop_ret < 0) {
            q->needs_reset = true;
            warn_report("%s: vhost-user memory isolation: queue %u stopped "
                        "with %u request(s) in flight: %s", iso->name,
                        dev->vq_index + i, q->state.inflight,
                        strerror(-q->stop_ret));
        }
    }
}

int vuiso_qemu_get_vring_base(VuisoQemuDev *iso, struct vhost_dev *dev,
                              unsigned idx, unsigned *num)
{
    VuisoQemuVq *q = idx < VIRTIO_QUEUE_MAX ? iso->vqs[idx] : NULL;

    if (!q || !q->drained) {
        return -EINVAL;
    }
    q->drained = false;
    if (q->stop_ret < 0) {
        /* Requests still in flight in the back-end are dropped. */
        vuiso_vq_reset(q->vq);
        q->needs_reset = false;
        switch ((enum vuiso_layout)q->guest_layout) {
        case VUISO_LAYOUT_SPLIT:
            /* vhost.c falls back to the used index of the guest's ring. */
            return q->stop_ret;
        case VUISO_LAYOUT_PACKED:
            /*
             * vhost.c's fallback does nothing for a packed ring (there is
             * no used index in guest memory) and the next start would
             * resume at the previous start's base.  Do what it does for
             * split: resume at the used index, which makes the dropped
             * requests available again.
             */
            *num = (uint32_t)q->state.used_idx << 16 | q->state.used_idx;
            return 0;
        }
        return q->stop_ret;
    }
    /* Split: the avail index; packed: avail | used << 16, with wraps. */
    *num = q->state.vring_base;
    return 0;
}
