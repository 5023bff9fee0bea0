/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user memory isolation, QEMU built without libvuiso: the property
 * exists and vhost_user_backend_init() refuses it; nothing else is reached.
 */

#include "qemu/osdep.h"
#include "hw/virtio/vuiso-qemu.h"

bool vuiso_qemu_available(void)
{
    return false;
}

VuisoQemuDev *vuiso_qemu_new(const char *name)
{
    return NULL;
}

void vuiso_qemu_free(VuisoQemuDev *iso)
{
}

void vuiso_qemu_connected(VuisoQemuDev *iso)
{
}

uint64_t vuiso_qemu_guest_features(VuisoQemuDev *iso, uint64_t backend)
{
    return backend;
}

uint64_t vuiso_qemu_backend_features(VuisoQemuDev *iso, uint64_t acked)
{
    return acked;
}

int vuiso_qemu_set_mem_table(VuisoQemuDev *iso, struct vhost_dev *dev,
                             const struct vhost_memory *mem,
                             VuisoQemuRegion *region)
{
    return -ENOTSUP;
}

void vuiso_qemu_set_vring_num(VuisoQemuDev *iso, unsigned idx, unsigned num)
{
}

void vuiso_qemu_set_vring_base(VuisoQemuDev *iso, unsigned idx,
                               uint32_t base)
{
}

int vuiso_qemu_set_vring_addr(VuisoQemuDev *iso, struct vhost_dev *dev,
                              struct vhost_vring_addr *addr,
                              struct vhost_vring_state *base)
{
    return -ENOTSUP;
}

int vuiso_qemu_set_vring_kick(VuisoQemuDev *iso, unsigned idx, int fd)
{
    return -ENOTSUP;
}

int vuiso_qemu_set_vring_call(VuisoQemuDev *iso, unsigned idx, int fd)
{
    return -ENOTSUP;
}

void vuiso_qemu_drain(VuisoQemuDev *iso, struct vhost_dev *dev)
{
}

int vuiso_qemu_get_vring_base(VuisoQemuDev *iso, struct vhost_dev *dev,
                              unsigned idx, unsigned *num)
{
    return -ENOTSUP;
}
