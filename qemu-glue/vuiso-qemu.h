/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user memory isolation through libvuiso: the interface between
 * hw/virtio/vhost-user.c and the adapter hw/virtio/vuiso-qemu.c.
 *
 * vhost-user.c keeps all message encoding; the adapter keeps all libvuiso
 * calls.  Every function runs in the main loop with the BQL held, like the
 * VhostOps that call it.  Queue indexes are vhost-user queue indexes
 * (vhost_dev.vq_index + i).
 */
#ifndef HW_VIRTIO_VUISO_QEMU_H
#define HW_VIRTIO_VUISO_QEMU_H

#include "hw/virtio/vhost.h"

typedef struct VuisoQemuDev VuisoQemuDev;

/* The isolated region as VHOST_USER_SET_MEM_TABLE must describe it. */
typedef struct VuisoQemuRegion {
    int fd;
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
} VuisoQemuRegion;

/* Whether this QEMU was built with libvuiso. */
bool vuiso_qemu_available(void);

/* Adapter state of one vhost-user connection (one VhostUserState). */
VuisoQemuDev *vuiso_qemu_new(const char *name);
void vuiso_qemu_free(VuisoQemuDev *iso);

/*
 * The connection was (re)established: the region must be sent again and no
 * queue is running in the back-end.
 */
void vuiso_qemu_connected(VuisoQemuDev *iso);

/*
 * Feature bits: what to offer the guest given the back-end's offer (which
 * is remembered), and what to send in SET_FEATURES given the guest's.
 */
uint64_t vuiso_qemu_guest_features(VuisoQemuDev *iso, uint64_t backend);
uint64_t vuiso_qemu_backend_features(VuisoQemuDev *iso, uint64_t acked);

/*
 * Feed the guest memory map.  Returns 1 and fills @region when the
 * isolated region must be sent to the back-end now (first time on this
 * connection), 0 when nothing is to be sent, or -errno.
 */
int vuiso_qemu_set_mem_table(VuisoQemuDev *iso, struct vhost_dev *dev,
                             const struct vhost_memory *mem,
                             VuisoQemuRegion *region);

void vuiso_qemu_set_vring_num(VuisoQemuDev *iso, unsigned idx, unsigned num);
/*
 * Record the guest's base as vhost.c encodes it (split: the avail index;
 * packed: avail | used << 16, each with its wrap counter in bit 15).
 * Nothing is sent yet: the shadow ring's base is known once the queue
 * starts, in vuiso_qemu_set_vring_addr().
 */
void vuiso_qemu_set_vring_base(VuisoQemuDev *iso, unsigned idx,
                               uint32_t base);
/*
 * Starts shadowing queue addr->index and rewrites @addr for the back-end.
 * Returns 1 when the queue started: the back-end must get SET_VRING_BASE
 * @base (the fresh shadow ring's: 0 split, 0x80008000 packed) before the
 * addresses; 0 when the running queue's addresses are only re-sent; or
 * -errno.
 */
int vuiso_qemu_set_vring_addr(VuisoQemuDev *iso, struct vhost_dev *dev,
                              struct vhost_vring_addr *addr,
                              struct vhost_vring_state *base);
/*
 * Take over the guest's kick fd / the fd vhost wants signalled; return the
 * shadow fd to pass to the back-end instead, or -errno.
 */
int vuiso_qemu_set_vring_kick(VuisoQemuDev *iso, unsigned idx, int fd);
int vuiso_qemu_set_vring_call(VuisoQemuDev *iso, unsigned idx, int fd);

/*
 * Stop taking guest requests on @dev's queues and drain the back-end;
 * idempotent, called at the first stop-side message.
 */
void vuiso_qemu_drain(VuisoQemuDev *iso, struct vhost_dev *dev);
/*
 * After the back-end answered GET_VRING_BASE: the guest's base for queue
 * @idx in *@num, encoded like vuiso_qemu_set_vring_base()'s, or -errno if
 * requests were lost.
 */
int vuiso_qemu_get_vring_base(VuisoQemuDev *iso, struct vhost_dev *dev,
                              unsigned idx, unsigned *num);

#endif
