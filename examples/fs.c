/* SPDX-License-Identifier: MIT */
/*
 * virtio-fs driver (VIRTIO 1.2, 5.11): FUSE requests on the request queue,
 * laid out as Linux fs/fuse/virtio_fs.c lays them out (in header, in args,
 * write data | out header, out args, read data).
 *
 * verify: INIT, LOOKUP, MKDIR, CREATE, WRITE, GETATTR, READ, FLUSH,
 *         RELEASE, UNLINK on files of 0 B - 3 MiB, every byte read back
 *         through the device, then the shared directory checked on the host.
 * read:   a file is written, then read with --bs (default 1 MiB) requests,
 *         --depth in flight, for --time seconds (the benchmark).
 */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUSE_LOOKUP 1
#define FUSE_GETATTR 3
#define FUSE_MKDIR 9
#define FUSE_UNLINK 10
#define FUSE_RMDIR 11
#define FUSE_OPEN 14
#define FUSE_READ 15
#define FUSE_WRITE 16
#define FUSE_RELEASE 18
#define FUSE_FLUSH 25
#define FUSE_INIT 26
#define FUSE_CREATE 35

#define FUSE_ASYNC_READ (1u << 0)
#define FUSE_BIG_WRITES (1u << 5)
#define FUSE_MAX_PAGES (1u << 22)

#define FUSE_ROOT_ID 1
#define FS_REQUEST_QUEUE 1 /* queue 0 is the high-priority queue */
#define FS_ARGS_MAX 2048
#define FS_SEG_BYTES (64u * 1024)

struct fuse_in_header {
	uint32_t len;
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	uint32_t padding;
};

struct fuse_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct fuse_init_in {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
};

struct fuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;
	uint16_t max_pages;
	uint16_t map_alignment;
	uint32_t flags2;
	uint32_t unused[7];
};

struct fuse_attr {
	uint64_t ino;
	uint64_t size;
	uint64_t blocks;
	uint64_t atime;
	uint64_t mtime;
	uint64_t ctime;
	uint32_t atimensec;
	uint32_t mtimensec;
	uint32_t ctimensec;
	uint32_t mode;
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev;
	uint32_t blksize;
	uint32_t flags;
};

struct fuse_entry_out {
	uint64_t nodeid;
	uint64_t generation;
	uint64_t entry_valid;
	uint64_t attr_valid;
	uint32_t entry_valid_nsec;
	uint32_t attr_valid_nsec;
	struct fuse_attr attr;
};

struct fuse_attr_out {
	uint64_t attr_valid;
	uint32_t attr_valid_nsec;
	uint32_t dummy;
	struct fuse_attr attr;
};

struct fuse_getattr_in {
	uint32_t getattr_flags;
	uint32_t dummy;
	uint64_t fh;
};

struct fuse_mkdir_in {
	uint32_t mode;
	uint32_t umask;
};

struct fuse_create_in {
	uint32_t flags;
	uint32_t mode;
	uint32_t umask;
	uint32_t open_flags;
};

struct fuse_open_in {
	uint32_t flags;
	uint32_t open_flags;
};

struct fuse_open_out {
	uint64_t fh;
	uint32_t open_flags;
	uint32_t padding;
};

struct fuse_rw_in { /* fuse_read_in and fuse_write_in share this layout */
	uint64_t fh;
	uint64_t offset;
	uint32_t size;
	uint32_t rw_flags;
	uint64_t lock_owner;
	uint32_t flags;
	uint32_t padding;
};

struct fuse_write_out {
	uint32_t size;
	uint32_t padding;
};

struct fuse_release_in { /* also fuse_flush_in's size and fh position */
	uint64_t fh;
	uint32_t flags;
	uint32_t release_flags;
	uint64_t lock_owner;
};

_Static_assert(sizeof(struct fuse_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct fuse_init_out) == 64, "fuse_init_out");
_Static_assert(sizeof(struct fuse_entry_out) == 128, "fuse_entry_out");
_Static_assert(sizeof(struct fuse_attr_out) == 104, "fuse_attr_out");
_Static_assert(sizeof(struct fuse_rw_in) == 40, "fuse_read_in");

struct fs_dev;

