// SPDX-License-Identifier: MIT
/*
 * Device control path: configuration checks, the sealed isolated region,
 * adopting a caller's memfd, feature negotiation, queue start checks.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "vuiso/vuiso.h"

#define BIT(n) (1ULL << (n))

struct seen {
	unsigned adds, dels;
	int fd;
	uint64_t size, base;
};

static void region_add(void *o, unsigned index, int fd, uint64_t size,
		       uint64_t backend_addr, void *vmm_addr)
{
	struct seen *s = o;

	(void)vmm_addr;
	assert_int_equal(index, 0);
	s->adds++;
	s->fd = fd;
	s->size = size;
	s->base = backend_addr;
}

static void region_del(void *o, unsigned index)
{
	(void)index;
	((struct seen *)o)->dels++;
}

static const struct vuiso_ops ops = {
	.version = VUISO_OPS_VERSION,
	.region_add = region_add,
	.region_del = region_del,
};

static struct vuiso_dev_config config(struct seen *s)
{
	struct vuiso_dev_config c = {
		.version = VUISO_DEV_CONFIG_VERSION,
		.num_queues = 2,
		.queue_size_max = 256,
		.pool_size = 1 << 20,
		.region_fd = -1,
		.ops = &ops,
		.opaque = s,
	};
	return c;
}

static void test_bad_configs_are_refused(void **state)
{
	struct seen s = {0};
	struct vuiso_dev_config c;
	struct vuiso_dev *d;
	const struct vuiso_ops old_ops = {.version = 99};

	(void)state;
	c = config(&s), c.version = 2;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.num_queues = 0;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.num_queues = VUISO_MAX_QUEUES + 1;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.queue_size_max = 100;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.queue_size_max = 65536;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.pool_size = 3 << 20;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.backend_base = 123;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.backend_base = UINT64_MAX & ~4095ULL;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.ops = NULL;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.ops = &old_ops;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	c = config(&s), c.flags = 1u << 1; /* not a VUISO_DEV_F_ bit */
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	assert_int_equal(s.adds, 0);
}

/* The back-end gets the region fd: it must not be able to shrink it
 * (which would make the VMM fault), and it holds nothing but the region. */
static void test_region_is_a_sealed_memfd(void **state)
{
	struct seen s = {0};
	struct vuiso_dev_config c = config(&s);
	struct vuiso_region_info ri;
	struct vuiso_dev *d;
	char link[64], name[256];
	uint64_t size;
	ssize_t n;
	int seals;

	(void)state;
	assert_int_equal(vuiso_region_size(&c, &size), 0);
	assert_int_equal(vuiso_dev_new(&c, &d), 0);
	assert_int_equal(s.adds, 1);
	assert_int_equal(vuiso_dev_num_regions(d), 1);
	assert_int_equal(vuiso_dev_get_region(d, 0, &ri), 0);
	assert_int_equal(vuiso_dev_get_region(d, 1, &ri), -ENOENT);
	assert_int_equal(ri.size, size);
	assert_int_equal(s.size, size);
	assert_int_equal(s.fd, ri.fd);
	assert_int_equal(ri.backend_addr, 4ULL << 30);
	assert_int_equal(ri.fd_offset, 0);
	seals = fcntl(ri.fd, F_GET_SEALS);
	assert_true(seals & F_SEAL_SHRINK);
	assert_true(seals & F_SEAL_GROW);
	assert_true(seals & F_SEAL_SEAL);
	assert_int_equal(ftruncate(ri.fd, 4096), -1);
	assert_int_equal(errno, EPERM);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", ri.fd);
	n = readlink(link, name, sizeof(name) - 1);
	assert_true(n > 0);
	name[n] = 0;
	assert_non_null(strstr(name, "memfd:vuiso-isolated"));
	vuiso_dev_free(d);
	assert_int_equal(s.dels, 1);
	vuiso_dev_free(NULL);
}

