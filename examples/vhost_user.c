/* SPDX-License-Identifier: MIT */
/*
 * vhost-user front-end client.  Message layout and rules follow the
 * vhost-user specification (docs/interop/vhost-user.rst in QEMU).
 */
#include "vhost_user.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define VU_HDR_SIZE 12
#define VU_FLAG_VERSION 0x1
#define VU_FLAG_VERSION_MASK 0x3
#define VU_FLAG_REPLY 0x4
#define VU_FLAG_NEED_REPLY 0x8
#define VU_VRING_NOFD (1ULL << 8)
#define VU_MAX_FDS 8
#define VU_CONFIG_MAX 256

struct vu_region_wire {
	uint64_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
};

/* The wire format; the header is 12 bytes, so the union is unaligned. */
struct vu_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	union {
		uint64_t u64;
		struct {
			uint32_t index;
			uint32_t num;
		} state;
		struct {
			uint32_t index;
			uint32_t flags;
			uint64_t desc;
			uint64_t used;
			uint64_t avail;
			uint64_t log;
		} addr;
		struct {
			uint32_t nregions;
			uint32_t padding;
			struct vu_region_wire regions[VMM_VU_MAX_MEM_REGIONS];
		} mem;
		struct {
			uint64_t padding;
			struct vu_region_wire region;
		} memreg;
		struct {
			uint32_t offset;
			uint32_t size;
			uint32_t flags;
			uint8_t data[VU_CONFIG_MAX];
		} config;
	} payload;
} __attribute__((packed));