/* One request slot in guest RAM. */
struct fs_slot {
	struct fs_dev *fs;
	bool busy, done;
	uint32_t opcode;
	uint64_t unique;
	uint32_t used_len;
	uint32_t wlen, rlen, outlen;
	uint64_t offset;           /* READ: file offset */
	struct fuse_in_header *in; /* + args at +64 */
	uint64_t in_gpa;
	struct fuse_out_header *out; /* + reply args at +64 */
	uint64_t out_gpa;
	uint8_t *data;
	uint64_t data_gpa;
};

struct fs_dev {
	struct vmm_dev *dev;
	struct vmm_opts *opts;
	struct vmm_queue *q;
	struct fs_slot *slots;
	unsigned nslots;
	unsigned inflight;
	uint64_t unique;
	uint32_t max_write;
	uint32_t data_max; /* bytes of each slot's data buffer */
	uint64_t rng;
	bool bench;
	uint64_t reqs, bytes, errors;
	int result; /* the thread's verdict */
	char dirname[64];
};

/* The content of byte @off of test file @file. */
static void fill_pattern(uint8_t *buf, unsigned file, uint64_t off,
			 uint32_t len)
{
	uint32_t i = 0;

	while (i < len) {
		uint64_t o = off + i,
			 w = vmm_mix(((uint64_t)file << 48) ^ (o >> 3));

		buf[i++] = (uint8_t)(w >> ((o & 7) * 8));
	}
}

static int fs_complete(struct vmm_queue *q, void *token, uint32_t len)
{
	struct fs_slot *s = token;
	struct fs_dev *fs = s->fs;

	s->done = true;
	s->used_len = len;
	fs->inflight--;
	fs->reqs++;
	atomic_fetch_add_explicit(&q->done_reqs, 1, memory_order_relaxed);
	return 0;
}

static int fs_submit(struct fs_dev *fs, struct fs_slot *s, uint32_t opcode,
		     uint64_t nodeid, const void *args, uint32_t arglen,
		     uint32_t wlen, uint32_t outlen, uint32_t rlen)
{
	struct virtq_sg sg[8 + 2 * (1 << 20) / FS_SEG_BYTES];
	unsigned out = 0, in = 0, n = 0;

	if (arglen > FS_ARGS_MAX || outlen > FS_ARGS_MAX ||
	    wlen > fs->data_max || rlen > fs->data_max || (wlen && rlen))
		return -EINVAL;
	s->opcode = opcode;
	s->unique = ++fs->unique;
	s->wlen = wlen;
	s->rlen = rlen;
	s->outlen = outlen;
	s->done = false;
	*s->in = (struct fuse_in_header){
		.len = (uint32_t)sizeof(*s->in) + arglen + wlen,
		.opcode = opcode,
		.unique = s->unique,
		.nodeid = nodeid,
		.pid = (uint32_t)getpid(),
	};
	if (arglen)
		memcpy((uint8_t *)s->in + 64, args, arglen);
	memset(s->out, 0xa5, sizeof(*s->out));
	sg[n++] = (struct virtq_sg){s->in_gpa, sizeof(*s->in)};
	out++;
	if (arglen) {
		sg[n++] = (struct virtq_sg){s->in_gpa + 64, arglen};
		out++;
	}
	for (uint32_t off = 0; off < wlen; off += FS_SEG_BYTES) {
		uint32_t l = wlen - off < FS_SEG_BYTES ? wlen - off
						       : FS_SEG_BYTES;

		sg[n++] = (struct virtq_sg){s->data_gpa + off, l};
		out++;
	}
	sg[n++] = (struct virtq_sg){s->out_gpa, sizeof(*s->out)};
	in++;
	if (outlen) {
		sg[n++] = (struct virtq_sg){s->out_gpa + 64, outlen};
		in++;
	}
	for (uint32_t off = 0; off < rlen; off += FS_SEG_BYTES) {
		uint32_t l = rlen - off < FS_SEG_BYTES ? rlen - off
						       : FS_SEG_BYTES;

		sg[n++] = (struct virtq_sg){s->data_gpa + off, l};
		in++;
	}
	if (vmm_queue_submit(fs->q, sg, out, in, s) < 0)
		return -ENOSPC;
	s->busy = true;
	fs->inflight++;
	return 0;
}