static void
test_adopted_fd_must_be_shrink_and_seal_sealed_and_big_enough(void **state)
{
	struct seen s = {0};
	struct vuiso_dev_config c = config(&s);
	struct vuiso_region_info ri;
	struct vuiso_dev *d;
	uint64_t size;
	int fd;

	(void)state;
	assert_int_equal(vuiso_region_size(&c, &size), 0);
	/* Unsealed: a back-end could truncate it under us. */
	fd = memfd_create("caller", MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	c.region_fd = fd;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	/* Sealed but too small. */
	close(fd);
	fd = memfd_create("caller", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(fd, (off_t)size - 4096), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	c.region_fd = fd;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	close(fd);
	/* Shrink-sealed, but the seals are not sealed: a back-end could
	 * seal it against future writable maps and lock out its successor. */
	fd = memfd_create("caller", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW),
			 0);
	c.region_fd = fd;
	assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
	close(fd);
	/* Not a memfd at all: it cannot carry seals. */
	{
		char path[] = "/tmp/vuiso-test-region-XXXXXX";

		fd = mkstemp(path);
		assert_true(fd >= 0);
		unlink(path);
		assert_int_equal(ftruncate(fd, (off_t)size), 0);
		c.region_fd = fd;
		assert_int_equal(vuiso_dev_new(&c, &d), -EINVAL);
		close(fd);
	}
	/* Right. */
	fd = memfd_create("caller", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL),
			 0);
	c.region_fd = fd;
	assert_int_equal(vuiso_dev_new(&c, &d), 0);
	assert_int_equal(vuiso_dev_get_region(d, 0, &ri), 0);
	assert_int_not_equal(ri.fd, fd); /* the library keeps its own dup */
	close(fd);
	vuiso_dev_free(d);
}

static void test_features_split_per_side(void **state)
{
	const uint64_t blk_seg_max = BIT(2), blk_flush = BIT(9);
	const uint64_t net_hash = BIT(57);
	uint64_t be = blk_seg_max | blk_flush | net_hash |
		      BIT(VUISO_F_VERSION_1) | BIT(VUISO_F_EVENT_IDX) |
		      BIT(VUISO_F_RING_PACKED) | BIT(VUISO_F_IN_ORDER) |
		      BIT(VUISO_F_ACCESS_PLATFORM) |
		      BIT(VUISO_F_NOTIFICATION_DATA) | BIT(VUISO_F_RING_RESET) |
		      BIT(VUISO_F_VHOST_USER_PROTOCOL_FEATURES) |
		      BIT(VUISO_F_VHOST_LOG_ALL);
	uint64_t g = vuiso_features_for_guest(be), b;

	(void)state;
	/* Device bits pass; the shadow offers what it implements itself. */
	assert_true(g & blk_seg_max);
	assert_true(g & net_hash);
	assert_true(g & BIT(VUISO_F_VERSION_1));
	assert_true(g & BIT(VUISO_F_INDIRECT_DESC));
	assert_true(g & BIT(VUISO_F_EVENT_IDX));
	/* Packed toward the guest whatever the back-end has (translation). */
	assert_true(g & BIT(VUISO_F_RING_PACKED));
	assert_true(vuiso_features_for_guest(BIT(VUISO_F_VERSION_1)) &
		    BIT(VUISO_F_RING_PACKED));
	/* What it cannot honour, and vhost-only bits, never reach the guest. */
	assert_false(g & BIT(VUISO_F_IN_ORDER));
	assert_false(g & BIT(VUISO_F_ACCESS_PLATFORM));
	assert_false(g & BIT(VUISO_F_NOTIFICATION_DATA));
	assert_false(g & BIT(VUISO_F_RING_RESET));
	assert_false(g & BIT(VUISO_F_VHOST_USER_PROTOCOL_FEATURES));
	assert_false(g & BIT(VUISO_F_VHOST_LOG_ALL));
	/* Guest took seg_max only (and INDIRECT, EVENT_IDX). */
	b = vuiso_features_for_backend(be, blk_seg_max |
						   BIT(VUISO_F_VERSION_1) |
						   BIT(VUISO_F_INDIRECT_DESC) |
						   BIT(VUISO_F_EVENT_IDX));
	assert_true(b & blk_seg_max);
	assert_false(b & blk_flush);
	assert_true(b & BIT(VUISO_F_EVENT_IDX));
	assert_true(b & BIT(VUISO_F_VERSION_1));
	assert_true(b & BIT(VUISO_F_VHOST_USER_PROTOCOL_FEATURES));
	assert_false(b & BIT(VUISO_F_INDIRECT_DESC));
	assert_false(b & BIT(VUISO_F_VHOST_LOG_ALL));
	/* The shadow is packed whenever the back-end offers it: for the split
	 * guest above and for a packed one; split when it does not. */
	assert_true(b & BIT(VUISO_F_RING_PACKED));
	b = vuiso_features_for_backend(be, BIT(VUISO_F_VERSION_1) |
						   BIT(VUISO_F_RING_PACKED));
	assert_true(b & BIT(VUISO_F_RING_PACKED));
	b = vuiso_features_for_backend(be & ~BIT(VUISO_F_RING_PACKED),
				       BIT(VUISO_F_VERSION_1) |
					       BIT(VUISO_F_RING_PACKED));
	assert_false(b & BIT(VUISO_F_RING_PACKED));
	/* EVENT_IDX toward the guest even if the back-end lacks it. */
	g = vuiso_features_for_guest(BIT(VUISO_F_VERSION_1));
	assert_true(g & BIT(VUISO_F_EVENT_IDX));
	b = vuiso_features_for_backend(BIT(VUISO_F_VERSION_1), g);
	assert_false(b & BIT(VUISO_F_EVENT_IDX));
}

