/* SPDX-License-Identifier: MIT */
/*
 * virtio-net driver and workloads (VIRTIO 1.2, 5.1) against a real net
 * back-end: dpdk-testpmd's net_vhost PMD, which forwards every packet back
 * on the queue pair it came in on (io: as is; macswap: MAC addresses
 * swapped).  Without --socket the VMM starts testpmd itself (testpmd.c).
 *
 * Queues.  Pair k is virtqueue 2k (receive) and 2k + 1 (transmit); one
 * thread drives both.  Those go to the back-end, through libvuiso when
 * isolated.  The control queue (index 2 * pairs) never does: as in QEMU,
 * the VMM is the device for it (ctrl_* below), and VQ_PAIRS_SET turns into
 * SET_VRING_ENABLE messages for the back-end's rings.
 *
 * Buffers.  Every frame goes out as one buffer: the 12-byte virtio-net
 * header (VERSION_1 always carries num_buffers) followed by the frame.
 * Receive buffers are --rx-buf bytes each; with VIRTIO_NET_F_MRG_RXBUF a
 * packet may span several (num_buffers in the first header), without it
 * each buffer holds the largest frame.
 *
 * Workloads.
 *   verify: --ops frames per pair (default 20000), sizes 60..1518 bytes at
 *           random (or --frame), each carrying a sequence number and a
 *           pattern derived from it; every byte of every frame that comes
 *           back is checked, in order, and each pair checks its own.
 *   rate:   fixed --frame (default 64) for --time seconds; the header of
 *           each frame that comes back is checked (sequence, length,
 *           addresses), not its payload, so that the figure is the data
 *           path's.
 * At most --window frames per pair are out at a time (default: what the
 * posted receive buffers can always take), so testpmd never finds the
 * receive ring full: a frame that does not come back is a loss, and a
 * failure unless testpmd's own counters say that it dropped it.
 */
#include "vmm.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define NET_F_MAC 5
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS 16
#define NET_F_CTRL_VQ 17
#define NET_F_MQ 22

#define NET_CTRL_MQ 4
#define NET_CTRL_MQ_VQ_PAIRS_SET 0
#define NET_OK 0
#define NET_ERR 1

#define NET_HDR_LEN 12
#define FRAME_MIN 60   /* Ethernet minimum, without the FCS */
#define FRAME_MAX 1518 /* Ethernet maximum, without the FCS */
#define ETH_HLEN 14
#define ETHERTYPE 0x88b5 /* IEEE 802 local experimental */
#define MAGIC 0x5655494e /* "VUIN" */
/* Ethernet header + struct net_tag: the part "rate" checks. */
#define TAG_END (ETH_HLEN + (unsigned)sizeof(struct net_tag))
/* How long a pair waits, with every frame transmitted, for the frames
 * still out before it counts them lost. */
#define DRAIN_TIMEOUT_S 2.0

/* struct virtio_net_hdr_mrg_rxbuf */
struct net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
} __attribute__((packed));

_Static_assert(sizeof(struct net_hdr) == NET_HDR_LEN, "virtio_net_hdr");

/* What follows the Ethernet header in every frame. */
struct net_tag {
	uint32_t magic;
	uint16_t pair;
	uint16_t len; /* frame bytes */
	uint64_t seq;
} __attribute__((packed));

enum net_workload { W_VERIFY, W_RATE };

struct net_buf {
	uint8_t *hva;
	uint64_t gpa;
};

struct net_dev {
	struct vmm_dev *dev;
	struct vmm_opts *o;
	enum net_workload workload;
	unsigned pairs;
	bool mrg;           /* VIRTIO_NET_F_MRG_RXBUF negotiated */
	uint32_t rx_buf;    /* bytes per receive buffer */
	uint32_t frame_min; /* frame sizes sent */
	uint32_t frame_max;
	unsigned window; /* frames out per pair */
	uint8_t mac[6];  /* the device's (config space) */
	uint8_t peer[6]; /* destination of every frame */
	/* The control queue: the driver's ring and the device's view. */
	bool has_ctrl;
	struct virtq ctrl;
	struct net_buf ctrl_buf;
	uint16_t ctrl_avail;    /* device: next entry / position to take */
	bool ctrl_avail_wrap;   /* packed: its wrap counter */
	uint16_t ctrl_used;     /* device: next used entry / position */
	bool ctrl_used_wrap;    /* packed */
	unsigned ctrl_commands; /* commands the device answered */
	double t0;              /* start of the workload */
};

struct net_pair {
	struct net_dev *nd;
	unsigned idx;
	struct vmm_queue *rx, *tx;
	uint64_t rng;
	struct net_buf *tx_bufs, *rx_bufs;
	struct net_buf **tx_free, **rx_free; /* stacks */
	unsigned n_tx_free, n_rx_free;
	/* The packet being received (several buffers with MRG_RXBUF). */
	uint8_t *pkt;
	uint32_t pkt_len;
	unsigned bufs_left;
	unsigned pkt_bufs;
	/* Sequence numbers: sent [0, next_seq), received up to expect. */
	uint64_t next_seq, expect_seq, limit;
	uint64_t received, lost, first_lost, bytes, merged;
	double first_lost_at;    /* seconds into the run */
	bool first_lost_timeout; /* noticed by the drain timeout */
	/* --reconnect: frames sent before the last back-end restart
	 * ([0, horizon)) may be lost with the dead back-end, or come back
	 * twice (libvuiso replays what it never saw completed). */
	unsigned gen; /* dev->generation seen */
	uint64_t horizon, lost_restart, twice;
	double deadline;
};

/* ---- frames ---- */

static uint64_t pattern_word(const struct net_pair *p, uint64_t seq,
			     unsigned word)
{
	return vmm_mix(seq * 0x9e3779b97f4a7c15ULL ^ (uint64_t)p->idx << 56 ^
		       word);
}