static const char *const vu_names[] = {
	[VMM_VU_GET_FEATURES] = "GET_FEATURES",
	[VMM_VU_SET_FEATURES] = "SET_FEATURES",
	[VMM_VU_SET_OWNER] = "SET_OWNER",
	[VMM_VU_RESET_OWNER] = "RESET_OWNER",
	[VMM_VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VMM_VU_SET_VRING_NUM] = "SET_VRING_NUM",
	[VMM_VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VMM_VU_SET_VRING_BASE] = "SET_VRING_BASE",
	[VMM_VU_GET_VRING_BASE] = "GET_VRING_BASE",
	[VMM_VU_SET_VRING_KICK] = "SET_VRING_KICK",
	[VMM_VU_SET_VRING_CALL] = "SET_VRING_CALL",
	[VMM_VU_SET_VRING_ERR] = "SET_VRING_ERR",
	[VMM_VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VMM_VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VMM_VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VMM_VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VMM_VU_GET_CONFIG] = "GET_CONFIG",
	[VMM_VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
	[VMM_VU_ADD_MEM_REG] = "ADD_MEM_REG",
	[VMM_VU_REM_MEM_REG] = "REM_MEM_REG",
};

const char *vmm_vu_request_name(uint32_t request)
{
	if (request < sizeof(vu_names) / sizeof(vu_names[0]) &&
	    vu_names[request])
		return vu_names[request];
	return "UNKNOWN";
}

int vmm_vu_fail(struct vmm_vu *vu, int err, const char *fmt, ...)
{
	va_list ap;

	if (!vu->err[0]) {
		va_start(ap, fmt);
		vsnprintf(vu->err, sizeof(vu->err), fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Open a connection on a closed @vu whose records are already set up. */
static int vu_open(struct vmm_vu *vu, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd, err;

	vu->sock = -1;
	vu->peer_pid = 0;
	vu->features = 0;
	vu->protocol_features = 0;
	vu->reply_timeout_ms = 10000;
	vu->err[0] = '\0';
	if (strlen(path) >= sizeof(sa.sun_path))
		return vmm_vu_fail(vu, -ENAMETOOLONG,
				   "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmm_vu_fail(vu, -errno, "socket(): %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		close(fd);
		return vmm_vu_fail(
			vu, err,
			"cannot connect to vhost-user back-end socket "
			"%s: %s",
			path, strerror(-err));
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		vu->peer_pid = cred.pid;
	vu->sock = fd;
	return 0;
}

int vmm_vu_connect(struct vmm_vu *vu, const char *path)
{
	memset(vu, 0, sizeof(*vu));
	return vu_open(vu, path);
}

int vmm_vu_reconnect(struct vmm_vu *vu, const char *path)
{
	/* Everything ever sent stays recorded: the isolation proof covers
	 * every back-end this front-end talked to, not only the last. */
	vmm_vu_close(vu);
	return vu_open(vu, path);
}

void vmm_vu_close(struct vmm_vu *vu)
{
	if (vu->sock >= 0)
		close(vu->sock);
	vu->sock = -1;
}

static void vu_record_fd(struct vmm_vu *vu, uint32_t request, int fd)
{
	struct vmm_vu_sent_fd *s;
	struct stat st;
	char link[64];
	ssize_t n;

	if (vu->n_sent >= VMM_VU_MAX_SENT_FDS)
		return;
	s = &vu->sent[vu->n_sent++];
	memset(s, 0, sizeof(*s));
	s->request = request;
	if (fstat(fd, &st) == 0) {
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, s->kind, sizeof(s->kind) - 1);
	s->kind[n > 0 ? n : 0] = '\0';
}

/*
 * Keep every address a message carries (the memory regions' guest-physical
 * and user addresses and mmap offsets, the ring addresses and the log
 * address of SET_VRING_ADDR), for the proof that no VMM address reaches the
 * back-end.  Other fields are sizes, indices and feature bits, not
 * addresses, and are left out.
 */
static void vu_record_addr(struct vmm_vu *vu, uint32_t request, uint64_t v)
{
	if (vu->n_addrs == VMM_VU_MAX_SENT_ADDRS) {
		vu->addrs_lost++;
		return;
	}
	vu->addrs[vu->n_addrs++] = (struct vmm_vu_sent_addr){request, v};
}

static void vu_record_msg_addrs(struct vmm_vu *vu, const struct vu_msg *msg)
{
	switch (msg->request) {
	case VMM_VU_SET_MEM_TABLE:
		for (uint32_t i = 0; i < msg->payload.mem.nregions; i++) {
			struct vu_region_wire w;

			memcpy(&w, &msg->payload.mem.regions[i], sizeof(w));
			vu_record_addr(vu, msg->request, w.gpa);
			vu_record_addr(vu, msg->request, w.uaddr);
			vu_record_addr(vu, msg->request, w.mmap_offset);
		}
		break;
	case VMM_VU_ADD_MEM_REG:
	case VMM_VU_REM_MEM_REG: {
		struct vu_region_wire w;

		memcpy(&w, &msg->payload.memreg.region, sizeof(w));
		vu_record_addr(vu, msg->request, w.gpa);
		vu_record_addr(vu, msg->request, w.uaddr);
		vu_record_addr(vu, msg->request, w.mmap_offset);
		break;
	}
	case VMM_VU_SET_VRING_ADDR:
		vu_record_addr(vu, msg->request, msg->payload.addr.desc);
		vu_record_addr(vu, msg->request, msg->payload.addr.used);
		vu_record_addr(vu, msg->request, msg->payload.addr.avail);
		vu_record_addr(vu, msg->request, msg->payload.addr.log);
		break;
	default:
		break;
	}
}

static int vu_send(struct vmm_vu *vu, struct vu_msg *msg, const int *fds,
		   unsigned nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
	struct iovec iov = {.iov_base = msg,
			    .iov_len = VU_HDR_SIZE + msg->size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	ssize_t n;

	if (vu->sock < 0)
		return vmm_vu_fail(vu, -ENOTCONN,
				   "not connected to the back-end");
	if (nfds) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
		for (unsigned i = 0; i < nfds; i++)
			vu_record_fd(vu, msg->request, fds[i]);
	}
	vu_record_msg_addrs(vu, msg);
	do {
		n = sendmsg(vu->sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return vmm_vu_fail(vu, -errno,
				   "sending %s to the back-end failed: %s "
				   "(back-end gone?)",
				   vmm_vu_request_name(msg->request),
				   strerror(errno));
	if ((size_t)n != iov.iov_len)
		return vmm_vu_fail(vu, -EIO, "short write of %s",
				   vmm_vu_request_name(msg->request));
	return 0;
}

/* Read exactly @len bytes, waiting at most reply_timeout_ms for each part. */
static int vu_read_full(struct vmm_vu *vu, void *buf, size_t len,
			uint32_t request)
{
	uint8_t *p = buf;
	char cbuf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];

	while (len) {
		struct pollfd pfd = {.fd = vu->sock, .events = POLLIN};
		struct iovec iov = {.iov_base = p, .iov_len = len};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = cbuf,
				    .msg_controllen = sizeof(cbuf)};
		struct cmsghdr *cm;
		ssize_t n;
		int r;

		r = poll(&pfd, 1, (int)vu->reply_timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return vmm_vu_fail(
				vu, -ETIMEDOUT,
				"back-end did not answer %s within %u ms",
				vmm_vu_request_name(request),
				vu->reply_timeout_ms);
		n = recvmsg(vu->sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vmm_vu_fail(vu, -errno,
					   "reading the reply to %s failed: %s",
					   vmm_vu_request_name(request),
					   strerror(errno));
		if (n == 0)
			return vmm_vu_fail(
				vu, -ECONNRESET,
				"back-end closed the connection instead "
				"of answering %s (it rejected the "
				"message or died)",
				vmm_vu_request_name(request));
		/* No reply we ask for carries fds: close any we got. */
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET &&
			    cm->cmsg_type == SCM_RIGHTS) {
				size_t k = (cm->cmsg_len - CMSG_LEN(0)) /
					   sizeof(int);
				int fdv[VU_MAX_FDS];

				if (k > VU_MAX_FDS)
					k = VU_MAX_FDS;
				memcpy(fdv, CMSG_DATA(cm), k * sizeof(int));
				for (size_t i = 0; i < k; i++)
					close(fdv[i]);
			}
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Receive the reply to @request into @msg.  The payload size must lie in
 * [min_size, max_size].
 */
static int vu_recv(struct vmm_vu *vu, struct vu_msg *msg, uint32_t request,
		   uint32_t min_size, uint32_t max_size)
{
	int r;

	r = vu_read_full(vu, msg, VU_HDR_SIZE, request);
	if (r < 0)
		return r;
	if (msg->request != request)
		return vmm_vu_fail(
			vu, -EPROTO,
			"protocol error: expected a reply to %s, got "
			"request %u (%s)",
			vmm_vu_request_name(request), msg->request,
			vmm_vu_request_name(msg->request));
	if ((msg->flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION ||
	    !(msg->flags & VU_FLAG_REPLY))
		return vmm_vu_fail(vu, -EPROTO,
				   "protocol error: reply to %s has flags 0x%x "
				   "(want version 1 and the reply bit)",
				   vmm_vu_request_name(request), msg->flags);
	if (msg->size < min_size || msg->size > max_size)
		return vmm_vu_fail(vu, -EPROTO,
				   "protocol error: reply to %s has %u payload "
				   "bytes, expected %u..%u",
				   vmm_vu_request_name(request), msg->size,
				   min_size, max_size);
	return vu_read_full(vu, &msg->payload, msg->size, request);
}

static void vu_init_msg(struct vu_msg *msg, uint32_t request, uint32_t size)
{
	memset(msg, 0, VU_HDR_SIZE + size);
	msg->request = request;
	msg->flags = VU_FLAG_VERSION;
	msg->size = size;
}

/*
 * Send a message that has no reply of its own.  With REPLY_ACK the
 * back-end must acknowledge it with a u64 0.
 */
static int vu_send_acked(struct vmm_vu *vu, struct vu_msg *msg, const int *fds,
			 unsigned nfds)
{
	uint32_t request = msg->request;
	struct vu_msg reply;
	int r;

	if (vmm_vu_has_proto(vu, VMM_VU_PROTO_F_REPLY_ACK))
		msg->flags |= VU_FLAG_NEED_REPLY;
	r = vu_send(vu, msg, fds, nfds);
	if (r < 0 || !(msg->flags & VU_FLAG_NEED_REPLY))
		return r;
	r = vu_recv(vu, &reply, request, 8, 8);
	if (r < 0)
		return r;
	if (reply.payload.u64 != 0)
		return vmm_vu_fail(
			vu, -EIO, "back-end refused %s (REPLY_ACK status %llu)",
			vmm_vu_request_name(request),
			(unsigned long long)reply.payload.u64);
	return 0;
}

static int vu_get_u64(struct vmm_vu *vu, uint32_t request, uint64_t *val)
{
	struct vu_msg msg;
	int r;

	vu_init_msg(&msg, request, 0);
	r = vu_send(vu, &msg, NULL, 0);
	if (r < 0)
		return r;
	r = vu_recv(vu, &msg, request, 8, 8);
	if (r < 0)
		return r;
	*val = msg.payload.u64;
	return 0;
}

static int vu_set_u64(struct vmm_vu *vu, uint32_t request, uint64_t val)
{
	struct vu_msg msg;

	vu_init_msg(&msg, request, 8);
	msg.payload.u64 = val;
	return vu_send_acked(vu, &msg, NULL, 0);
}

int vmm_vu_get_features(struct vmm_vu *vu, uint64_t *features)
{
	int r = vu_get_u64(vu, VMM_VU_GET_FEATURES, features);

	if (r == 0)
		vu->features = *features;
	return r;
}

int vmm_vu_set_features(struct vmm_vu *vu, uint64_t features)
{
	if (features & ~vu->features)
		return vmm_vu_fail(
			vu, -EINVAL,
			"internal error: acking features 0x%llx the "
			"back-end did not offer",
			(unsigned long long)(features & ~vu->features));
	return vu_set_u64(vu, VMM_VU_SET_FEATURES, features);
}

int vmm_vu_get_protocol_features(struct vmm_vu *vu, uint64_t *features)
{
	if (!((vu->features >> VMM_VU_F_PROTOCOL_FEATURES) & 1)) {
		*features = 0;
		return 0;
	}
	return vu_get_u64(vu, VMM_VU_GET_PROTOCOL_FEATURES, features);
}

int vmm_vu_set_protocol_features(struct vmm_vu *vu, uint64_t features)
{
	int r;

	/* Not acked: REPLY_ACK is only in force once this has been sent. */
	r = vu_set_u64(vu, VMM_VU_SET_PROTOCOL_FEATURES, features);
	if (r == 0)
		vu->protocol_features = features;
	return r;
}

int vmm_vu_set_owner(struct vmm_vu *vu)
{
	struct vu_msg msg;

	vu_init_msg(&msg, VMM_VU_SET_OWNER, 0);
	return vu_send_acked(vu, &msg, NULL, 0);
}

int vmm_vu_get_queue_num(struct vmm_vu *vu, uint64_t *num)
{
	if (!vmm_vu_has_proto(vu, VMM_VU_PROTO_F_MQ)) {
		*num = 1;
		return 0;
	}
	return vu_get_u64(vu, VMM_VU_GET_QUEUE_NUM, num);
}

int vmm_vu_get_max_mem_slots(struct vmm_vu *vu, uint64_t *num)
{
	return vu_get_u64(vu, VMM_VU_GET_MAX_MEM_SLOTS, num);
}

static void vu_region_to_wire(struct vu_region_wire *w,
			      const struct vmm_vu_mem_region *r)
{
	w->gpa = r->gpa;
	w->size = r->size;
	w->uaddr = r->uaddr;
	w->mmap_offset = r->mmap_offset;
}

int vmm_vu_set_mem_table(struct vmm_vu *vu,
			 const struct vmm_vu_mem_region *regions, unsigned n)
{
	struct vu_msg msg;
	struct vu_region_wire w;
	int fds[VMM_VU_MAX_MEM_REGIONS];

	if (n == 0 || n > VMM_VU_MAX_MEM_REGIONS)
		return vmm_vu_fail(vu, -EINVAL, "bad memory table size %u", n);
	vu_init_msg(&msg, VMM_VU_SET_MEM_TABLE,
		    8 + n * (uint32_t)sizeof(struct vu_region_wire));
	msg.payload.mem.nregions = n;
	for (unsigned i = 0; i < n; i++) {
		vu_region_to_wire(&w, &regions[i]);
		memcpy(&msg.payload.mem.regions[i], &w, sizeof(w));
		fds[i] = regions[i].fd;
	}
	return vu_send_acked(vu, &msg, fds, n);
}

int vmm_vu_add_mem_reg(struct vmm_vu *vu, const struct vmm_vu_mem_region *r)
{
	struct vu_msg msg;
	struct vu_region_wire w;

	vu_init_msg(&msg, VMM_VU_ADD_MEM_REG, 8 + sizeof(w));
	vu_region_to_wire(&w, r);
	memcpy(&msg.payload.memreg.region, &w, sizeof(w));
	return vu_send_acked(vu, &msg, &r->fd, 1);
}

static int vu_set_state(struct vmm_vu *vu, uint32_t request, unsigned idx,
			unsigned num)
{
	struct vu_msg msg;

	vu_init_msg(&msg, request, 8);
	msg.payload.state.index = idx;
	msg.payload.state.num = num;
	return vu_send_acked(vu, &msg, NULL, 0);
}

int vmm_vu_set_vring_num(struct vmm_vu *vu, unsigned idx, unsigned num)
{
	return vu_set_state(vu, VMM_VU_SET_VRING_NUM, idx, num);
}

int vmm_vu_set_vring_base(struct vmm_vu *vu, unsigned idx, unsigned base)
{
	return vu_set_state(vu, VMM_VU_SET_VRING_BASE, idx, base);
}

int vmm_vu_set_vring_enable(struct vmm_vu *vu, unsigned idx, bool on)
{
	return vu_set_state(vu, VMM_VU_SET_VRING_ENABLE, idx, on ? 1 : 0);
}

int vmm_vu_set_vring_addr(struct vmm_vu *vu, unsigned idx, uint64_t desc,
			  uint64_t used, uint64_t avail)
{
	struct vu_msg msg;

	vu_init_msg(&msg, VMM_VU_SET_VRING_ADDR, 40);
	msg.payload.addr.index = idx;
	msg.payload.addr.desc = desc;
	msg.payload.addr.used = used;
	msg.payload.addr.avail = avail;
	return vu_send_acked(vu, &msg, NULL, 0);
}

int vmm_vu_get_vring_base(struct vmm_vu *vu, unsigned idx, bool packed,
			  uint32_t *base)
{
	struct vu_msg msg;
	int r;

	vu_init_msg(&msg, VMM_VU_GET_VRING_BASE, 8);
	msg.payload.state.index = idx;
	r = vu_send(vu, &msg, NULL, 0);
	if (r < 0)
		return r;
	r = vu_recv(vu, &msg, VMM_VU_GET_VRING_BASE, 8, 8);
	if (r < 0)
		return r;
	if (msg.payload.state.index != idx)
		return vmm_vu_fail(
			vu, -EPROTO,
			"protocol error: GET_VRING_BASE for queue %u "
			"answered for queue %u",
			idx, msg.payload.state.index);
	if (!packed && msg.payload.state.num > 0xffff)
		return vmm_vu_fail(
			vu, -EPROTO,
			"protocol error: GET_VRING_BASE returned %u, "
			"not a 16-bit ring index",
			msg.payload.state.num);
	*base = msg.payload.state.num;
	return 0;
}

static int vu_set_file(struct vmm_vu *vu, uint32_t request, unsigned idx,
		       int fd)
{
	struct vu_msg msg;

	vu_init_msg(&msg, request, 8);
	msg.payload.u64 = idx & 0xff;
	if (fd < 0)
		msg.payload.u64 |= VU_VRING_NOFD;
	return vu_send_acked(vu, &msg, fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

int vmm_vu_set_vring_kick(struct vmm_vu *vu, unsigned idx, int fd)
{
	return vu_set_file(vu, VMM_VU_SET_VRING_KICK, idx, fd);
}

int vmm_vu_set_vring_call(struct vmm_vu *vu, unsigned idx, int fd)
{
	return vu_set_file(vu, VMM_VU_SET_VRING_CALL, idx, fd);
}

int vmm_vu_get_config(struct vmm_vu *vu, uint32_t offset, void *buf,
		      uint32_t size)
{
	struct vu_msg msg;
	int r;

	if (!vmm_vu_has_proto(vu, VMM_VU_PROTO_F_CONFIG))
		return vmm_vu_fail(
			vu, -ENOTSUP,
			"back-end does not offer the CONFIG protocol "
			"feature; cannot read the device configuration");
	if (size > VU_CONFIG_MAX)
		return vmm_vu_fail(vu, -EINVAL, "config read too large");
	vu_init_msg(&msg, VMM_VU_GET_CONFIG, 12 + size);
	msg.payload.config.offset = offset;
	msg.payload.config.size = size;
	r = vu_send(vu, &msg, NULL, 0);
	if (r < 0)
		return r;
	r = vu_recv(vu, &msg, VMM_VU_GET_CONFIG, 0, 12 + VU_CONFIG_MAX);
	if (r < 0)
		return r;
	if (msg.size == 0)
		return vmm_vu_fail(vu, -EIO,
				   "back-end refused GET_CONFIG (empty reply)");
	if (msg.size != 12 + size || msg.payload.config.size != size ||
	    msg.payload.config.offset != offset)
		return vmm_vu_fail(
			vu, -EPROTO,
			"protocol error: GET_CONFIG reply describes "
			"offset %u size %u in %u bytes, asked offset %u "
			"size %u",
			msg.payload.config.offset, msg.payload.config.size,
			msg.size, offset, size);
	memcpy(buf, msg.payload.config.data, size);
	return 0;
}