static void test_queue_start_checks_config(void **state)
{
	static uint8_t ram[1 << 16] __attribute__((aligned(4096)));
	struct vuiso_mem_region mr = {0x10000, sizeof(ram), ram};
	struct seen s = {0};
	struct vuiso_dev_config c = config(&s);
	struct vuiso_vq_config q = {
		.version = VUISO_VQ_CONFIG_VERSION,
		.layout = VUISO_LAYOUT_SPLIT,
		.size = 256,
		.desc_gpa = 0x10000,
		.avail_gpa = 0x11000,
		.used_gpa = 0x12000,
		.guest_features = BIT(VUISO_F_VERSION_1),
		.backend_features = BIT(VUISO_F_VERSION_1),
	};
	struct vuiso_vq_config bad;
	struct vuiso_region_info ri;
	struct vuiso_vq_shadow sh;
	struct vuiso_dev *d;
	struct vuiso_vq *vq;
	uint64_t lo, hi;

	(void)state;
	assert_int_equal(vuiso_dev_new(&c, &d), 0);
	vq = vuiso_dev_get_vq(d, 0);
	assert_non_null(vq);
	assert_null(vuiso_dev_get_vq(d, 2));
	/* No guest memory yet: the rings are not mapped. */
	assert_int_equal(vuiso_vq_start(vq, &q, &sh), -EFAULT);
	assert_int_equal(vuiso_dev_set_guest_memory(d, &mr, 1), 0);
	bad = q, bad.size = 512;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	bad = q, bad.size = 100;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	bad = q, bad.layout = 2;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -ENOTSUP);
	/* The layout must be the one the guest negotiated. */
	bad = q, bad.layout = VUISO_LAYOUT_PACKED;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	bad = q, bad.guest_features |= BIT(VUISO_F_RING_PACKED);
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	bad = q, bad.guest_features |= BIT(VUISO_F_IN_ORDER);
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -ENOTSUP);
	/* Packed: positions inside the ring, event structures 4-aligned. */
	bad = q, bad.layout = VUISO_LAYOUT_PACKED;
	bad.guest_features |= BIT(VUISO_F_RING_PACKED);
	bad.avail_idx = 256 | VUISO_PACKED_WRAP;
	bad.used_idx = VUISO_PACKED_WRAP;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	bad.avail_idx = VUISO_PACKED_WRAP, bad.avail_gpa += 2;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	/* A used position ahead of the avail position is not a ring state. */
	bad.avail_gpa -= 2, bad.used_idx = 3 | VUISO_PACKED_WRAP;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	bad = q, bad.desc_gpa += 8;
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EINVAL);
	bad = q, bad.used_gpa = 0x1fc00; /* runs off guest RAM */
	assert_int_equal(vuiso_vq_start(vq, &bad, &sh), -EFAULT);
	assert_int_equal(vuiso_vq_start(vq, &q, &sh), 0);
	assert_int_equal(vuiso_vq_start(vq, &q, &sh), -EBUSY);
	/* Shadow rings lie inside the region, in both address spaces. */
	assert_int_equal(vuiso_dev_get_region(d, 0, &ri), 0);
	/* The user address to send is a label, not the VMM's mapping. */
	assert_int_equal(ri.user_addr, ri.backend_addr);
	assert_true(ri.user_addr != (uint64_t)(uintptr_t)ri.vmm_addr);
	lo = (uint64_t)(uintptr_t)ri.vmm_addr;
	hi = lo + ri.size;
	assert_int_equal(sh.size, 256);
	assert_int_equal(sh.layout, VUISO_LAYOUT_SPLIT);
	assert_int_equal(sh.vring_base, 0);
	assert_true(sh.desc_addr >= lo && sh.desc_addr + 16 * 256 <= hi);
	assert_true(sh.avail_addr >= lo && sh.avail_addr + 6 + 2 * 256 <= hi);
	assert_true(sh.used_addr >= lo && sh.used_addr + 6 + 8 * 256 <= hi);
	assert_int_equal(sh.desc_backend - ri.backend_addr, sh.desc_addr - lo);
	assert_int_equal(sh.used_backend - ri.backend_addr, sh.used_addr - lo);
	assert_int_equal(sh.desc_addr % 16, 0);
	assert_int_equal(sh.used_addr % 4, 0);
	vuiso_dev_free(d);
}