/* The frame with sequence number @seq: @len bytes at @f. */
static void build_frame(struct net_pair *p, uint8_t *f, uint64_t seq,
			uint32_t len)
{
	const struct net_dev *nd = p->nd;
	struct net_tag tag = {.magic = MAGIC,
			      .pair = (uint16_t)p->idx,
			      .len = (uint16_t)len,
			      .seq = seq};

	memcpy(f, nd->peer, 6);
	memcpy(f + 6, nd->mac, 6);
	f[12] = ETHERTYPE >> 8;
	f[13] = ETHERTYPE & 0xff;
	memcpy(f + ETH_HLEN, &tag, sizeof(tag));
	if (nd->workload == W_RATE)
		return; /* the buffer keeps its fill; only the tag changes */
	for (unsigned off = TAG_END, w = 0; off < len; off += 8, w++) {
		uint64_t v = pattern_word(p, seq, w);
		unsigned n = len - off < 8 ? len - off : 8;

		memcpy(f + off, &v, n);
	}
}

/* On the pair's thread: a new back-end since the last look (the thread
 * parked in vmm_queues_wait() meanwhile, and sent nothing). */
static void note_restart(struct net_pair *p)
{
	if (p->gen == p->nd->dev->generation)
		return;
	p->gen = p->nd->dev->generation;
	p->horizon = p->next_seq;
}

/* Frames [expect_seq, @upto) did not come back. */
static void count_lost(struct net_pair *p, uint64_t upto)
{
	uint64_t restart = 0;

	if (p->expect_seq < p->horizon)
		restart = (upto < p->horizon ? upto : p->horizon) -
			  p->expect_seq;
	p->lost_restart += restart;
	if (upto - p->expect_seq > restart) {
		if (!p->lost) {
			p->first_lost = p->expect_seq + restart;
			p->first_lost_at = vmm_now() - p->nd->t0;
			p->first_lost_timeout = upto == p->next_seq;
		}
		p->lost += upto - p->expect_seq - restart;
	}
	p->expect_seq = upto;
}

/* Check a frame that came back; 0, or -EIO after vmm_fail(). */
static int check_frame(struct net_pair *p, const uint8_t *f, uint32_t len)
{
	struct net_dev *nd = p->nd;
	struct vmm_dev *dev = nd->dev;
	const uint8_t *dst = nd->o->macswap ? nd->mac : nd->peer;
	const uint8_t *src = nd->o->macswap ? nd->peer : nd->mac;
	struct net_tag tag;

	if (len < TAG_END) {
		vmm_fail(dev,
			 "net pair %u: a %u-byte frame came back, shorter "
			 "than any sent",
			 p->idx, len);
		return -EIO;
	}
	note_restart(p);
	memcpy(&tag, f + ETH_HLEN, sizeof(tag));
	if (memcmp(f, dst, 6) || memcmp(f + 6, src, 6) ||
	    f[12] != ETHERTYPE >> 8 || f[13] != (ETHERTYPE & 0xff) ||
	    tag.magic != MAGIC || tag.pair != p->idx || tag.len != len) {
		vmm_fail(dev,
			 "net pair %u: a frame came back with a wrong header "
			 "(%u bytes; pair %u, length field %u, magic 0x%08x, "
			 "destination %02x:%02x:%02x:%02x:%02x:%02x; "
			 "--net-fwd=%s expected)",
			 p->idx, len, tag.pair, tag.len, tag.magic, f[0], f[1],
			 f[2], f[3], f[4], f[5],
			 nd->o->macswap ? "macswap" : "io");
		return -EIO;
	}
	if (tag.seq < p->expect_seq && tag.seq < p->horizon) {
		p->twice++; /* sent again by a replay */
		return 0;
	}
	if (tag.seq >= p->next_seq || tag.seq < p->expect_seq) {
		vmm_fail(dev,
			 "net pair %u: frame %" PRIu64 " came back %s (next "
			 "expected %" PRIu64 ", %" PRIu64 " sent)",
			 p->idx, tag.seq,
			 tag.seq >= p->next_seq ? "but was never sent"
						: "twice or out of order",
			 p->expect_seq, p->next_seq);
		return -EIO;
	}
	if (tag.seq > p->expect_seq)
		count_lost(p, tag.seq);
	p->expect_seq = tag.seq + 1;
	if (nd->workload == W_VERIFY) {
		for (unsigned off = TAG_END, w = 0; off < len; off += 8, w++) {
			uint64_t v = pattern_word(p, tag.seq, w);
			unsigned n = len - off < 8 ? len - off : 8;

			if (!memcmp(f + off, &v, n))
				continue;
			vmm_fail(dev,
				 "net pair %u: frame %" PRIu64 " (%u bytes) "
				 "came back with different bytes at offset "
				 "%u..%u",
				 p->idx, tag.seq, len, off, off + n - 1);
			return -EIO;
		}
	}
	p->received++;
	p->bytes += len;
	atomic_fetch_add_explicit(&p->rx->done_reqs, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&p->rx->done_bytes, len,
				  memory_order_relaxed);
	return 0;
}

/* ---- data path, on the pair's thread ---- */

