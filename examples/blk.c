/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk driver and workloads (VIRTIO 1.2, 5.2).
 *
 * verify:     random writes / reads / flushes / discards / write-zeroes of
 *             512 B - 1 MiB at random offsets, every read checked against a
 *             per-sector model; then every sector read back through the
 *             device and, with --image, compared with the image file.
 * randread, randwrite, seqread, seqwrite: fixed --bs, for benchmarks.
 *
 * Each queue owns a disjoint slice of the disk and never has two
 * overlapping requests in flight, so the model is exact.
 */
#include "vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_DISCARD 11
#define BLK_T_WRITE_ZEROES 13

#define BLK_F_SIZE_MAX 1
#define BLK_F_SEG_MAX 2
#define BLK_F_RO 5
#define BLK_F_BLK_SIZE 6
#define BLK_F_FLUSH 9
#define BLK_F_MQ 12
#define BLK_F_DISCARD 13
#define BLK_F_WRITE_ZEROES 14

#define BLK_S_OK 0

#define SECTOR 512u
#define SEG_BYTES (64u * 1024)
#define MAX_SEGS 62 /* + header + status = 64, the indirect table size */
#define VER_UNKNOWN UINT32_MAX

/* struct virtio_blk_config, the part we read. */
struct blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	uint8_t geometry[4];
	uint32_t blk_size;
	uint8_t topology[8];
	uint8_t writeback;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

_Static_assert(sizeof(struct blk_config) == 60, "virtio_blk_config layout");