static const char *op_name(uint32_t op)
{
	switch (op) {
	case FUSE_LOOKUP:
		return "LOOKUP";
	case FUSE_GETATTR:
		return "GETATTR";
	case FUSE_MKDIR:
		return "MKDIR";
	case FUSE_UNLINK:
		return "UNLINK";
	case FUSE_RMDIR:
		return "RMDIR";
	case FUSE_OPEN:
		return "OPEN";
	case FUSE_READ:
		return "READ";
	case FUSE_WRITE:
		return "WRITE";
	case FUSE_RELEASE:
		return "RELEASE";
	case FUSE_FLUSH:
		return "FLUSH";
	case FUSE_INIT:
		return "INIT";
	case FUSE_CREATE:
		return "CREATE";
	}
	return "?";
}

/*
 * Validate a completed slot.  Returns the FUSE error (<= 0) and the reply
 * payload length in *plen, or -EPROTO after reporting a protocol violation.
 */
static int fs_check(struct fs_dev *fs, struct fs_slot *s, uint32_t *plen)
{
	struct fuse_out_header oh = *s->out;
	uint32_t cap = (uint32_t)sizeof(oh) + s->outlen + s->rlen;

	s->busy = false;
	if (s->used_len < sizeof(oh) || oh.len != s->used_len || oh.len > cap ||
	    oh.unique != s->unique) {
		vmm_fail(fs->dev,
			 "virtio-fs: %s reply malformed: used.len %u, "
			 "out.len %u (max %u), unique %" PRIu64
			 " (sent %" PRIu64 ")",
			 op_name(s->opcode), s->used_len, oh.len, cap,
			 oh.unique, s->unique);
		return -EPROTO;
	}
	if (oh.error > 0 || oh.error < -4095 ||
	    (oh.error && oh.len != sizeof(oh))) {
		vmm_fail(fs->dev, "virtio-fs: %s reply has bad error %d",
			 op_name(s->opcode), oh.error);
		return -EPROTO;
	}
	*plen = oh.len - (uint32_t)sizeof(oh);
	return oh.error;
}