static int rx_complete(struct vmm_queue *q, void *token, uint32_t len)
{
	struct net_pair *p = q->priv;
	struct net_dev *nd = p->nd;
	struct net_buf *b = token;
	const uint8_t *data = b->hva;
	uint32_t n = len;

	p->rx_free[p->n_rx_free++] = b;
	if (!p->bufs_left) {
		struct net_hdr hdr;

		if (len < NET_HDR_LEN) {
			vmm_fail(nd->dev,
				 "net pair %u: the device used a receive "
				 "buffer for %u bytes, less than the %u-byte "
				 "virtio-net header",
				 p->idx, len, NET_HDR_LEN);
			return -EIO;
		}
		memcpy(&hdr, data, sizeof(hdr));
		/* Without MRG_RXBUF a packet is one buffer, whatever the
		 * field says (VIRTIO 1.2, 5.1.6.4). */
		p->pkt_bufs = nd->mrg ? hdr.num_buffers : 1;
		if (p->pkt_bufs < 1 || p->pkt_bufs > q->vq.num) {
			vmm_fail(nd->dev,
				 "net pair %u: num_buffers %u in a received "
				 "header (1..%u allowed)",
				 p->idx, hdr.num_buffers, q->vq.num);
			return -EIO;
		}
		p->bufs_left = p->pkt_bufs;
		p->pkt_len = 0;
		data += NET_HDR_LEN;
		n -= NET_HDR_LEN;
	}
	if (n > FRAME_MAX - p->pkt_len) {
		vmm_fail(nd->dev,
			 "net pair %u: a received packet grew past %u bytes "
			 "(%u buffers), longer than any frame sent",
			 p->idx, FRAME_MAX, p->pkt_bufs);
		return -EIO;
	}
	/* "rate" needs only the header of each frame. */
	if (nd->workload == W_VERIFY || p->pkt_len < TAG_END)
		memcpy(p->pkt + p->pkt_len, data, n);
	p->pkt_len += n;
	if (--p->bufs_left)
		return 0;
	p->merged += p->pkt_bufs > 1;
	return check_frame(p, p->pkt, p->pkt_len);
}

static int tx_complete(struct vmm_queue *q, void *token, uint32_t len)
{
	struct net_pair *p = q->priv;

	(void)len; /* transmit buffers have no device-writable part */
	p->tx_free[p->n_tx_free++] = token;
	return 0;
}

/* Post every free receive buffer; kick if the device wants it. */
static int rx_refill(struct net_pair *p)
{
	unsigned added = 0;

	while (p->n_rx_free) {
		struct net_buf *b = p->rx_free[p->n_rx_free - 1];
		struct virtq_sg sg = {.gpa = b->gpa, .len = p->nd->rx_buf};
		int r = vmm_queue_submit(p->rx, &sg, 0, 1, b);

		if (r == -ENOSPC)
			break;
		if (r < 0) {
			vmm_fail(p->nd->dev, "net pair %u: receive buffer: %s",
				 p->idx, strerror(-r));
			return -EIO;
		}
		p->n_rx_free--;
		added++;
	}
	if (added)
		vmm_queue_kick(p->rx);
	return 0;
}

static uint32_t frame_len(struct net_pair *p)
{
	const struct net_dev *nd = p->nd;

	if (nd->frame_min == nd->frame_max)
		return nd->frame_min;
	return nd->frame_min + (uint32_t)(vmm_rng(&p->rng) %
					  (nd->frame_max - nd->frame_min + 1));
}

static bool sending(const struct net_pair *p)
{
	if (p->limit && p->next_seq >= p->limit)
		return false;
	return !p->deadline || vmm_now() < p->deadline;
}