struct blk_outhdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct blk_dwz {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

enum blk_workload { W_VERIFY, W_RANDREAD, W_RANDWRITE, W_SEQREAD, W_SEQWRITE };

struct blk_dev {
	struct vmm_dev *dev;
	struct vmm_opts *opts;
	enum blk_workload workload;
	uint64_t capacity;            /* sectors */
	uint32_t seg_bytes;           /* data bytes per descriptor */
	uint32_t max_discard, max_wz; /* sectors, 0 if not offered */
	uint32_t *ver;                /* expected version of every sector */
};

struct blk_queue;

struct blk_req {
	struct blk_queue *bq;
	bool busy;
	int type;
	uint64_t sector;
	uint32_t nsec;
	uint32_t bytes;   /* data bytes */
	uint32_t version; /* written version (writes) */
	struct blk_outhdr *hdr;
	uint64_t hdr_gpa;
	uint8_t *status;
	uint64_t status_gpa;
	struct blk_dwz *dwz;
	uint64_t dwz_gpa;
	uint8_t *data;
	uint64_t data_gpa;
};

struct blk_queue {
	struct blk_dev *bd;
	struct vmm_queue *q;
	struct blk_req *reqs;
	unsigned depth;
	unsigned inflight;
	uint64_t area_start, area_len; /* sectors */
	uint64_t rng;
	uint32_t next_version;
	uint64_t seq_pos; /* sectors into the area */
	bool readback;    /* verify: final read-back phase */
	uint64_t issued;
	uint64_t nreqs, bytes, errors, mismatches;
	uint64_t n_write, n_read, n_flush, n_discard, n_wz;
};

/* Contents of @sector at @version (0: zeroes, the image's initial state). */
static void fill_sector(uint8_t *p, uint64_t sector, uint32_t version)
{
	uint64_t *w = (uint64_t *)p;

	if (version == 0) {
		memset(p, 0, SECTOR);
		return;
	}
	for (unsigned i = 0; i < SECTOR / 8; i++)
		w[i] = vmm_mix((sector << 6 | i) ^ ((uint64_t)version << 40));
}

static bool check_sector(const uint8_t *p, uint64_t sector, uint32_t version)
{
	uint8_t want[SECTOR];

	if (version == VER_UNKNOWN)
		return true;
	fill_sector(want, sector, version);
	return memcmp(p, want, SECTOR) == 0;
}

static int read_config(struct blk_dev *bd)
{
	struct vmm_dev *dev = bd->dev;
	struct blk_config cfg;
	int r;

	r = vmm_vu_get_config(&dev->vu, 0, &cfg, sizeof(cfg));
	if (r < 0) {
		vmm_fail(dev, "virtio-blk: reading the config space: %s",
			 dev->vu.err);
		return r;
	}
	bd->capacity = cfg.capacity;
	if (bd->capacity == 0) {
		vmm_fail(dev, "virtio-blk: device capacity is 0");
		return -EINVAL;
	}
	if (vmm_has(dev, BLK_F_BLK_SIZE) && cfg.blk_size != SECTOR &&
	    bd->workload == W_VERIFY && bd->opts->min_bs < cfg.blk_size) {
		vmm_fail(dev,
			 "virtio-blk: logical block size %u; use --min-bs "
			 ">= %u",
			 cfg.blk_size, cfg.blk_size);
		return -EINVAL;
	}
	bd->seg_bytes = SEG_BYTES;
	if (vmm_has(dev, BLK_F_SIZE_MAX) && cfg.size_max >= SECTOR &&
	    cfg.size_max < bd->seg_bytes)
		bd->seg_bytes = cfg.size_max & ~(SECTOR - 1);
	{
		uint32_t segs = (bd->opts->max_bs + bd->seg_bytes - 1) /
				bd->seg_bytes;
		uint32_t limit = MAX_SEGS;

		if (vmm_has(dev, BLK_F_SEG_MAX) && cfg.seg_max < limit)
			limit = cfg.seg_max;
		if (limit == 0 || segs > limit ||
		    segs + 2 > bd->opts->queue_size) {
			vmm_fail(dev,
				 "virtio-blk: --max-bs %u needs %u segments of "
				 "%u bytes; the device allows %u and the queue "
				 "size is %u",
				 bd->opts->max_bs, segs, bd->seg_bytes, limit,
				 bd->opts->queue_size);
			return -EINVAL;
		}
	}
	if (vmm_has(dev, BLK_F_DISCARD) && cfg.max_discard_sectors &&
	    cfg.max_discard_seg)
		bd->max_discard = cfg.max_discard_sectors;
	if (vmm_has(dev, BLK_F_WRITE_ZEROES) && cfg.max_write_zeroes_sectors &&
	    cfg.max_write_zeroes_seg)
		bd->max_wz = cfg.max_write_zeroes_sectors;
	if (!bd->opts->quiet)
		fprintf(stderr,
			"vmm: virtio-blk capacity %" PRIu64 " sectors (%.1f "
			"MiB), blk_size %u, seg_max %u, size_max %u, queues "
			"%u, flush %d, discard %u, write-zeroes %u\n",
			cfg.capacity, (double)cfg.capacity / 2048, cfg.blk_size,
			cfg.seg_max, cfg.size_max, cfg.num_queues,
			vmm_has(dev, BLK_F_FLUSH), bd->max_discard, bd->max_wz);
	if (vmm_has(dev, BLK_F_MQ) && cfg.num_queues < dev->nq) {
		vmm_fail(dev, "virtio-blk: device has %u queues, %u requested",
			 cfg.num_queues, dev->nq);
		return -EINVAL;
	}
	if (!vmm_has(dev, BLK_F_MQ) && dev->nq > 1) {
		vmm_fail(dev, "virtio-blk: device does not offer "
			      "VIRTIO_BLK_F_MQ; use --queues=1");
		return -ENOTSUP;
	}
	if (vmm_has(dev, BLK_F_RO) && bd->workload != W_RANDREAD &&
	    bd->workload != W_SEQREAD) {
		vmm_fail(dev,
			 "virtio-blk: device is read-only (VIRTIO_BLK_F_RO)"
			 " but the workload writes");
		return -EROFS;
	}
	return 0;
}

static bool overlaps(struct blk_queue *bq, uint64_t s, uint32_t n)
{
	for (unsigned i = 0; i < bq->depth; i++) {
		struct blk_req *r = &bq->reqs[i];

		if (r->busy && r->nsec && s < r->sector + r->nsec &&
		    r->sector < s + n)
			return true;
	}
	return false;
}

static uint32_t random_bytes(struct blk_queue *bq)
{
	struct vmm_opts *o = bq->bd->opts;
	unsigned e = 9 + (unsigned)(vmm_rng(&bq->rng) % 12);
	uint64_t b = (1ULL << e) + vmm_rng(&bq->rng) % (1ULL << e);

	b &= ~(uint64_t)(SECTOR - 1);
	if (b < o->min_bs)
		b = o->min_bs;
	if (b > o->max_bs)
		b = o->max_bs;
	return (uint32_t)b;
}

/* Pick a type and a range for the verify workload. */
static int pick_verify(struct blk_queue *bq, struct blk_req *req)
{
	struct blk_dev *bd = bq->bd;
	struct vmm_dev *dev = bd->dev;
	unsigned dice = (unsigned)(vmm_rng(&bq->rng) % 100);
	uint32_t n;

	if (dice < 4 && vmm_has(dev, BLK_F_FLUSH)) {
		req->type = BLK_T_FLUSH;
		req->sector = 0;
		req->nsec = 0;
		return 0;
	}
	if (dice < 8 && bd->max_discard)
		req->type = BLK_T_DISCARD;
	else if (dice < 12 && bd->max_wz)
		req->type = BLK_T_WRITE_ZEROES;
	else if (dice < 56)
		req->type = BLK_T_OUT;
	else
		req->type = BLK_T_IN;
	n = random_bytes(bq) / SECTOR;
	if (req->type == BLK_T_DISCARD || req->type == BLK_T_WRITE_ZEROES) {
		uint32_t max = req->type == BLK_T_DISCARD ? bd->max_discard
							  : bd->max_wz;

		n = (n + 7) & ~7u; /* 4 KiB granularity */
		if (n > max)
			n = max & ~7u;
		if (n == 0) {
			req->type = BLK_T_OUT;
			n = 1;
		}
	}
	if (n > bq->area_len)
		n = (uint32_t)bq->area_len;
	for (int tries = 0; tries < 16; tries++) {
		uint64_t s = vmm_rng(&bq->rng) % (bq->area_len - n + 1);

		if (req->type == BLK_T_DISCARD ||
		    req->type == BLK_T_WRITE_ZEROES)
			s &= ~7ULL;
		s += bq->area_start;
		if (!overlaps(bq, s, n)) {
			req->sector = s;
			req->nsec = n;
			return 0;
		}
	}
	return -EAGAIN; /* the area is busy: wait for a completion */
}

static void pick_bench(struct blk_queue *bq, struct blk_req *req)
{
	struct blk_dev *bd = bq->bd;
	uint32_t n = bd->opts->bs / SECTOR;
	uint64_t slots = bq->area_len / n;

	req->type = (bd->workload == W_RANDREAD || bd->workload == W_SEQREAD)
			    ? BLK_T_IN
			    : BLK_T_OUT;
	req->nsec = n;
	if (bd->workload == W_RANDREAD || bd->workload == W_RANDWRITE) {
		req->sector = bq->area_start + (vmm_rng(&bq->rng) % slots) * n;
	} else {
		if (bq->seq_pos + n > bq->area_len)
			bq->seq_pos = 0;
		req->sector = bq->area_start + bq->seq_pos;
		bq->seq_pos += n;
	}
}

static int submit(struct blk_queue *bq, struct blk_req *req)
{
	struct blk_dev *bd = bq->bd;
	struct virtq_sg sg[MAX_SEGS + 2];
	unsigned out = 0, in = 0, nsg = 0;

	req->bytes = (req->type == BLK_T_IN || req->type == BLK_T_OUT)
			     ? req->nsec * SECTOR
			     : 0;
	req->hdr->type = (uint32_t)req->type;
	req->hdr->ioprio = 0;
	req->hdr->sector = req->type == BLK_T_FLUSH ? 0 : req->sector;
	*req->status = 0xff;
	sg[nsg++] = (struct virtq_sg){req->hdr_gpa, sizeof(*req->hdr)};
	out++;
	if (req->type == BLK_T_OUT && bd->workload == W_VERIFY) {
		req->version = bq->next_version++;
		if (bq->next_version == VER_UNKNOWN)
			bq->next_version = 1;
		for (uint32_t i = 0; i < req->nsec; i++)
			fill_sector(req->data + (size_t)i * SECTOR,
				    req->sector + i, req->version);
	}
	if (req->bytes) {
		for (uint32_t off = 0; off < req->bytes; off += bd->seg_bytes) {
			uint32_t len = req->bytes - off;

			if (len > bd->seg_bytes)
				len = bd->seg_bytes;
			sg[nsg++] = (struct virtq_sg){req->data_gpa + off, len};
			if (req->type == BLK_T_OUT)
				out++;
			else
				in++;
		}
	}
	if (req->type == BLK_T_DISCARD || req->type == BLK_T_WRITE_ZEROES) {
		req->dwz->sector = req->sector;
		req->dwz->num_sectors = req->nsec;
		req->dwz->flags = 0;
		sg[nsg++] = (struct virtq_sg){req->dwz_gpa, sizeof(*req->dwz)};
		out++;
	}
	sg[nsg++] = (struct virtq_sg){req->status_gpa, 1};
	in++;
	if (vmm_queue_submit(bq->q, sg, out, in, req) < 0)
		return -ENOSPC;
	req->busy = true;
	bq->inflight++;
	bq->issued++;
	/* The model changes when the request is issued: nothing overlapping
	 * is in flight, so the next read of these sectors comes after it. */
	if (bd->workload == W_VERIFY) {
		uint32_t v = req->type == BLK_T_OUT            ? req->version
			     : req->type == BLK_T_WRITE_ZEROES ? 0
			     : req->type == BLK_T_DISCARD      ? VER_UNKNOWN
							       : 0;

		if (req->type == BLK_T_OUT || req->type == BLK_T_WRITE_ZEROES ||
		    req->type == BLK_T_DISCARD)
			for (uint32_t i = 0; i < req->nsec; i++)
				bd->ver[req->sector + i] = v;
	}
	return 0;
}

static const char *type_name(int type)
{
	switch (type) {
	case BLK_T_IN:
		return "read";
	case BLK_T_OUT:
		return "write";
	case BLK_T_FLUSH:
		return "flush";
	case BLK_T_DISCARD:
		return "discard";
	case BLK_T_WRITE_ZEROES:
		return "write-zeroes";
	}
	return "?";
}

static int complete(struct vmm_queue *q, void *token, uint32_t len)
{
	struct blk_req *req = token;
	struct blk_queue *bq = req->bq;
	struct blk_dev *bd = bq->bd;
	uint32_t want_len = req->type == BLK_T_IN ? req->bytes + 1 : 1;

	req->busy = false;
	bq->inflight--;
	if (*req->status != BLK_S_OK) {
		bq->errors++;
		vmm_fail(q->dev,
			 "virtio-blk: queue %u: %s of %u sector(s) at %" PRIu64
			 " failed with status %u",
			 q->idx, type_name(req->type), req->nsec, req->sector,
			 *req->status);
		return -EIO;
	}
	if (len != want_len) {
		bq->errors++;
		vmm_fail(q->dev,
			 "virtio-blk: queue %u: %s of %u bytes completed with "
			 "used.len %u, expected %u",
			 q->idx, type_name(req->type), req->bytes, len,
			 want_len);
		return -EIO;
	}
	if (req->type == BLK_T_IN && bd->workload == W_VERIFY) {
		for (uint32_t i = 0; i < req->nsec; i++) {
			uint64_t s = req->sector + i;

			if (!check_sector(req->data + (size_t)i * SECTOR, s,
					  bd->ver[s])) {
				bq->mismatches++;
				vmm_fail(q->dev,
					 "DATA MISMATCH: queue %u read of "
					 "sector "
					 "%" PRIu64 " (request at %" PRIu64
					 ", %u sectors) does not hold version "
					 "%u%s",
					 q->idx, s, req->sector, req->nsec,
					 bd->ver[s],
					 bd->ver[s]
						 ? ""
						 : " (zeroes: the verify "
						   "workload needs a freshly "
						   "zeroed image)");
				return -EIO;
			}
		}
	}
	switch (req->type) {
	case BLK_T_IN:
		bq->n_read++;
		break;
	case BLK_T_OUT:
		bq->n_write++;
		break;
	case BLK_T_FLUSH:
		bq->n_flush++;
		break;
	case BLK_T_DISCARD:
		bq->n_discard++;
		break;
	case BLK_T_WRITE_ZEROES:
		bq->n_wz++;
		break;
	}
	bq->nreqs++;
	bq->bytes += req->bytes;
	atomic_fetch_add_explicit(&q->done_reqs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&q->done_bytes, req->bytes,
				  memory_order_relaxed);
	return 0;
}

static struct blk_req *free_req(struct blk_queue *bq)
{
	for (unsigned i = 0; i < bq->depth; i++)
		if (!bq->reqs[i].busy)
			return &bq->reqs[i];
	return NULL;
}

/* Run one phase: keep @depth requests in flight until @more says stop. */
static int run_phase(struct blk_queue *bq, uint64_t limit, double deadline)
{
	struct vmm_dev *dev = bq->bd->dev;
	uint64_t start = bq->issued;

	for (;;) {
		bool more = !vmm_failed(dev);
		int r;

		while (more && bq->inflight < bq->depth) {
			struct blk_req *req;

			if ((limit && bq->issued - start >= limit) ||
			    (deadline > 0 && vmm_now() >= deadline)) {
				more = false;
				break;
			}
			req = free_req(bq);
			if (bq->readback) {
				uint32_t n = bq->bd->opts->max_bs / SECTOR;

				if (bq->seq_pos >= bq->area_len) {
					more = false;
					break;
				}
				if (n > bq->area_len - bq->seq_pos)
					n = (uint32_t)(bq->area_len -
						       bq->seq_pos);
				req->type = BLK_T_IN;
				req->sector = bq->area_start + bq->seq_pos;
				req->nsec = n;
				bq->seq_pos += n;
			} else if (bq->bd->workload == W_VERIFY) {
				if (pick_verify(bq, req) < 0)
					break;
			} else {
				pick_bench(bq, req);
			}
			if (submit(bq, req) < 0) {
				/* Ring full; undo a sequential step. */
				if (bq->readback)
					bq->seq_pos -= req->nsec;
				break;
			}
		}
		vmm_queue_kick(bq->q);
		if (bq->inflight == 0 && (!more || vmm_failed(dev)))
			return vmm_failed(dev) ? -EIO : 0;
		r = vmm_queue_wait(bq->q);
		if (r < 0)
			return r;
	}
}

static void *blk_thread(void *arg)
{
	struct blk_queue *bq = arg;
	struct vmm_opts *o = bq->bd->opts;
	double deadline = o->time_s > 0 ? vmm_now() + o->time_s : 0;

	if (run_phase(bq, o->ops, deadline) < 0)
		return NULL;
	if (bq->bd->workload == W_VERIFY) {
		/* Everything written is now read back through the device. */
		bq->readback = true;
		bq->seq_pos = 0;
		run_phase(bq, 0, 0);
	}
	return NULL;
}

/* Compare the image file on the host with the model. */
static int check_image(struct blk_dev *bd, const char *path)
{
	struct vmm_dev *dev = bd->dev;
	const size_t chunk = 1 << 20;
	uint8_t *buf;
	uint64_t s = 0, checked = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		vmm_fail(dev, "cannot open image %s: %s", path,
			 strerror(errno));
		return -errno;
	}
	buf = malloc(chunk);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (s < bd->capacity && ret == 0) {
		uint64_t n = bd->capacity - s;
		ssize_t got;

		if (n > chunk / SECTOR)
			n = chunk / SECTOR;
		got = pread(fd, buf, n * SECTOR, (off_t)(s * SECTOR));
		if (got != (ssize_t)(n * SECTOR)) {
			vmm_fail(dev, "short read of image %s at %" PRIu64,
				 path, s * SECTOR);
			ret = -EIO;
			break;
		}
		for (uint64_t i = 0; i < n; i++) {
			if (bd->ver[s + i] == VER_UNKNOWN)
				continue;
			checked++;
			if (!check_sector(buf + i * SECTOR, s + i,
					  bd->ver[s + i])) {
				vmm_fail(dev,
					 "DATA MISMATCH: image file %s sector "
					 "%" PRIu64 " does not hold version %u",
					 path, s + i, bd->ver[s + i]);
				ret = -EIO;
				break;
			}
		}
		s += n;
	}
	free(buf);
	close(fd);
	if (ret == 0)
		printf("verify: image file %s: %" PRIu64 " sectors match "
		       "(%" PRIu64 " discarded sectors skipped)\n",
		       path, checked, bd->capacity - checked);
	return ret;
}

