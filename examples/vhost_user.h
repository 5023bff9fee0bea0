/* SPDX-License-Identifier: MIT */
/*
 * A minimal vhost-user front-end (the VMM side of the protocol), enough to
 * drive real block and file-system back-ends.  Every reply is validated;
 * every failure leaves a message in vu->err.
 *
 * Thread rules: all messages are sent from one thread (the VMM's control
 * thread).  The queue threads never talk on the socket; they only poll it to
 * notice that the back-end went away.
 */
#ifndef VMM_VHOST_USER_H
#define VMM_VHOST_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Front-end requests (vhost-user specification, "Front-end message types"). */
enum vmm_vu_request {
	VMM_VU_GET_FEATURES = 1,
	VMM_VU_SET_FEATURES = 2,
	VMM_VU_SET_OWNER = 3,
	VMM_VU_RESET_OWNER = 4,
	VMM_VU_SET_MEM_TABLE = 5,
	VMM_VU_SET_VRING_NUM = 8,
	VMM_VU_SET_VRING_ADDR = 9,
	VMM_VU_SET_VRING_BASE = 10,
	VMM_VU_GET_VRING_BASE = 11,
	VMM_VU_SET_VRING_KICK = 12,
	VMM_VU_SET_VRING_CALL = 13,
	VMM_VU_SET_VRING_ERR = 14,
	VMM_VU_GET_PROTOCOL_FEATURES = 15,
	VMM_VU_SET_PROTOCOL_FEATURES = 16,
	VMM_VU_GET_QUEUE_NUM = 17,
	VMM_VU_SET_VRING_ENABLE = 18,
	VMM_VU_GET_CONFIG = 24,
	VMM_VU_GET_MAX_MEM_SLOTS = 36,
	VMM_VU_ADD_MEM_REG = 37,
	VMM_VU_REM_MEM_REG = 38,
};

/* Protocol feature bits this front-end understands. */
#define VMM_VU_PROTO_F_MQ 0
#define VMM_VU_PROTO_F_REPLY_ACK 3
#define VMM_VU_PROTO_F_CONFIG 9
#define VMM_VU_PROTO_F_CONFIGURE_MEM_SLOTS 15

/* The vhost-user bit in the feature word. */
#define VMM_VU_F_PROTOCOL_FEATURES 30

/* Most regions a SET_MEM_TABLE message carries. */
#define VMM_VU_MAX_MEM_REGIONS 8

/* One memory region as the back-end must map it. */
struct vmm_vu_mem_region {
	uint64_t gpa;   /* guest_phys_addr, the back-end's address space */
	uint64_t size;  /* memory_size */
	uint64_t uaddr; /* userspace_addr, the front-end's address */
	uint64_t mmap_offset; /* offset of the region in @fd */
	int fd;               /* the file to map */
};

/* What the isolation proof needs to know about each fd sent. */
struct vmm_vu_sent_fd {
	uint32_t request; /* message that carried it */
	dev_t dev;        /* fstat() of the fd at send time */
	ino_t ino;
	char kind[64]; /* readlink of /proc/self/fd/N: memfd name, eventfd */
};

#define VMM_VU_MAX_SENT_FDS 256

/* Every address any message sent carried, for the proof that no VMM
 * address reaches the back-end (proof.c). */
struct vmm_vu_sent_addr {
	uint32_t request; /* message that carried it */
	uint64_t value;
};

#define VMM_VU_MAX_SENT_ADDRS 4096

struct vmm_vu {
	int sock;                   /* connected unix socket, -1 when closed */
	pid_t peer_pid;             /* from SO_PEERCRED */
	uint64_t features;          /* what the back-end offered */
	uint64_t protocol_features; /* negotiated protocol features */
	unsigned reply_timeout_ms;  /* how long to wait for any reply */
	unsigned n_sent;            /* entries used in @sent */
	struct vmm_vu_sent_fd sent[VMM_VU_MAX_SENT_FDS];
	unsigned n_addrs;    /* entries used in @addrs */
	unsigned addrs_lost; /* addresses sent after @addrs filled up */
	struct vmm_vu_sent_addr addrs[VMM_VU_MAX_SENT_ADDRS];
	char err[512]; /* first error, for the user */
};

const char *vmm_vu_request_name(uint32_t request);

/* All return 0 or a negative errno, and fill vu->err on failure. */
int vmm_vu_connect(struct vmm_vu *vu, const char *path);
/* Connect again after the back-end went away: a fresh connection, but the
 * record of every fd and word sent (for the isolation proof) is kept. */
int vmm_vu_reconnect(struct vmm_vu *vu, const char *path);
void vmm_vu_close(struct vmm_vu *vu);
/* Note why something failed in vu->err (unless an earlier error is there);
 * returns @err. */
__attribute__((format(printf, 3, 4))) int
vmm_vu_fail(struct vmm_vu *vu, int err, const char *fmt, ...);

int vmm_vu_get_features(struct vmm_vu *vu, uint64_t *features);
int vmm_vu_set_features(struct vmm_vu *vu, uint64_t features);
int vmm_vu_get_protocol_features(struct vmm_vu *vu, uint64_t *features);
int vmm_vu_set_protocol_features(struct vmm_vu *vu, uint64_t features);
int vmm_vu_set_owner(struct vmm_vu *vu);
int vmm_vu_get_queue_num(struct vmm_vu *vu, uint64_t *num);
int vmm_vu_get_max_mem_slots(struct vmm_vu *vu, uint64_t *num);
int vmm_vu_set_mem_table(struct vmm_vu *vu,
			 const struct vmm_vu_mem_region *regions, unsigned n);
int vmm_vu_add_mem_reg(struct vmm_vu *vu, const struct vmm_vu_mem_region *r);
int vmm_vu_set_vring_num(struct vmm_vu *vu, unsigned idx, unsigned num);
int vmm_vu_set_vring_addr(struct vmm_vu *vu, unsigned idx, uint64_t desc,
			  uint64_t used, uint64_t avail);
int vmm_vu_set_vring_base(struct vmm_vu *vu, unsigned idx, unsigned base);
/* @packed: the ring is packed, so the answer carries two 16-bit halves
 * (avail, used) instead of one 16-bit index. */
int vmm_vu_get_vring_base(struct vmm_vu *vu, unsigned idx, bool packed,
			  uint32_t *base);
int vmm_vu_set_vring_kick(struct vmm_vu *vu, unsigned idx, int fd);
int vmm_vu_set_vring_call(struct vmm_vu *vu, unsigned idx, int fd);
int vmm_vu_set_vring_enable(struct vmm_vu *vu, unsigned idx, bool on);
int vmm_vu_get_config(struct vmm_vu *vu, uint32_t offset, void *buf,
		      uint32_t size);

static inline bool vmm_vu_has_proto(const struct vmm_vu *vu, unsigned bit)
{
	return (vu->protocol_features >> bit) & 1;
}

#endif /* VMM_VHOST_USER_H */