/* Send what the window and the transmit ring allow. */
static int tx_fill(struct net_pair *p)
{
	unsigned added = 0;

	while (p->n_tx_free && sending(p) &&
	       p->next_seq - p->expect_seq < p->nd->window) {
		struct net_buf *b = p->tx_free[p->n_tx_free - 1];
		uint32_t len = frame_len(p);
		struct virtq_sg sg = {.gpa = b->gpa, .len = NET_HDR_LEN + len};
		int r;

		memset(b->hva, 0, NET_HDR_LEN);
		build_frame(p, b->hva + NET_HDR_LEN, p->next_seq, len);
		r = vmm_queue_submit(p->tx, &sg, 1, 0, b);
		if (r == -ENOSPC)
			break;
		if (r < 0) {
			vmm_fail(p->nd->dev, "net pair %u: transmit: %s",
				 p->idx, strerror(-r));
			return -EIO;
		}
		p->n_tx_free--;
		p->next_seq++;
		added++;
	}
	if (added)
		vmm_queue_kick(p->tx);
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * The rate of each VMM_INTERVAL_S of the run (the first left out), and
 * their upper quartile and median.  On a VM whose cache latency between
 * the two CPUs changes regime within seconds (bench-net.sh), the upper
 * quartile is the rate the run held while the regime was fast.
 */
static void print_intervals(const struct vmm_dev *dev)
{
	double r[VMM_MAX_INTERVALS];
	unsigned n = dev->nintervals;

	if (!n)
		return;
	printf("net: Mpps per %.1f s (the first left out):", VMM_INTERVAL_S);
	for (unsigned i = 0; i < n; i++) {
		r[i] = dev->interval_rate[i] / 1e6;
		printf(" %.3f", r[i]);
	}
	qsort(r, n, sizeof(r[0]), cmp_double);
	printf("\nnet: intervals=%u Mpps-p75=%.3f Mpps-median=%.3f\n", n,
	       r[(3 * (n - 1)) / 4], r[(n - 1) / 2]);
}

static void *pair_thread(void *arg)
{
	struct net_pair *p = arg;
	struct vmm_queue *qs[2] = {p->rx, p->tx};
	double idle_since = 0;

	while (!vmm_failed(p->nd->dev)) {
		int r;

		if (rx_refill(p) < 0 || tx_fill(p) < 0)
			break;
		if (p->tx->vq.inflight) {
			r = vmm_queues_wait(qs, 2);
		} else if (p->expect_seq != p->next_seq) {
			/* Every frame left the transmit ring and some are
			 * still out (the window is full, or all are sent):
			 * they come back within the timeout or are lost. */
			double now = vmm_now();

			r = vmm_queues_wait_for(qs, 2, 0.1);
			if (r == 0 && !idle_since) {
				idle_since = now;
			} else if (r == 0 &&
				   now - idle_since > DRAIN_TIMEOUT_S) {
				note_restart(p);
				count_lost(p, p->next_seq);
			}
		} else if (!sending(p)) {
			break;
		} else {
			continue;
		}
		if (r < 0)
			break;
		if (r > 0)
			idle_since = 0;
	}
	return NULL;
}

/* ---- the control queue: the VMM is the device ---- */

struct ctrl_req {
	uint8_t cmd[64]; /* class, command, data */
	uint32_t cmd_len;
	uint8_t *ack; /* the first device-writable byte */
	uint16_t id;  /* split: head; packed: buffer id */
	unsigned ndesc;
};

/* One descriptor of a control command: device-readable bytes first, then
 * the one-byte ack. */
static int ctrl_take(struct net_dev *nd, struct ctrl_req *req, uint64_t addr,
		     uint32_t len, uint16_t flags)
{
	uint8_t *hva;

	if (!len)
		return 0;
	hva = vmm_guest_map(&nd->dev->mem, addr, len);
	if (!hva)
		return -EFAULT;
	if (flags & VIRTQ_DESC_F_WRITE) {
		if (!req->ack)
			req->ack = hva;
		return 0;
	}
	if (req->ack || len > sizeof(req->cmd) - req->cmd_len)
		return -EINVAL;
	memcpy(req->cmd + req->cmd_len, hva, len);
	req->cmd_len += len;
	return 0;
}

/* An indirect table: split descriptors linked by next, or packed ones in
 * order (VIRTIO 1.2, 2.7.5.3 and 2.8.19). */
static int ctrl_indirect(struct net_dev *nd, struct ctrl_req *req,
			 uint64_t addr, uint32_t len)
{
	const bool packed = nd->ctrl.layout == VIRTQ_LAYOUT_PACKED;
	unsigned n = len / 16, i = 0;
	const uint8_t *table;

	if (len % 16 || n == 0 || n > VMM_MAX_INDIRECT)
		return -EINVAL;
	table = vmm_guest_map(&nd->dev->mem, addr, len);
	if (!table)
		return -EFAULT;
	for (unsigned seen = 0;; seen++) {
		uint64_t a;
		uint32_t l;
		uint16_t flags, next;
		int r;

		if (seen == n || i >= n)
			return -ELOOP;
		/* addr, len; split: flags, next; packed: id, flags */
		memcpy(&a, table + 16 * i, 8);
		memcpy(&l, table + 16 * i + 8, 4);
		memcpy(&flags, table + 16 * i + (packed ? 14 : 12), 2);
		memcpy(&next, table + 16 * i + 14, 2);
		if (flags & VIRTQ_DESC_F_INDIRECT)
			return -EINVAL;
		r = ctrl_take(nd, req, a, l, flags);
		if (r < 0)
			return r;
		if (packed ? i + 1 == n : !(flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = packed ? i + 1 : next;
	}
}

/* Split: take the next chain; 1, 0 when none, -errno for a bad one. */
static int ctrl_pop_split(struct net_dev *nd, struct ctrl_req *req)
{
	struct virtq *vq = &nd->ctrl;
	struct vmm_guest_mem *mem = &nd->dev->mem;
	struct virtq_split_avail *avail =
		vmm_guest_map(mem, vq->gpa.driver, 4 + 2ULL * vq->num);
	struct virtq_split_desc *desc =
		vmm_guest_map(mem, vq->gpa.desc, 16ULL * vq->num);
	uint16_t idx, head;

	if (!avail || !desc)
		return -EFAULT;
	idx = __atomic_load_n(&avail->idx, __ATOMIC_ACQUIRE);
	if (idx == nd->ctrl_avail)
		return 0;
	if ((uint16_t)(idx - nd->ctrl_avail) > vq->num)
		return -EINVAL;
	head = avail->ring[nd->ctrl_avail % vq->num];
	nd->ctrl_avail++;
	if (head >= vq->num)
		return -EINVAL;
	req->id = head;
	req->ndesc = 1;
	for (unsigned n = 0, i = head;; n++) {
		struct virtq_split_desc d;
		int r;

		if (n == vq->num)
			return -ELOOP;
		memcpy(&d, &desc[i], sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (n || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EINVAL;
			r = ctrl_indirect(nd, req, d.addr, d.len);
			return r < 0 ? r : 1;
		}
		r = ctrl_take(nd, req, d.addr, d.len, d.flags);
		if (r < 0)
			return r;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 1;
		i = d.next;
		if (i >= vq->num)
			return -EINVAL;
	}
}

static void ctrl_push_split(struct net_dev *nd, const struct ctrl_req *req,
			    uint32_t written)
{
	struct virtq *vq = &nd->ctrl;
	struct virtq_split_used *used = vmm_guest_map(
		&nd->dev->mem, vq->gpa.device, 6 + 8ULL * vq->num);

	used->ring[nd->ctrl_used % vq->num].id = req->id;
	used->ring[nd->ctrl_used % vq->num].len = written;
	nd->ctrl_used++;
	/* avail_event: notify us for the next entry (EVENT_IDX). */
	memcpy(&used->ring[vq->num], &nd->ctrl_avail, 2);
	__atomic_store_n(&used->idx, nd->ctrl_used, __ATOMIC_RELEASE);
}

static void advance(uint16_t *pos, bool *wrap, unsigned n, unsigned num)
{
	*pos = (uint16_t)(*pos + n);
	if (*pos >= num) {
		*pos = (uint16_t)(*pos - num);
		*wrap = !*wrap;
	}
}

/* Packed: take the next chain; 1, 0 when none, -errno for a bad one. */
static int ctrl_pop_packed(struct net_dev *nd, struct ctrl_req *req)
{
	struct virtq *vq = &nd->ctrl;
	struct virtq_packed_desc *ring =
		vmm_guest_map(&nd->dev->mem, vq->gpa.desc, 16ULL * vq->num);
	uint16_t pos = nd->ctrl_avail;
	bool wrap = nd->ctrl_avail_wrap;

	if (!ring)
		return -EFAULT;
	for (unsigned n = 0;; n++) {
		struct virtq_packed_desc d;
		uint16_t flags =
			__atomic_load_n(&ring[pos].flags, __ATOMIC_ACQUIRE);
		bool avail = flags & VIRTQ_PACKED_DESC_F_AVAIL;
		bool used = flags & VIRTQ_PACKED_DESC_F_USED;
		int r;

		if (avail != wrap || used == wrap)
			return n ? -EINVAL : 0; /* a chain ends mid-way */
		if (n == vq->num)
			return -ELOOP;
		memcpy(&d, &ring[pos], sizeof(d));
		d.flags = flags;
		advance(&pos, &wrap, 1, vq->num);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (n || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EINVAL;
			r = ctrl_indirect(nd, req, d.addr, d.len);
		} else {
			r = ctrl_take(nd, req, d.addr, d.len, d.flags);
		}
		if (r < 0)
			return r;
		if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
			req->id = d.id;
			req->ndesc = n + 1;
			nd->ctrl_avail = pos;
			nd->ctrl_avail_wrap = wrap;
			return 1;
		}
	}
}

static void ctrl_push_packed(struct net_dev *nd, const struct ctrl_req *req,
			     uint32_t written)
{
	struct virtq *vq = &nd->ctrl;
	struct virtq_packed_desc *d =
		(struct virtq_packed_desc *)vmm_guest_map(
			&nd->dev->mem, vq->gpa.desc, 16ULL * vq->num) +
		nd->ctrl_used;
	uint16_t flags = nd->ctrl_used_wrap ? VIRTQ_PACKED_DESC_F_AVAIL |
						      VIRTQ_PACKED_DESC_F_USED
					    : 0;

	d->id = req->id;
	d->len = written;
	__atomic_store_n(&d->flags, flags, __ATOMIC_RELEASE);
	advance(&nd->ctrl_used, &nd->ctrl_used_wrap, req->ndesc, vq->num);
}

/* VQ_PAIRS_SET: the back-end's rings of pairs [0, @n) are enabled, the
 * others disabled (vhost-user: SET_VRING_ENABLE per ring). */
static uint8_t ctrl_pairs_set(struct net_dev *nd, uint16_t n)
{
	struct vmm_dev *dev = nd->dev;

	if (n < 1 || n > nd->pairs)
		return NET_ERR;
	for (unsigned i = 0; i < 2 * nd->pairs; i++) {
		bool on = i / 2 < n;
		int r;

		if (dev->q[i].enabled == on)
			continue;
		r = vmm_vu_set_vring_enable(&dev->vu, i, on);
		if (r < 0) {
			vmm_fail(dev, "%s", dev->vu.err);
			return NET_ERR;
		}
		dev->q[i].enabled = on;
	}
	return NET_OK;
}

/* The guest wrote the control queue's doorbell: answer every command. */
static void ctrl_notify(void *opaque)
{
	struct net_dev *nd = opaque;

	for (;;) {
		struct ctrl_req req = {0};
		uint8_t status = NET_ERR;
		uint16_t n;
		int r;

		r = nd->ctrl.layout == VIRTQ_LAYOUT_PACKED
			    ? ctrl_pop_packed(nd, &req)
			    : ctrl_pop_split(nd, &req);
		if (r == 0)
			return;
		if (r < 0 || !req.ack || req.cmd_len < 2) {
			/* A real device would mark itself broken. */
			vmm_fail(nd->dev,
				 "control queue: the driver made a malformed "
				 "command chain (%s)",
				 r < 0 ? strerror(-r)
				       : "no class/command or ack");
			return;
		}
		if (req.cmd[0] == NET_CTRL_MQ &&
		    req.cmd[1] == NET_CTRL_MQ_VQ_PAIRS_SET &&
		    req.cmd_len == 4) {
			memcpy(&n, req.cmd + 2, 2);
			status = ctrl_pairs_set(nd, n);
		}
		*req.ack = status;
		nd->ctrl_commands++;
		if (nd->ctrl.layout == VIRTQ_LAYOUT_PACKED)
			ctrl_push_packed(nd, &req, 1);
		else
			ctrl_push_split(nd, &req, 1);
	}
}

static int ctrl_init(struct net_dev *nd)
{
	struct vmm_dev *dev = nd->dev;
	int r;

	nd->ctrl_buf.gpa = vmm_guest_alloc(&dev->mem, 128, 64);
	if (!nd->ctrl_buf.gpa) {
		vmm_fail(dev, "guest RAM too small for the control queue");
		return -ENOMEM;
	}
	nd->ctrl_buf.hva = vmm_gpa_to_hva(&dev->mem, nd->ctrl_buf.gpa);
	/* The control queue's index is the one after the data queues. */
	r = vmm_guest_ring_init(dev, &nd->ctrl, 2 * nd->pairs, 64, ctrl_notify,
				nd);
	if (r < 0)
		return r;
	nd->ctrl_avail_wrap = nd->ctrl_used_wrap = true;
	nd->has_ctrl = true;
	return 0;
}

/* The driver's side: one command, answered before the kick returns (the
 * doorbell traps into the device).  Returns the ack, or -EIO. */
static int ctrl_command(struct net_dev *nd, uint8_t class, uint8_t cmd,
			const void *data, uint32_t len)
{
	uint8_t *b = nd->ctrl_buf.hva;
	struct virtq_sg sg[3] = {
		{nd->ctrl_buf.gpa, 2},
		{nd->ctrl_buf.gpa + 2, len},
		{nd->ctrl_buf.gpa + 64, 1},
	};
	uint32_t used_len;
	void *token;
	int r;

	b[0] = class;
	b[1] = cmd;
	memcpy(b + 2, data, len);
	b[64] = 0xff;
	r = virtq_add(&nd->ctrl, sg, 2, 1, nd);
	if (r < 0) {
		vmm_fail(nd->dev, "control queue: %s", strerror(-r));
		return -EIO;
	}
	virtq_kick(&nd->ctrl);
	if (vmm_failed(nd->dev))
		return -EIO;
	r = virtq_get_used(&nd->ctrl, &token, &used_len);
	if (r != 1 || used_len != 1) {
		vmm_fail(nd->dev,
			 "control queue: command %u.%u not answered (%d, "
			 "length %u)",
			 class, cmd, r, r == 1 ? used_len : 0);
		return -EIO;
	}
	return b[64];
}

/* MQ: one refused VQ_PAIRS_SET (more pairs than the device has), then the
 * one that enables the pairs in use. */
static int set_pairs(struct net_dev *nd)
{
	uint16_t bad = (uint16_t)(nd->pairs + 1), good = (uint16_t)nd->pairs;
	int r;

	r = ctrl_command(nd, NET_CTRL_MQ, NET_CTRL_MQ_VQ_PAIRS_SET, &bad, 2);
	if (r < 0)
		return r;
	if (r != NET_ERR) {
		vmm_fail(nd->dev,
			 "control queue: VQ_PAIRS_SET %u accepted, "
			 "the device has %u pair(s)",
			 bad, nd->pairs);
		return -EIO;
	}
	r = ctrl_command(nd, NET_CTRL_MQ, NET_CTRL_MQ_VQ_PAIRS_SET, &good, 2);
	if (r < 0)
		return r;
	if (r != NET_OK) {
		vmm_fail(nd->dev, "control queue: VQ_PAIRS_SET %u refused",
			 good);
		return -EIO;
	}
	if (!nd->o->quiet)
		fprintf(stderr,
			"vmm: control queue (%s ring, served by the VMM): "
			"VQ_PAIRS_SET %u refused, VQ_PAIRS_SET %u ok\n",
			nd->ctrl.layout == VIRTQ_LAYOUT_PACKED ? "packed"
							       : "split",
			bad, good);
	return 0;
}

/* CPU seconds this process (every thread) has used. */
static double self_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- set-up ---- */

static int pair_init(struct net_dev *nd, struct net_pair *p, unsigned k)
{
	struct vmm_dev *dev = nd->dev;
	unsigned nrx = dev->q[2 * k].vq.num, ntx = dev->q[2 * k + 1].vq.num;

	memset(p, 0, sizeof(*p));
	p->nd = nd;
	p->idx = k;
	p->rx = &dev->q[2 * k];
	p->tx = &dev->q[2 * k + 1];
	p->tx->owner = p->rx;
	p->rx->complete = rx_complete;
	p->tx->complete = tx_complete;
	p->rx->priv = p->tx->priv = p;
	p->rng = vmm_mix(nd->o->seed + k + 1) | 1;
	p->limit = nd->o->ops;
	p->pkt = malloc(FRAME_MAX);
	p->rx_bufs = calloc(nrx, sizeof(*p->rx_bufs));
	p->tx_bufs = calloc(ntx, sizeof(*p->tx_bufs));
	p->rx_free = calloc(nrx, sizeof(*p->rx_free));
	p->tx_free = calloc(ntx, sizeof(*p->tx_free));
	if (!p->pkt || !p->rx_bufs || !p->tx_bufs || !p->rx_free || !p->tx_free)
		return -ENOMEM;
	for (unsigned i = 0; i < nrx; i++) {
		struct net_buf *b = &p->rx_bufs[i];

		b->gpa = vmm_guest_alloc(&dev->mem, nd->rx_buf, 64);
		if (!b->gpa)
			goto small;
		b->hva = vmm_gpa_to_hva(&dev->mem, b->gpa);
		p->rx_free[p->n_rx_free++] = b;
	}
	for (unsigned i = 0; i < ntx; i++) {
		struct net_buf *b = &p->tx_bufs[i];

		b->gpa =
			vmm_guest_alloc(&dev->mem, NET_HDR_LEN + FRAME_MAX, 64);
		if (!b->gpa)
			goto small;
		b->hva = vmm_gpa_to_hva(&dev->mem, b->gpa);
		/* "rate" sends this fill; "verify" overwrites it. */
		memset(b->hva, 0x5a, NET_HDR_LEN + FRAME_MAX);
		p->tx_free[p->n_tx_free++] = b;
	}
	return 0;
small:
	vmm_fail(dev, "guest RAM too small for the packet buffers (--mem)");
	return -ENOMEM;
}

static void pair_fini(struct net_pair *p)
{
	free(p->pkt);
	free(p->rx_bufs);
	free(p->tx_bufs);
	free(p->rx_free);
	free(p->tx_free);
}

static int net_options(struct net_dev *nd, struct vmm_opts *o)
{
	if (!strcmp(o->workload, "verify")) {
		nd->workload = W_VERIFY;
	} else if (!strcmp(o->workload, "rate")) {
		nd->workload = W_RATE;
	} else {
		fprintf(stderr, "unknown net workload '%s'\n", o->workload);
		return -EINVAL;
	}
	if (o->queues < 1 || 2 * o->queues > VMM_MAX_QUEUES) {
		fprintf(stderr, "net: --queues (pairs) must be 1..%d\n",
			VMM_MAX_QUEUES / 2);
		return -EINVAL;
	}
	if (o->frame && (o->frame < FRAME_MIN || o->frame > FRAME_MAX)) {
		fprintf(stderr, "net: --frame must be %u..%u bytes\n",
			FRAME_MIN, FRAME_MAX);
		return -EINVAL;
	}
	nd->frame_min = o->frame                 ? o->frame
			: nd->workload == W_RATE ? 64
						 : FRAME_MIN;
	nd->frame_max = o->frame                 ? o->frame
			: nd->workload == W_RATE ? 64
						 : FRAME_MAX;
	nd->pairs = o->queues;
	return 0;
}

/* After negotiation: the receive buffer size and the window. */
static int net_buffers(struct net_dev *nd)
{
	struct vmm_opts *o = nd->o;
	uint32_t need = NET_HDR_LEN + nd->frame_max, per_frame;

	nd->mrg = vmm_has(nd->dev, NET_F_MRG_RXBUF);
	/* verify: small buffers, so that frames span several. */
	nd->rx_buf = o->rx_buf                             ? o->rx_buf
		     : nd->mrg && nd->workload == W_VERIFY ? 512
							   : 1536;
	if (nd->rx_buf < NET_HDR_LEN + 1 || nd->rx_buf > 65536 ||
	    (nd->mrg && nd->rx_buf < NET_HDR_LEN + TAG_END)) {
		fprintf(stderr, "net: bad --rx-buf %u\n", nd->rx_buf);
		return -EINVAL;
	}
	if (!nd->mrg && nd->rx_buf < need) {
		fprintf(stderr,
			"net: --rx-buf %u cannot hold a %u-byte frame and its "
			"header without VIRTIO_NET_F_MRG_RXBUF\n",
			nd->rx_buf, nd->frame_max);
		return -EINVAL;
	}
	per_frame = nd->mrg ? (need + nd->rx_buf - 1) / nd->rx_buf : 1;
	nd->window = o->queue_size / per_frame;
	if (o->depth_set) {
		if (o->depth > nd->window) {
			fprintf(stderr,
				"net: --depth %u is more frames than %u "
				"receive buffers of %u bytes can always "
				"take (at most %u)\n",
				o->depth, o->queue_size, nd->rx_buf,
				nd->window);
			return -EINVAL;
		}
		nd->window = o->depth;
	}
	return 0;
}

static int start_backend(struct net_dev *nd, struct vmm_testpmd *pmd)
{
	struct vmm_opts *o = nd->o;
	char err[768];
	int r;

	if (o->socket)
		return 0;
	r = vmm_testpmd_start(pmd, o->testpmd, nd->pairs, o->macswap, err,
			      sizeof(err));
	if (r < 0) {
		vmm_fail(nd->dev, "starting the back-end: %s", err);
		return r;
	}
	o->socket = pmd->sock;
	if (!o->quiet)
		fprintf(stderr,
			"vmm: started %s (pid %d, %s forwarding, %u queue "
			"pair(s)) on %s\n",
			o->testpmd, (int)pmd->pid,
			o->macswap ? "macswap" : "io", nd->pairs, pmd->sock);
	return 0;
}

/*
 * Every frame that did not come back must be one testpmd counted as
 * dropped.  Without our own testpmd there are no counters to ask.
 */
static int check_losses(struct net_dev *nd, uint64_t lost, bool own,
			const struct vmm_testpmd_counters *c, int stop_err)
{
	uint64_t dropped;

	if (own && stop_err == 0) {
		dropped = c->rx_dropped + c->tx_dropped;
		printf("net: testpmd counted %" PRIu64 " received, %" PRIu64
		       " sent back, %" PRIu64 " dropped\n",
		       c->rx_packets, c->tx_packets, dropped);
	} else {
		dropped = 0;
	}
	if (own && stop_err < 0)
		printf("net: testpmd did not stop cleanly (%s): no counters\n",
		       strerror(-stop_err));
	if (lost > dropped) {
		vmm_fail(nd->dev,
			 "net: %" PRIu64 " frame(s) did not come back and "
			 "testpmd counted %" PRIu64 " dropped",
			 lost, dropped);
		return -EIO;
	}
	return 0;
}

int vmm_net_run(struct vmm_dev *dev, struct vmm_opts *o)
{
	const uint64_t wants = (1ULL << NET_F_MAC) | (1ULL << NET_F_STATUS) |
			       (1ULL << NET_F_CTRL_VQ) | (1ULL << NET_F_MQ) |
			       (o->no_mrg_rxbuf ? 0 : 1ULL << NET_F_MRG_RXBUF) |
			       (1ULL << VIRTQ_F_INDIRECT_DESC) |
			       (1ULL << VIRTQ_F_EVENT_IDX) |
			       (1ULL << VIRTQ_F_VERSION_1);
	struct net_dev nd = {
		.dev = dev,
		.o = o,
		.mac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
		.peer = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01},
	};
	struct net_pair ps[VMM_MAX_QUEUES / 2];
	struct vmm_testpmd pmd = {.in_fd = -1};
	struct vmm_testpmd_counters ctr = {0};
	struct vmm_summary sum = {0};
	uint64_t ram, sent = 0, lost = 0, merged = 0;
	bool own = !o->socket;
	unsigned started = 0;
	double t0, cpu0, pmd_cpu0 = -1, cpu, pmd_cpu = -1;
	int r, stop_err;

	if (net_options(&nd, o) < 0)
		return -EINVAL;
	r = start_backend(&nd, &pmd);
	if (r < 0)
		goto out;
	/* The device model implements these itself (QEMU's virtio-net
	 * does the same for a vhost-user back-end). */
	dev->model_features = (1ULL << NET_F_MAC) | (1ULL << NET_F_STATUS) |
			      (1ULL << NET_F_CTRL_VQ);
	r = vmm_dev_open(dev, o, wants, 2 * nd.pairs);
	if (r < 0)
		goto out;
	if (nd.pairs > 1 && !vmm_has(dev, NET_F_MQ)) {
		vmm_fail(dev,
			 "net: %u queue pairs need VIRTIO_NET_F_MQ, which the "
			 "back-end does not offer",
			 nd.pairs);
		r = -ENOTSUP;
		goto out;
	}
	r = net_buffers(&nd);
	if (r < 0)
		goto out;
	/* With MQ the device starts with one pair (VIRTIO 1.2, 5.1.6.5.5). */
	dev->enabled_at_start = vmm_has(dev, NET_F_MQ) ? 2 : 2 * nd.pairs;

	ram = (16ULL << 20) +
	      2ULL * nd.pairs * o->queue_size * (NET_HDR_LEN + FRAME_MAX + 64) +
	      2ULL * nd.pairs * o->queue_size * (VMM_MAX_INDIRECT * 16 + 64);
	if (o->mem_size)
		ram = o->mem_size;
	ram = (ram + (2 << 20) - 1) & ~((2ULL << 20) - 1);
	r = vmm_dev_start(dev, ram);
	if (r < 0)
		goto out;
	if (vmm_has(dev, NET_F_CTRL_VQ)) {
		r = ctrl_init(&nd);
		if (r == 0 && vmm_has(dev, NET_F_MQ))
			r = set_pairs(&nd);
		if (r < 0)
			goto stop;
	}
	for (unsigned k = 0; k < nd.pairs; k++) {
		r = pair_init(&nd, &ps[k], k);
		started = k + 1;
		if (r < 0) {
			if (r == -ENOMEM && !vmm_failed(dev))
				vmm_fail(dev, "out of memory");
			goto stop;
		}
	}
	if (!o->quiet)
		fprintf(stderr,
			"vmm: net workload %s, isolation %s, %u pair(s), "
			"frames %u..%u bytes, receive buffers %u bytes%s, "
			"window %u\n",
			o->workload, o->isolation ? "on" : "off", nd.pairs,
			nd.frame_min, nd.frame_max, nd.rx_buf,
			nd.mrg ? " (mergeable)" : "", nd.window);

	t0 = vmm_now();
	nd.t0 = t0;
	cpu0 = self_cpu_seconds();
	if (own)
		pmd_cpu0 = vmm_testpmd_cpu_seconds(&pmd);
	for (unsigned k = 0; k < nd.pairs; k++) {
		ps[k].deadline = o->time_s > 0 ? t0 + o->time_s : 0;
		if (pthread_create(&ps[k].rx->thread, NULL, pair_thread,
				   &ps[k]) != 0) {
			vmm_fail(dev, "pthread_create failed");
			for (unsigned i = 0; i < k; i++)
				pthread_join(ps[i].rx->thread, NULL);
			r = -EAGAIN;
			goto stop;
		}
	}
	vmm_join_queues(dev, 0, dev->nq, t0);
	sum.seconds = vmm_now() - t0;
	cpu = self_cpu_seconds() - cpu0;
	if (pmd_cpu0 >= 0 && vmm_testpmd_cpu_seconds(&pmd) >= 0)
		pmd_cpu = vmm_testpmd_cpu_seconds(&pmd) - pmd_cpu0;

	for (unsigned k = 0; k < nd.pairs; k++) {
		struct net_pair *p = &ps[k];

		sent += p->next_seq;
		lost += p->lost;
		merged += p->merged;
		sum.requests += p->received;
		sum.bytes += p->bytes;
		if (!o->quiet || nd.workload == W_VERIFY) {
			printf("pair %u: %" PRIu64 " frames sent, %" PRIu64
			       " came back (%" PRIu64 " bytes), %" PRIu64
			       " in several receive buffers, %" PRIu64 " lost",
			       k, p->next_seq, p->received, p->bytes, p->merged,
			       p->lost);
			if (p->lost)
				printf(" (the first: frame %" PRIu64 ")",
				       p->first_lost);
			if (dev->reconnects)
				printf("; across %u back-end restart(s): %" PRIu64
				       " lost with the dead back-end, %" PRIu64
				       " came back twice",
				       dev->reconnects, p->lost_restart,
				       p->twice);
			printf("\n");
			vmm_queue_print_stats(p->rx);
			vmm_queue_print_stats(p->tx);
		}
	}
	for (unsigned k = 0; k < nd.pairs; k++)
		if (ps[k].lost)
			printf("net: pair %u: %" PRIu64
			       " frame(s) did not come "
			       "back, the first frame %" PRIu64
			       ", noticed %.3f "
			       "s into the run %s\n",
			       k, ps[k].lost, ps[k].first_lost,
			       ps[k].first_lost_at,
			       ps[k].first_lost_timeout
				       ? "after 2 s without a frame"
				       : "when a later frame came back");
	if (!vmm_failed(dev) && nd.workload == W_VERIFY)
		printf("verify: every byte of %" PRIu64 " frame(s) that came "
		       "back matched; %" PRIu64 " spanned several receive "
		       "buffers\n",
		       sum.requests, merged);
	if (!vmm_failed(dev))
		printf("net: pairs=%u frame=%u..%u isolation=%s sent=%" PRIu64
		       " received=%" PRIu64 " lost=%" PRIu64
		       " seconds=%.3f Mpps=%.3f Gbit/s=%.3f\n",
		       nd.pairs, nd.frame_min, nd.frame_max,
		       o->isolation ? "on" : "off", sent, sum.requests, lost,
		       sum.seconds, (double)sum.requests / sum.seconds / 1e6,
		       (double)sum.bytes * 8 / sum.seconds / 1e9);
	if (!vmm_failed(dev) && nd.workload == W_RATE)
		print_intervals(dev);
	/* What limits the figure: the VMM's CPU time per frame (its pair
	 * threads: the guest driver, and libvuiso with isolation on);
	 * testpmd's forwarding lcore polls, so it is busy whatever the
	 * rate. */
	if (!vmm_failed(dev) && sum.requests) {
		printf("net: cpu vmm=%.2fs (%.0f%% of one CPU, %.0f ns per "
		       "frame)",
		       cpu, 100 * cpu / sum.seconds,
		       cpu * 1e9 / (double)sum.requests);
		if (pmd_cpu >= 0)
			printf(" testpmd=%.2fs (%.0f%% of one CPU)", pmd_cpu,
			       100 * pmd_cpu / sum.seconds);
		printf("\n");
	}
	r = 0;
	if (!vmm_failed(dev))
		r = vmm_isolation_proof(dev);
	if (r == -EPERM)
		vmm_fail(dev, "isolation proof failed");
stop:
	if (vmm_dev_stop(dev) < 0 && r == 0)
		r = -EIO;
out:
	stop_err = vmm_testpmd_stop(&pmd, own ? &ctr : NULL);
	if (r == 0 && !vmm_failed(dev))
		r = check_losses(&nd, lost, own, &ctr, stop_err);
	if (nd.has_ctrl)
		virtq_fini(&nd.ctrl);
	sum.what = "net";
	if (started)
		vmm_print_summary(dev, &sum);
	for (unsigned k = 0; k < started; k++)
		pair_fini(&ps[k]);
	if (own)
		o->socket = NULL;
	return vmm_failed(dev) ? -EIO : r;
}
