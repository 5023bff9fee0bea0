/* SPDX-License-Identifier: MIT */
/*
 * vuiso-minimal SOCKET: the smallest complete embedding of libvuiso.
 *
 * One vhost-user-blk device, one queue, real eventfds, one epoll loop.  A
 * simulated guest writes NSEC sectors with a known pattern, reads them back
 * into another buffer and compares every byte.  The back-end at SOCKET is an
 * unmodified qemu-storage-daemon (docs/embedding.md has the command line)
 * that is sent only libvuiso's isolated region.  The caller starts it, as a
 * VMM is handed a back-end socket: process management would double this
 * file without teaching embedding.
 *
 * The numbered steps are those of README.md "Embedding it".  vhost-user
 * messages: vhost_user.h (vmm_vu_*); the guest's driver: guest/virtq.h.
 * Exit status: 0 all data matched, 1 any error (the message says which).
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vuiso/vuiso.h>

#include "vhost_user.h"
#include "virtq.h"

#define QUEUE_SIZE 16
#define SECTOR 512u
#define NSEC 128u          /* sectors written and read back: 64 KiB */
#define START_SECTOR 2048u /* 1 MiB into the disk */

/*
 * Guest RAM: anonymous memory, GPA x at ram + x.  It has no fd, so it
 * cannot reach the back-end even by mistake.  A fixed layout:
 */
#define RAM_SIZE (1u << 20)
enum {
	DESC_GPA = 0x1000, /* the split ring's three areas, a page each */
	AVAIL_GPA = 0x2000,
	USED_GPA = 0x3000,
	HDR_GPA = 0x4000,
	STATUS_GPA = 0x4010,
	WRITE_GPA = 0x10000, /* NSEC * SECTOR bytes each */
	READ_GPA = 0x30000,
};

/* One device, so its state is global; a VMM keeps it per device and
 * passes it as vuiso_dev_config.opaque. */
static uint8_t *ram;
static struct virtq gvq;     /* the guest driver's queue */
static struct vuiso_vq *svq; /* libvuiso's shadow of it */
static struct vmm_vu vu;     /* the vhost-user connection */
static int kick_fd, call_fd; /* VMM <-> back-end, sent with SET_VRING_* */
static int guest_kick_fd;    /* guest -> VMM doorbell (KVM: ioeventfd) */
static int guest_irq_fd;     /* VMM -> guest interrupt (KVM: irqfd) */
static int epfd;             /* the event loop */

/* Any failure ends the run (a VMM would fail the device instead). */
static void die(const char *fmt, ...)
	__attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("vuiso-minimal: FAILED: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void check(int r, const char *what)
{
	if (r < 0)
		die("%s: %s", what, strerror(-r));
}

/* Every vmm_vu_* call leaves a complete message in vu.err on failure. */
static void vu_check(int r)
{
	if (r < 0)
		die("%s", vu.err);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) != sizeof(one))
		die("eventfd write: %s", strerror(errno));
}

/* libvuiso calls out through these, on the thread that called in. */
static void ops_kick_backend(void *opaque, unsigned qidx)
{
	signal_fd(kick_fd);
}

static void ops_notify_guest(void *opaque, unsigned qidx)
{
	signal_fd(guest_irq_fd);
}

static void ops_error(void *opaque, unsigned qidx, int err, const char *msg)
{
	/* The data-path call that found it then returns -EIO. */
	fprintf(stderr, "vuiso-minimal: libvuiso: queue %u broken: %s (%s)\n",
		qidx, msg, strerror(-err));
}

static const struct vuiso_ops ops = {
	.version = VUISO_OPS_VERSION,
	.kick_backend = ops_kick_backend,
	.notify_guest = ops_notify_guest,
	.error = ops_error,
};

/* The guest driver's view of its RAM, and its doorbell write. */
static void *guest_map(void *opaque, uint64_t gpa, uint64_t len)
{
	return gpa <= RAM_SIZE && len <= RAM_SIZE - gpa ? ram + gpa : NULL;
}

static void guest_notify(void *opaque)
{
	signal_fd(guest_kick_fd);
}

/* The guest's interrupt handler: each used buffer marks its request done. */
static void guest_interrupt(void)
{
	void *token;
	uint32_t len;
	int r;

	do {
		while ((r = virtq_get_used(&gvq, &token, &len)) == 1)
			*(bool *)token = true;
		if (r < 0)
			die("guest driver: bad used ring entry");
	} while (virtq_enable_cb(&gvq));
}

/*
 * 6. The data path, from the VMM's event loop: the guest's doorbell, the
 * back-end's call eventfd, the guest's interrupt and the vhost-user socket
 * (hang-up only) in one epoll set.  Runs until *done.
 */