/* Wait until @s completes. */
static int fs_wait(struct fs_dev *fs, struct fs_slot *s)
{
	vmm_queue_kick(fs->q);
	while (!s->done) {
		int r = vmm_queue_wait(fs->q);

		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * A synchronous request.  @reply gets exactly @outlen bytes (a shorter
 * reply is a protocol error); READ data stays in slot 0's data buffer.
 */
static int fs_call(struct fs_dev *fs, uint32_t opcode, uint64_t nodeid,
		   const void *args, uint32_t arglen, uint32_t wlen,
		   void *reply, uint32_t outlen, uint32_t rlen, uint32_t *got)
{
	struct fs_slot *s = &fs->slots[0];
	uint32_t plen;
	int r;

	r = fs_submit(fs, s, opcode, nodeid, args, arglen, wlen, outlen, rlen);
	if (r < 0) {
		vmm_fail(fs->dev, "virtio-fs: cannot queue %s: %s",
			 op_name(opcode), strerror(-r));
		return r;
	}
	r = fs_wait(fs, s);
	if (r < 0)
		return r;
	r = fs_check(fs, s, &plen);
	if (r < 0)
		return r;
	if (outlen && plen != outlen) {
		vmm_fail(fs->dev,
			 "virtio-fs: %s reply carries %u bytes, expected %u",
			 op_name(opcode), plen, outlen);
		return -EPROTO;
	}
	if (outlen)
		memcpy(reply, (uint8_t *)s->out + 64, outlen);
	if (got)
		*got = plen;
	return 0;
}

/* Record the first failure of the run and return an error from the caller. */
#define FS_FAIL(fs, r, ...)                               \
	do {                                              \
		if (!vmm_failed((fs)->dev))               \
			vmm_fail((fs)->dev, __VA_ARGS__); \
		return (r) < 0 ? (r) : -EIO;              \
	} while (0)

static int fs_init(struct fs_dev *fs)
{
	struct fuse_init_in in = {
		.major = 7,
		.minor = 31,
		.max_readahead = 1 << 20,
		.flags = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_MAX_PAGES,
	};
	struct fuse_init_out out;
	int r;

	r = fs_call(fs, FUSE_INIT, 0, &in, sizeof(in), 0, &out, sizeof(out), 0,
		    NULL);
	if (r)
		FS_FAIL(fs, r, "virtio-fs: FUSE INIT failed: %s", strerror(-r));
	if (out.major != 7 || out.minor < 27)
		FS_FAIL(fs, -EPROTO,
			"virtio-fs: back-end speaks FUSE %u.%u, need 7.27+",
			out.major, out.minor);
	if (out.max_write < 4096)
		FS_FAIL(fs, -EPROTO, "virtio-fs: max_write %u too small",
			out.max_write);
	fs->max_write = out.max_write < fs->data_max ? out.max_write
						     : fs->data_max;
	if (!fs->opts->quiet)
		fprintf(stderr, "vmm: FUSE %u.%u, max_write %u, max_pages %u\n",
			out.major, out.minor, out.max_write, out.max_pages);
	return 0;
}

static int fs_name_args(uint8_t *buf, size_t hdr, const void *h,
			const char *name)
{
	size_t l = strlen(name) + 1;

	memcpy(buf, h, hdr);
	memcpy(buf + hdr, name, l);
	return (int)(hdr + l);
}

static int fs_lookup(struct fs_dev *fs, uint64_t parent, const char *name,
		     struct fuse_entry_out *e)
{
	return fs_call(fs, FUSE_LOOKUP, parent, name,
		       (uint32_t)strlen(name) + 1, 0, e, sizeof(*e), 0, NULL);
}

static int fs_getattr(struct fs_dev *fs, uint64_t node, uint64_t fh,
		      struct fuse_attr_out *a)
{
	struct fuse_getattr_in in = {.getattr_flags = fh ? 1 : 0, .fh = fh};

	return fs_call(fs, FUSE_GETATTR, node, &in, sizeof(in), 0, a,
		       sizeof(*a), 0, NULL);
}

static int fs_create(struct fs_dev *fs, uint64_t parent, const char *name,
		     uint64_t *node, uint64_t *fh)
{
	struct fuse_create_in cin = {.flags = O_RDWR | O_CREAT | O_EXCL,
				     .mode = S_IFREG | 0644,
				     .umask = 022};
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out;
	uint8_t args[300];
	int r, l;

	l = fs_name_args(args, sizeof(cin), &cin, name);
	r = fs_call(fs, FUSE_CREATE, parent, args, (uint32_t)l, 0, &out,
		    sizeof(out), 0, NULL);
	if (r)
		return r;
	if (!S_ISREG(out.e.attr.mode) || out.e.attr.size != 0 ||
	    out.e.nodeid == 0)
		FS_FAIL(fs, -EPROTO,
			"virtio-fs: CREATE %s returned mode 0%o size %" PRIu64,
			name, out.e.attr.mode, out.e.attr.size);
	*node = out.e.nodeid;
	*fh = out.o.fh;
	return 0;
}

static int fs_write(struct fs_dev *fs, uint64_t node, uint64_t fh, uint64_t off,
		    uint32_t len)
{
	struct fuse_rw_in in = {.fh = fh, .offset = off, .size = len};
	struct fuse_write_out wo;
	int r;

	r = fs_call(fs, FUSE_WRITE, node, &in, sizeof(in), len, &wo, sizeof(wo),
		    0, NULL);
	if (r)
		FS_FAIL(fs, r,
			"virtio-fs: WRITE of %u bytes at %" PRIu64
			" failed: %s",
			len, off, strerror(-r));
	if (wo.size != len)
		FS_FAIL(fs, -EIO,
			"virtio-fs: WRITE of %u bytes at %" PRIu64 " wrote %u",
			len, off, wo.size);
	fs->bytes += len;
	return 0;
}

static int fs_read(struct fs_dev *fs, uint64_t node, uint64_t fh, uint64_t off,
		   uint32_t len, uint32_t *got)
{
	struct fuse_rw_in in = {.fh = fh, .offset = off, .size = len};
	int r;

	r = fs_call(fs, FUSE_READ, node, &in, sizeof(in), 0, NULL, 0, len, got);
	if (r)
		FS_FAIL(fs, r,
			"virtio-fs: READ of %u bytes at %" PRIu64 " failed: %s",
			len, off, strerror(-r));
	fs->bytes += *got;
	return 0;
}

static int fs_fh_op(struct fs_dev *fs, uint32_t op, uint64_t node, uint64_t fh)
{
	struct fuse_release_in in = {.fh = fh, .flags = O_RDWR};
	int r;

	r = fs_call(fs, op, node, &in, sizeof(in), 0, NULL, 0, 0, NULL);
	if (r)
		FS_FAIL(fs, r, "virtio-fs: %s failed: %s", op_name(op),
			strerror(-r));
	return 0;
}

static int fs_unlink(struct fs_dev *fs, uint64_t parent, const char *name)
{
	return fs_call(fs, FUSE_UNLINK, parent, name,
		       (uint32_t)strlen(name) + 1, 0, NULL, 0, 0, NULL);
}

static const uint64_t test_sizes[] = {
	0, 1, 511, 4096, 65536 + 17, 1 << 20, 300000, (3 << 20) + 4095};
#define NFILES (sizeof(test_sizes) / sizeof(test_sizes[0]))

static int fs_verify_file(struct fs_dev *fs, uint64_t dir, unsigned i)
{
	uint64_t size = test_sizes[i], node, fh, off;
	struct fuse_attr_out a;
	struct fuse_entry_out e;
	uint8_t *want = NULL;
	char name[32];
	uint32_t got;
	int r;

	snprintf(name, sizeof(name), "file-%u", i);
	r = fs_create(fs, dir, name, &node, &fh);
	if (r)
		FS_FAIL(fs, r, "virtio-fs: CREATE %s failed: %s", name,
			strerror(-r));
	/* Writes of random sizes up to max_write. */
	for (off = 0; off < size;) {
		uint32_t len = 1 +
			       (uint32_t)(vmm_rng(&fs->rng) % fs->max_write);

		if (len > size - off)
			len = (uint32_t)(size - off);
		fill_pattern(fs->slots[0].data, i, off, len);
		r = fs_write(fs, node, fh, off, len);
		if (r)
			return r;
		off += len;
	}
	r = fs_getattr(fs, node, fh, &a);
	if (r)
		FS_FAIL(fs, r, "virtio-fs: GETATTR %s failed: %s", name,
			strerror(-r));
	if (a.attr.size != size || !S_ISREG(a.attr.mode))
		FS_FAIL(fs, -EIO,
			"virtio-fs: GETATTR %s: size %" PRIu64 " mode 0%o, "
			"expected size %" PRIu64,
			name, a.attr.size, a.attr.mode, size);
	want = malloc(fs->max_write);
	if (!want)
		return -ENOMEM;
	for (off = 0; off <= size;) {
		uint32_t len = 1 +
			       (uint32_t)(vmm_rng(&fs->rng) % fs->max_write);
		uint32_t expect = size - off < len ? (uint32_t)(size - off)
						   : len;

		r = fs_read(fs, node, fh, off, len, &got);
		if (r)
			goto out;
		if (got != expect) {
			vmm_fail(fs->dev,
				 "virtio-fs: READ %s of %u at %" PRIu64
				 " returned %u bytes, expected %u",
				 name, len, off, got, expect);
			r = -EIO;
			goto out;
		}
		fill_pattern(want, i, off, got);
		if (memcmp(want, fs->slots[0].data, got)) {
			vmm_fail(fs->dev,
				 "DATA MISMATCH: virtio-fs READ of %s at "
				 "%" PRIu64 " (%u bytes) differs from what "
				 "was written",
				 name, off, got);
			r = -EIO;
			goto out;
		}
		if (got == 0)
			break;
		off += got;
	}
	if ((r = fs_fh_op(fs, FUSE_FLUSH, node, fh)) ||
	    (r = fs_fh_op(fs, FUSE_RELEASE, node, fh)))
		goto out;
	r = fs_lookup(fs, dir, name, &e);
	if (r || e.nodeid != node || e.attr.size != size) {
		vmm_fail(fs->dev,
			 "virtio-fs: LOOKUP %s: error %d, node %" PRIu64
			 " (created %" PRIu64 "), size %" PRIu64,
			 name, r, e.nodeid, node, e.attr.size);
		r = -EIO;
	}
out:
	free(want);
	return r;
}

/* Compare the shared directory on the host with what the guest did. */
static int fs_check_host(struct fs_dev *fs)
{
	const char *root = fs->opts->shared_dir;
	uint8_t *buf, *want;
	char path[4096];
	int ret = 0;

	buf = malloc(1 << 20);
	want = malloc(1 << 20);
	if (!buf || !want) {
		free(buf);
		free(want);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < NFILES && !ret; i++) {
		struct stat st;
		uint64_t off = 0;
		int fd;

		snprintf(path, sizeof(path), "%s/%s/file-%u", root, fs->dirname,
			 i);
		if (i & 1) {
			if (stat(path, &st) == 0 || errno != ENOENT) {
				vmm_fail(fs->dev,
					 "host check: %s should have been "
					 "unlinked",
					 path);
				ret = -EIO;
			}
			continue;
		}
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0 ||
		    (uint64_t)st.st_size != test_sizes[i]) {
			vmm_fail(fs->dev,
				 "host check: %s missing or wrong size "
				 "(want %" PRIu64 ")",
				 path, test_sizes[i]);
			if (fd >= 0)
				close(fd);
			ret = -EIO;
			break;
		}
		while (off < test_sizes[i]) {
			ssize_t n = pread(fd, buf, 1 << 20, (off_t)off);

			if (n <= 0)
				break;
			fill_pattern(want, i, off, (uint32_t)n);
			if (memcmp(buf, want, (size_t)n)) {
				vmm_fail(fs->dev,
					 "DATA MISMATCH: host file %s differs "
					 "near offset %" PRIu64,
					 path, off);
				ret = -EIO;
				break;
			}
			off += (uint64_t)n;
		}
		close(fd);
		if (!ret && off != test_sizes[i]) {
			vmm_fail(fs->dev, "host check: short read of %s", path);
			ret = -EIO;
		}
	}
	free(buf);
	free(want);
	if (!ret)
		printf("verify: host directory %s/%s matches: %zu files kept "
		       "with the right bytes, %zu unlinked files gone\n",
		       root, fs->dirname, (NFILES + 1) / 2, NFILES / 2);
	return ret;
}

static int fs_verify(struct fs_dev *fs)
{
	struct fuse_entry_out e, e2;
	struct fuse_attr_out a;
	struct fuse_mkdir_in mk = {.mode = 0755, .umask = 022};
	uint8_t args[300];
	uint64_t dir;
	int r, l;

	r = fs_lookup(fs, FUSE_ROOT_ID, fs->dirname, &e);
	if (r != -ENOENT)
		FS_FAIL(fs, r,
			"virtio-fs: LOOKUP of missing %s returned %d, "
			"expected -ENOENT",
			fs->dirname, r);
	l = fs_name_args(args, sizeof(mk), &mk, fs->dirname);
	r = fs_call(fs, FUSE_MKDIR, FUSE_ROOT_ID, args, (uint32_t)l, 0, &e,
		    sizeof(e), 0, NULL);
	if (r || !S_ISDIR(e.attr.mode))
		FS_FAIL(fs, r, "virtio-fs: MKDIR %s failed: %s", fs->dirname,
			r ? strerror(-r) : "not a directory");
	dir = e.nodeid;
	r = fs_lookup(fs, FUSE_ROOT_ID, fs->dirname, &e2);
	if (r || e2.nodeid != dir)
		FS_FAIL(fs, r, "virtio-fs: LOOKUP %s after MKDIR: %d",
			fs->dirname, r);
	r = fs_getattr(fs, dir, 0, &a);
	if (r || !S_ISDIR(a.attr.mode))
		FS_FAIL(fs, r, "virtio-fs: GETATTR on the directory: %d", r);

	for (unsigned i = 0; i < NFILES; i++) {
		r = fs_verify_file(fs, dir, i);
		if (r)
			return r;
	}
	for (unsigned i = 1; i < NFILES; i += 2) {
		char name[32];

		snprintf(name, sizeof(name), "file-%u", i);
		r = fs_unlink(fs, dir, name);
		if (r)
			FS_FAIL(fs, r, "virtio-fs: UNLINK %s: %s", name,
				strerror(-r));
		r = fs_lookup(fs, dir, name, &e);
		if (r != -ENOENT)
			FS_FAIL(fs, r,
				"virtio-fs: LOOKUP of unlinked %s "
				"returned %d",
				name, r);
	}
	printf("verify: virtio-fs: %zu files of 0..%u bytes created, written, "
	       "read back and matched through the device; %zu unlinked\n",
	       NFILES, (unsigned)test_sizes[NFILES - 1], NFILES / 2);
	if (fs->opts->shared_dir)
		return fs_check_host(fs);
	return 0;
}

/* The benchmark: a file of --fs-file-size read with --bs at --depth. */
static int fs_bench(struct fs_dev *fs, double *secs)
{
	struct vmm_opts *o = fs->opts;
	uint64_t size = o->fs_file_size, node, fh, blocks;
	uint32_t bs = o->bs;
	char name[96];
	double t0, deadline;
	int r;

	if (bs > fs->data_max || bs == 0) {
		vmm_fail(fs->dev, "virtio-fs: --bs %u out of range", bs);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "%s-bench", fs->dirname);
	r = fs_create(fs, FUSE_ROOT_ID, name, &node, &fh);
	if (r)
		FS_FAIL(fs, r, "virtio-fs: CREATE %s: %s", name, strerror(-r));
	memset(fs->slots[0].data, 0x5a, fs->max_write);
	for (uint64_t off = 0; off < size; off += fs->max_write) {
		r = fs_write(fs, node, fh, off, fs->max_write);
		if (r)
			return r;
	}
	blocks = size / bs;
	if (blocks == 0) {
		vmm_fail(fs->dev, "virtio-fs: --fs-file-size below --bs");
		return -EINVAL;
	}
	fs->bench = true;
	fs->reqs = fs->bytes = 0;
	atomic_store(&fs->q->done_reqs, 0);
	atomic_store(&fs->q->done_bytes, 0);
	t0 = vmm_now();
	deadline = t0 + (o->time_s > 0 ? o->time_s : 5);
	for (;;) {
		bool more = !vmm_failed(fs->dev) && vmm_now() < deadline;

		for (unsigned i = 0; more && i < fs->nslots; i++) {
			struct fs_slot *s = &fs->slots[i];
			struct fuse_rw_in in = {.fh = fh, .size = bs};

			if (s->busy)
				continue;
			in.offset = (vmm_rng(&fs->rng) % blocks) * bs;
			s->offset = in.offset;
			if (fs_submit(fs, s, FUSE_READ, node, &in, sizeof(in),
				      0, 0, bs) < 0)
				break;
		}
		vmm_queue_kick(fs->q);
		if (fs->inflight == 0 && !more)
			break;
		r = vmm_queue_wait(fs->q);
		if (r < 0)
			return r;
		for (unsigned i = 0; i < fs->nslots; i++) {
			struct fs_slot *s = &fs->slots[i];
			uint32_t plen;

			if (!s->busy || !s->done)
				continue;
			r = fs_check(fs, s, &plen);
			if (r || plen != bs)
				FS_FAIL(fs, r,
					"virtio-fs: READ of %u at %" PRIu64
					" returned %d, %u bytes",
					bs, s->offset, r, plen);
			fs->bytes += plen;
			atomic_fetch_add_explicit(&fs->q->done_bytes, plen,
						  memory_order_relaxed);
		}
	}
	*secs = vmm_now() - t0;
	if ((r = fs_fh_op(fs, FUSE_RELEASE, node, fh)))
		return r;
	r = fs_unlink(fs, FUSE_ROOT_ID, name);
	if (r)
		FS_FAIL(fs, r, "virtio-fs: UNLINK %s: %s", name, strerror(-r));
	return 0;
}

struct fs_thread_arg {
	struct fs_dev *fs;
	double bench_secs;
};

static void *fs_thread(void *p)
{
	struct fs_thread_arg *a = p;
	struct fs_dev *fs = a->fs;

	fs->result = fs_init(fs);
	if (fs->result)
		return NULL;
	if (fs->bench)
		fs->result = fs_bench(fs, &a->bench_secs);
	else
		fs->result = fs_verify(fs);
	return NULL;
}

int vmm_fs_run(struct vmm_dev *dev, struct vmm_opts *o)
{
	const uint64_t wants = (1ULL << VIRTQ_F_INDIRECT_DESC) |
			       (1ULL << VIRTQ_F_EVENT_IDX) |
			       (1ULL << VIRTQ_F_VERSION_1);
	struct fs_dev fs = {.dev = dev, .opts = o};
	struct fs_thread_arg arg = {.fs = &fs};
	struct vmm_summary sum = {0};
	uint64_t ram;
	double t0;
	int r;

	if (!strcmp(o->workload, "read")) {
		fs.bench = true;
	} else if (strcmp(o->workload, "verify")) {
		fprintf(stderr, "unknown fs workload '%s'\n", o->workload);
		return -EINVAL;
	}
	if (o->queues != 1) {
		fprintf(stderr, "virtio-fs: only --queues=1 (one request "
				"queue; virtiofsd 7.2 supports no more)\n");
		return -EINVAL;
	}
	fs.nslots = fs.bench ? o->depth : 1;
	fs.data_max = 1 << 20;
	if (fs.bench && o->bs > fs.data_max)
		fs.data_max = o->bs;
	fs.rng = vmm_mix(o->seed + 77) | 1;
	snprintf(fs.dirname, sizeof(fs.dirname), "vmm-fs-%d-%" PRIu64,
		 (int)getpid(), o->seed);

	/* Queue 0 is hiprio, queue 1 the (single) request queue. */
	r = vmm_dev_open(dev, o, wants, 2);
	if (r < 0)
		return r;
	ram = o->mem_size;
	if (!ram)
		ram = (16ULL << 20) +
		      (uint64_t)fs.nslots * (fs.data_max + 8192) +
		      2ULL * o->queue_size * 64 * 16;
	ram = (ram + (2 << 20) - 1) & ~((2ULL << 20) - 1);
	r = vmm_dev_start(dev, ram);
	if (r < 0)
		return r;

	fs.q = &dev->q[FS_REQUEST_QUEUE];
	fs.q->complete = fs_complete;
	fs.q->priv = &fs;
	dev->q[0].complete = fs_complete;
	fs.slots = calloc(fs.nslots, sizeof(*fs.slots));
	if (!fs.slots)
		return -ENOMEM;
	for (unsigned i = 0; i < fs.nslots; i++) {
		struct fs_slot *s = &fs.slots[i];

		s->fs = &fs;
		s->in_gpa = vmm_guest_alloc(&dev->mem, 4096, 4096);
		s->out_gpa = vmm_guest_alloc(&dev->mem, 4096, 4096);
		s->data_gpa = vmm_guest_alloc(&dev->mem, fs.data_max, 4096);
		if (!s->in_gpa || !s->out_gpa || !s->data_gpa) {
			vmm_fail(dev, "guest RAM too small (--mem)");
			free(fs.slots);
			return -ENOMEM;
		}
		s->in = vmm_gpa_to_hva(&dev->mem, s->in_gpa);
		s->out = vmm_gpa_to_hva(&dev->mem, s->out_gpa);
		s->data = vmm_gpa_to_hva(&dev->mem, s->data_gpa);
	}

	if (!o->quiet)
		fprintf(stderr, "vmm: fs workload %s, isolation %s, depth %u\n",
			o->workload, o->isolation ? "on" : "off", fs.nslots);
	t0 = vmm_now();
	if (pthread_create(&fs.q->thread, NULL, fs_thread, &arg) != 0) {
		vmm_fail(dev, "pthread_create failed");
		free(fs.slots);
		return -EAGAIN;
	}
	vmm_join_queues(dev, FS_REQUEST_QUEUE, 1, t0);
	sum.seconds = fs.bench ? arg.bench_secs : vmm_now() - t0;
	sum.requests = fs.reqs;
	sum.bytes = fs.bytes;
	sum.errors = (fs.result || vmm_failed(dev)) ? 1 : 0;
	printf("queue %u: %" PRIu64 " FUSE requests\n", FS_REQUEST_QUEUE,
	       fs.reqs);
	vmm_queue_print_stats(fs.q);
	r = fs.result;
	if (!vmm_failed(dev)) {
		r = vmm_isolation_proof(dev);
		if (r == -EPERM)
			vmm_fail(dev, "isolation proof failed");
	}
	if (vmm_dev_stop(dev) < 0 && r == 0)
		r = -EIO;
	sum.what = fs.bench ? "fs-read" : "fs";
	vmm_print_summary(dev, &sum);
	free(fs.slots);
	return vmm_failed(dev) ? -EIO : r;
}