static void test_packed_start_and_vring_base_encoding(void **state)
{
	static uint8_t ram[1 << 16] __attribute__((aligned(4096)));
	struct vuiso_mem_region mr = {0x10000, sizeof(ram), ram};
	struct seen s = {0};
	struct vuiso_dev_config c = config(&s);
	struct vuiso_vq_config q = {
		.version = VUISO_VQ_CONFIG_VERSION,
		.layout = VUISO_LAYOUT_PACKED,
		.size = 256,
		.desc_gpa = 0x10000,
		.avail_gpa = 0x11000,
		.used_gpa = 0x11004,
		.guest_features = BIT(VUISO_F_VERSION_1) |
				  BIT(VUISO_F_RING_PACKED),
		.backend_features = BIT(VUISO_F_VERSION_1) |
				    BIT(VUISO_F_RING_PACKED),
	};
	struct vuiso_region_info ri;
	struct vuiso_vq_state st;
	struct vuiso_vq_shadow sh;
	struct vuiso_dev *d;
	struct vuiso_vq *vq;
	uint64_t lo, hi;

	(void)state;
	/* vhost-user's SET_VRING_BASE halves: 0-14 avail position, 15 its
	 * wrap counter, 16-30 used position, 31 its wrap counter. */
	vuiso_vq_config_set_base(&q, 0x80058005u);
	assert_int_equal(q.avail_idx, 5 | VUISO_PACKED_WRAP);
	assert_int_equal(q.used_idx, 5 | VUISO_PACKED_WRAP);
	vuiso_vq_config_set_base(&q, 0x00070007u);
	assert_int_equal(q.avail_idx, 7);
	assert_int_equal(q.used_idx, 7);

	assert_int_equal(vuiso_dev_new(&c, &d), 0);
	assert_int_equal(vuiso_dev_set_guest_memory(d, &mr, 1), 0);
	vq = vuiso_dev_get_vq(d, 0);
	assert_int_equal(vuiso_vq_start(vq, &q, &sh), 0);
	/* A fresh packed shadow: position 0, both wrap counters set. */
	assert_int_equal(sh.layout, VUISO_LAYOUT_PACKED);
	assert_int_equal(sh.vring_base, 0x80008000u);
	assert_int_equal(vuiso_dev_get_region(d, 0, &ri), 0);
	lo = (uint64_t)(uintptr_t)ri.vmm_addr;
	hi = lo + ri.size;
	assert_true(sh.desc_addr >= lo && sh.desc_addr + 16 * 256 <= hi);
	assert_true(sh.avail_addr >= lo && sh.avail_addr + 4 <= hi);
	assert_true(sh.used_addr >= lo && sh.used_addr + 4 <= hi);
	assert_int_equal(sh.desc_addr % 16, 0);
	assert_int_equal(sh.avail_addr % 4, 0);
	assert_int_equal(sh.used_addr % 4, 0);
	/* Stopped with nothing in flight: the indices it started from, in
	 * the GET_VRING_BASE encoding. */
	assert_int_equal(vuiso_vq_stop(vq, 0, &st), 0);
	assert_int_equal(st.avail_idx, 7);
	assert_int_equal(st.used_idx, 7);
	assert_int_equal(st.vring_base, 0x00070007u);
	/* A split shadow for a packed guest when the back-end is split. */
	q.backend_features = BIT(VUISO_F_VERSION_1);
	assert_int_equal(vuiso_vq_start(vq, &q, &sh), 0);
	assert_int_equal(sh.layout, VUISO_LAYOUT_SPLIT);
	assert_int_equal(sh.vring_base, 0);
	vuiso_dev_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_configs_are_refused),
		cmocka_unit_test(test_region_is_a_sealed_memfd),
		cmocka_unit_test(
			test_adopted_fd_must_be_shrink_and_seal_sealed_and_big_enough),
		cmocka_unit_test(test_features_split_per_side),
		cmocka_unit_test(test_queue_start_checks_config),
		cmocka_unit_test(test_packed_start_and_vring_base_encoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