static void run_until(const bool *done)
{
	struct epoll_event ev;
	uint64_t cnt;
	int n, r;

	while (!*done) {
		n = epoll_wait(epfd, &ev, 1, 5000);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		if (n == 0)
			die("no completion within 5 s: the back-end stalled");
		if (n <= 0)
			continue;
		if (ev.data.fd == vu.sock)
			die("the back-end closed the vhost-user connection");
		if (read(ev.data.fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
			die("eventfd read: %s", strerror(errno));
		/* Each call does a bounded amount of work and returns 1 for
		 * "call again"; a busy VMM would reschedule instead. */
		r = 0;
		if (ev.data.fd == guest_kick_fd)
			while ((r = vuiso_vq_kick_from_guest(svq)) == 1)
				;
		else if (ev.data.fd == call_fd)
			while ((r = vuiso_vq_call_from_backend(svq)) == 1)
				;
		else
			guest_interrupt();
		check(r, "libvuiso");
	}
}

/* The guest's virtio-blk driver (VIRTIO 1.2, 5.2.6): a request is a header,
 * the data and a status byte.  One request of NSEC sectors, waited for. */
static void blk_rw(uint32_t type, uint64_t data_gpa)
{
	struct virtio_blk_outhdr *hdr = (void *)(ram + HDR_GPA);
	uint8_t *status = ram + STATUS_GPA;
	bool write = type == VIRTIO_BLK_T_OUT, done = false;
	struct virtq_sg sg[3] = {
		{HDR_GPA, sizeof(*hdr)},
		{data_gpa, NSEC * SECTOR},
		{STATUS_GPA, 1},
	};

	hdr->type = htole32(type); /* VIRTIO 1.x is little-endian */
	hdr->ioprio = 0;
	hdr->sector = htole64(START_SECTOR);
	*status = 0xff; /* stays so unless the device answers */
	/* A write's data is device-readable, a read's device-writable. */
	check(virtq_add(&gvq, sg, write ? 2 : 1, write ? 1 : 2, &done),
	      "virtq_add");
	virtq_kick(&gvq);
	run_until(&done);
	if (*status != VIRTIO_BLK_S_OK) /* e.g. a read-only or small disk */
		die("%s of sectors %u-%u: status %u, not 0 (VIRTIO_BLK_S_OK)",
		    write ? "write" : "read", START_SECTOR,
		    START_SECTOR + NSEC - 1, *status);
}

/* Each sector holds 16 lines "vuiso-minimal sector NNNNNNNNNN\n" (32 bytes),
 * so a test can also find them in the disk image. */
static void fill_pattern(uint8_t *buf)
{
	char line[33];

	for (unsigned s = 0; s < NSEC; s++) {
		snprintf(line, sizeof(line), "vuiso-minimal sector %010u\n",
			 START_SECTOR + s);
		for (unsigned i = 0; i < SECTOR; i += 32)
			memcpy(buf + s * SECTOR + i, line, 32);
	}
}

/* An eventfd, watched by the event loop unless @events is 0. */
static int new_eventfd(uint32_t events)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	struct epoll_event ev = {.events = events, .data.fd = fd};

	if (fd < 0)
		die("eventfd: %s", strerror(errno));
	if (events && epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
	return fd;
}

int main(int argc, char **argv)
{
	uint64_t offered, proto, guest_features, backend_features;
	struct vuiso_dev *dev;
	struct vuiso_region_info ri;
	struct vuiso_vq_shadow sh;
	struct vuiso_vq_state st;
	uint32_t base;

	if (argc != 2) {
		fputs("usage: vuiso-minimal VHOST_USER_BLK_SOCKET\n", stderr);
		return 2;
	}

	/* 1. The device: libvuiso creates the sealed isolated region. */
	struct vuiso_dev_config cfg = {
		.version = VUISO_DEV_CONFIG_VERSION,
		.num_queues = 1,
		.queue_size_max = QUEUE_SIZE,
		.pool_size = 256 << 10, /* bounce bytes; a request must fit */
		/* Zero writable bounce blocks: a read the back-end did not do
		 * cannot return the write's bytes from a reused block. */
		.flags = VUISO_DEV_F_CLEAR_WRITABLE,
		.region_fd = -1,
		.ops = &ops,
	};
	check(vuiso_dev_new(&cfg, &dev), "vuiso_dev_new");

	/* 2. Features: the guest is offered what libvuiso can shadow (this
	 * driver acks only VERSION_1), the back-end what the shadow ring
	 * needs.  Protocol features: REPLY_ACK, so every message is checked. */
	vu_check(vmm_vu_connect(&vu, argv[1]));
	vu_check(vmm_vu_set_owner(&vu));
	vu_check(vmm_vu_get_features(&vu, &offered));
	if (offered & 1ULL << VMM_VU_F_PROTOCOL_FEATURES) {
		vu_check(vmm_vu_get_protocol_features(&vu, &proto));
		proto &= 1ULL << VMM_VU_PROTO_F_REPLY_ACK;
		vu_check(vmm_vu_set_protocol_features(&vu, proto));
	}
	guest_features = vuiso_features_for_guest(offered) &
			 1ULL << VUISO_F_VERSION_1;
	if (!guest_features)
		die("the back-end does not offer VIRTIO_F_VERSION_1");
	backend_features = vuiso_features_for_backend(offered, guest_features);
	vu_check(vmm_vu_set_features(&vu, backend_features));

	/* 3. The back-end gets the isolated region, never guest RAM. */
	check(vuiso_dev_get_region(dev, 0, &ri), "vuiso_dev_get_region");
	struct vmm_vu_mem_region reg = {
		.gpa = ri.backend_addr,
		.size = ri.size,
		.uaddr = ri.user_addr, /* a label, never a VMM address */
		.mmap_offset = ri.fd_offset,
		.fd = ri.fd,
	};
	vu_check(vmm_vu_set_mem_table(&vu, &reg, 1));

	/* 4. Guest RAM goes to the library only (again on every hotplug). */
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED)
		die("guest RAM: %s", strerror(errno));
	struct vuiso_mem_region guest_ram = {
		.gpa = 0,
		.size = RAM_SIZE,
		.hva = ram,
	};
	check(vuiso_dev_set_guest_memory(dev, &guest_ram, 1),
	      "vuiso_dev_set_guest_memory");

	/* 5. The guest driver sets up its split ring; libvuiso shadows it and
	 * the back-end gets the shadow ring and the VMM's eventfds. */
	struct virtq_config gcfg = {
		.layout = VIRTQ_LAYOUT_SPLIT,
		.num = QUEUE_SIZE,
		.features = guest_features,
		.gpa = {DESC_GPA, AVAIL_GPA, USED_GPA},
		.map = guest_map,
		.notify = guest_notify,
	};
	check(virtq_init(&gvq, &gcfg), "guest driver: virtq_init");
	struct vuiso_vq_config qcfg = {
		.version = VUISO_VQ_CONFIG_VERSION,
		.layout = VUISO_LAYOUT_SPLIT,
		.size = QUEUE_SIZE,
		.desc_gpa = DESC_GPA,
		.avail_gpa = AVAIL_GPA,
		.used_gpa = USED_GPA,
		.guest_features = guest_features,
		.backend_features = backend_features,
		/* .avail_idx = .used_idx = 0: a fresh ring */
	};
	svq = vuiso_dev_get_vq(dev, 0);
	check(vuiso_vq_start(svq, &qcfg, &sh), "vuiso_vq_start");
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	kick_fd = new_eventfd(0); /* the back-end waits on it, not us */
	call_fd = new_eventfd(EPOLLIN);
	guest_kick_fd = new_eventfd(EPOLLIN);
	guest_irq_fd = new_eventfd(EPOLLIN);
	vu_check(vmm_vu_set_vring_num(&vu, 0, sh.size));
	vu_check(vmm_vu_set_vring_base(&vu, 0, sh.vring_base));
	vu_check(vmm_vu_set_vring_addr(&vu, 0, sh.desc_backend, sh.used_backend,
				       sh.avail_backend));
	vu_check(vmm_vu_set_vring_call(&vu, 0, call_fd));
	vu_check(vmm_vu_set_vring_kick(&vu, 0, kick_fd));
	if (backend_features & 1ULL << VMM_VU_F_PROTOCOL_FEATURES)
		vu_check(vmm_vu_set_vring_enable(&vu, 0, true));
	/* The socket too: a back-end that dies must not leave us waiting. */
	struct epoll_event hup = {.events = EPOLLRDHUP, .data.fd = vu.sock};
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, vu.sock, &hup) < 0)
		die("epoll_ctl: %s", strerror(errno));

	/* 6. Work (the loop is run_until): write the pattern, read it back
	 * into another buffer, compare. */
	fill_pattern(ram + WRITE_GPA);
	blk_rw(VIRTIO_BLK_T_OUT, WRITE_GPA);
	blk_rw(VIRTIO_BLK_T_IN, READ_GPA);
	for (unsigned s = 0; s < NSEC; s++)
		if (memcmp(ram + READ_GPA + s * SECTOR,
			   ram + WRITE_GPA + s * SECTOR, SECTOR))
			die("DATA MISMATCH: sector %u read back differs",
			    START_SECTOR + s);

	/* 7. Stop: drain libvuiso's queue, then the back-end's ring, which
	 * consumed one shadow chain per request (the write and the read). */
	if (vuiso_vq_stop(svq, 1000, &st) < 0)
		die("vuiso_vq_stop: %u request(s) in flight", st.inflight);
	vu_check(vmm_vu_get_vring_base(&vu, 0, false, &base));
	if (base != 2)
		die("the back-end stopped at shadow avail index %u, not 2",
		    base);
	printf("vuiso-minimal: OK: %u sectors written at sector %u and read "
	       "back identical; the back-end (pid %d) was sent only the "
	       "isolated region\n",
	       NSEC, START_SECTOR, (int)vu.peer_pid);
	vmm_vu_close(&vu);
	vuiso_dev_free(dev);
	return 0;
}