static int parse_workload(const char *w, enum blk_workload *out)
{
	static const char *const names[] = {"verify", "randread", "randwrite",
					    "seqread", "seqwrite"};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(w, names[i])) {
			*out = (enum blk_workload)i;
			return 0;
		}
	}
	return -EINVAL;
}

int vmm_blk_run(struct vmm_dev *dev, struct vmm_opts *o)
{
	const uint64_t wants =
		(1ULL << BLK_F_SIZE_MAX) | (1ULL << BLK_F_SEG_MAX) |
		(1ULL << BLK_F_RO) | (1ULL << BLK_F_BLK_SIZE) |
		(1ULL << BLK_F_FLUSH) | (1ULL << BLK_F_MQ) |
		(1ULL << BLK_F_DISCARD) | (1ULL << BLK_F_WRITE_ZEROES) |
		(1ULL << VIRTQ_F_INDIRECT_DESC) | (1ULL << VIRTQ_F_EVENT_IDX) |
		(1ULL << VIRTQ_F_VERSION_1);
	struct blk_dev bd = {.dev = dev, .opts = o};
	struct blk_queue bqs[VMM_MAX_QUEUES];
	struct vmm_summary sum = {0};
	uint64_t ram, per_slot;
	double t0;
	int r;

	if (parse_workload(o->workload, &bd.workload) < 0) {
		fprintf(stderr, "unknown blk workload '%s'\n", o->workload);
		return -EINVAL;
	}
	if (bd.workload == W_VERIFY) {
		if (o->min_bs < SECTOR || o->max_bs < o->min_bs ||
		    o->min_bs % SECTOR || o->max_bs % SECTOR) {
			fprintf(stderr, "bad --min-bs/--max-bs\n");
			return -EINVAL;
		}
	} else {
		if (o->bs < SECTOR || o->bs % SECTOR) {
			fprintf(stderr, "bad --bs\n");
			return -EINVAL;
		}
		o->max_bs = o->bs;
	}
	if (o->queues < 1 || o->queues > VMM_MAX_QUEUES) {
		fprintf(stderr, "--queues must be 1..%d\n", VMM_MAX_QUEUES);
		return -EINVAL;
	}

	r = vmm_dev_open(dev, o, wants, o->queues);
	if (r < 0)
		return r;
	r = read_config(&bd);
	if (r < 0)
		return r;

	per_slot = o->max_bs + 4096;
	ram = o->mem_size;
	if (!ram)
		ram = (16ULL << 20) +
		      (uint64_t)o->queues * o->depth * per_slot +
		      (uint64_t)o->queues * o->queue_size * 64 * 16 +
		      (uint64_t)o->queues * 3 * 16 * o->queue_size;
	ram = (ram + (2 << 20) - 1) & ~((2ULL << 20) - 1);
	r = vmm_dev_start(dev, ram);
	if (r < 0)
		return r;

	if (bd.workload == W_VERIFY) {
		bd.ver = calloc(bd.capacity, sizeof(*bd.ver));
		if (!bd.ver)
			return -ENOMEM;
	}
	for (unsigned i = 0; i < o->queues; i++) {
		struct blk_queue *bq = &bqs[i];

		memset(bq, 0, sizeof(*bq));
		bq->bd = &bd;
		bq->q = &dev->q[i];
		bq->q->complete = complete;
		bq->q->priv = bq;
		bq->depth = o->depth;
		bq->area_len = (bd.capacity / o->queues) & ~7ULL;
		bq->area_start = bq->area_len * i;
		bq->rng = vmm_mix(o->seed + i + 1) | 1;
		bq->next_version = 1 + (uint32_t)(vmm_rng(&bq->rng) % 1000);
		if (bq->area_len < o->max_bs / SECTOR) {
			vmm_fail(dev,
				 "virtio-blk: disk too small: %" PRIu64
				 " sectors per queue, --max-bs is %u bytes",
				 bq->area_len, o->max_bs);
			return -EINVAL;
		}
		bq->reqs = calloc(bq->depth, sizeof(*bq->reqs));
		if (!bq->reqs)
			return -ENOMEM;
		for (unsigned k = 0; k < bq->depth; k++) {
			struct blk_req *req = &bq->reqs[k];
			uint64_t small = vmm_guest_alloc(&dev->mem, 64, 64);

			req->bq = bq;
			req->data_gpa =
				vmm_guest_alloc(&dev->mem, o->max_bs, 4096);
			if (!small || !req->data_gpa) {
				vmm_fail(dev, "guest RAM too small (--mem)");
				return -ENOMEM;
			}
			req->hdr_gpa = small;
			req->dwz_gpa = small + 16;
			req->status_gpa = small + 32;
			req->hdr = vmm_gpa_to_hva(&dev->mem, req->hdr_gpa);
			req->dwz = vmm_gpa_to_hva(&dev->mem, req->dwz_gpa);
			req->status =
				vmm_gpa_to_hva(&dev->mem, req->status_gpa);
			req->data = vmm_gpa_to_hva(&dev->mem, req->data_gpa);
			if (bd.workload != W_VERIFY)
				memset(req->data, 0x5a, o->max_bs);
		}
	}

	if (!o->quiet)
		fprintf(stderr,
			"vmm: blk workload %s, isolation %s, %u queue(s), "
			"depth %u, %s %u..%u bytes\n",
			o->workload, o->isolation ? "on" : "off", o->queues,
			o->depth, bd.workload == W_VERIFY ? "sizes" : "bs",
			bd.workload == W_VERIFY ? o->min_bs : o->bs, o->max_bs);
	t0 = vmm_now();
	for (unsigned i = 0; i < o->queues; i++) {
		if (pthread_create(&dev->q[i].thread, NULL, blk_thread,
				   &bqs[i]) != 0) {
			vmm_fail(dev, "pthread_create failed");
			for (unsigned k = 0; k < i; k++)
				pthread_join(dev->q[k].thread, NULL);
			return -EAGAIN;
		}
	}
	vmm_join_queues(dev, 0, o->queues, t0);
	sum.seconds = vmm_now() - t0;

	for (unsigned i = 0; i < o->queues; i++) {
		struct blk_queue *bq = &bqs[i];

		sum.requests += bq->nreqs;
		sum.bytes += bq->bytes;
		sum.errors += bq->errors + bq->mismatches;
		if (!o->quiet || bd.workload == W_VERIFY) {
			printf("queue %u: %" PRIu64 " requests (%" PRIu64
			       " writes, %" PRIu64 " reads, %" PRIu64
			       " flushes, %" PRIu64 " discards, %" PRIu64
			       " write-zeroes)\n",
			       i, bq->nreqs, bq->n_write, bq->n_read,
			       bq->n_flush, bq->n_discard, bq->n_wz);
			vmm_queue_print_stats(&dev->q[i]);
		}
	}
	if (vmm_failed(dev))
		sum.errors += sum.errors ? 0 : 1;

	r = 0;
	if (!vmm_failed(dev) && bd.workload == W_VERIFY) {
		uint64_t total = 0;

		for (unsigned i = 0; i < o->queues; i++)
			total += bqs[i].area_len;
		printf("verify: every read matched; %" PRIu64 " sectors (%.1f "
		       "MiB) read back through the device and matched\n",
		       total, (double)total / 2048);
		if (o->image)
			r = check_image(&bd, o->image);
	}
	if (!vmm_failed(dev))
		r = vmm_isolation_proof(dev);
	if (r == -EPERM)
		vmm_fail(dev, "isolation proof failed");
	if (vmm_dev_stop(dev) < 0 && r == 0)
		r = -EIO;
	sum.what = "blk";
	vmm_print_summary(dev, &sum);
	for (unsigned i = 0; i < o->queues; i++)
		free(bqs[i].reqs);
	free(bd.ver);
	return vmm_failed(dev) ? -EIO : r;
}
