// SPDX-License-Identifier: MIT
/*
 * The shadow virtqueue engine.
 *
 * Guest kick: pop a guest chain (read once, validated by the ring layer),
 * reserve one bounce block and one slot per guest buffer, copy the readable
 * bytes into the region, record the request and publish one shadow buffer
 * per guest buffer, kick the back-end once per call.  The guest ring and
 * the shadow ring each have their own layout; the engine sees neither.
 *
 * Back-end call: read a used entry, check its id against the private
 * request table, copy min(len, writable) bytes back to the guest addresses
 * saved at pop (re-translated now), free the blocks and slots, put the
 * guest's own head id in the guest used ring, notify the guest once per call.
 *
 * Every data-path call handles at most `budget` chains, holds the RCU read
 * lock on the guest memory map for its whole duration, and makes its
 * callbacks after leaving it (the guest writes to dirty-log are gathered
 * and delivered then).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <urcu-bp.h>

#include "svq.h"

#define SLOT_NIL UINT16_MAX

/* The data path: inlined into one copy per direction and layout pair. */
#define SVQ_HOT static inline __attribute__((always_inline))

/*
 * Give the @n slots of the chain at @head and their bounce blocks back.
 * The chain is still linked from when it was taken, so it goes on the
 * free list whole.
 */
static inline void svq_chain_free(struct vuiso_vq *vq, uint16_t head,
				  unsigned n)
{
	uint16_t s = head;

	for (;;) {
		const struct svq_slot *sl = &vq->slot[s];

		vuiso_pool_put(&vq->pool, sl->blk, sl->order);
		if (!--n)
			break;
		s = sl->next;
	}
	vq->slot[s].next = vq->free_slot;
	vq->free_slot = head;
}

/* Request @head is no longer in flight (its slots are freed already). */
static inline void svq_req_retire(struct vuiso_vq *vq, uint16_t head,
				  enum svq_req_state state)
{
	struct svq_req *r = &vq->req[head];

	vq->nfree += r->nslots;
	r->state = (uint8_t)state;
	vq->inflight--;
}
/* Dirty-log entries kept beyond two per descriptor (see svq_log_room()). */
#define SVQ_LOG_SLACK 32

void svq_region_layout(uint32_t queue_size_max, uint64_t pool_size,
		       uint64_t *ring_bytes, uint64_t *stride)
{
	uint64_t d, a, u, split, packed;

	/* Room for the largest ring of any layout: the shadow layout is only
	 * known when the queue starts. */
	split = vuiso_ring_split_ops.shadow_layout(queue_size_max, &d, &a, &u);
	packed =
		vuiso_ring_packed_ops.shadow_layout(queue_size_max, &d, &a, &u);
	*ring_bytes = split > packed ? split : packed;
	*stride = *ring_bytes + pool_size;
}

int svq_init(struct vuiso_vq *vq, struct vuiso_dev *dev, unsigned idx)
{
	uint32_t n = dev->queue_size_max;
	uint8_t *base = dev->map + (uint64_t)idx * dev->stride;
	int ret;

	memset(vq, 0, sizeof(*vq));
	vq->dev = dev;
	vq->idx = idx;
	vq->glayout = VUISO_LAYOUT_SPLIT;
	vq->slayout = VUISO_LAYOUT_SPLIT;
	vq->gops = &vuiso_ring_split_ops;
	vq->sops = &vuiso_ring_split_ops;
	vq->ring_base = base;
	vq->ring_backend = dev->backend_base + (uint64_t)idx * dev->stride;
	vq->pool_base = base + dev->ring_bytes;
	vq->pool_backend = vq->ring_backend + dev->ring_bytes;
	vq->clear_writable = dev->flags & VUISO_DEV_F_CLEAR_WRITABLE;
	/* Room for the longest chain's writes twice over, and the rings'. */
	vq->log.cap = 2 * n + SVQ_LOG_SLACK;
	ret = vuiso_pool_init(&vq->pool, dev->pool_size);
	if (ret)
		return ret;
	vq->slot = calloc(n, sizeof(*vq->slot));
	vq->req = calloc(n, sizeof(*vq->req));
	vq->seg = calloc(n, sizeof(*vq->seg));
	vq->sbuf = calloc(n, sizeof(*vq->sbuf));
	vq->byage = calloc(n, sizeof(*vq->byage));
	vq->indirect = malloc(16ULL * n);
	vq->ids.guest_busy = calloc(n, sizeof(*vq->ids.guest_busy));
	vq->ids.shadow_ndesc = calloc(n, sizeof(*vq->ids.shadow_ndesc));
	vq->log.r = calloc(vq->log.cap, sizeof(*vq->log.r));
	if (!vq->slot || !vq->req || !vq->seg || !vq->sbuf || !vq->byage ||
	    !vq->indirect || !vq->ids.guest_busy || !vq->ids.shadow_ndesc ||
	    !vq->log.r) {
		svq_destroy(vq);
		return -ENOMEM;
	}
	return 0;
}

void svq_destroy(struct vuiso_vq *vq)
{
	vuiso_pool_destroy(&vq->pool);
	free(vq->slot);
	free(vq->req);
	free(vq->seg);
	free(vq->sbuf);
	free(vq->byage);
	free(vq->indirect);
	free(vq->ids.guest_busy);
	free(vq->ids.shadow_ndesc);
	free(vq->log.r);
	vq->log.r = NULL;
	vq->ids.guest_busy = NULL;
	vq->ids.shadow_ndesc = NULL;
	vq->slot = NULL;
	vq->req = NULL;
	vq->seg = NULL;
	vq->sbuf = NULL;
	vq->byage = NULL;
	vq->indirect = NULL;
}

/* Forget every request: slots, request states, bounce blocks. */
static void svq_clear(struct vuiso_vq *vq, uint32_t size)
{
	for (uint32_t i = 0; i < size; i++)
		vq->slot[i].next = (uint16_t)(i + 1 < size ? i + 1 : SLOT_NIL);
	memset(vq->req, 0, size * sizeof(*vq->req));
	vq->free_slot = 0;
	vq->nfree = size;
	vq->inflight = 0;
	vq->guest_pending = false;
	vuiso_pool_reset(&vq->pool);
}

/* Cold: remember the first violation; it is reported after the call. */
static int __attribute__((cold)) svq_break(struct vuiso_vq *vq, int err)
{
	if (!vq->broken) {
		vq->broken = true;
		vq->err = err;
	}
	return -EIO;
}

static void svq_report(struct vuiso_vq *vq)
{
	int err = vq->err;

	if (likely(!err))
		return;
	vq->err = 0;
	if (vq->dev->ops.error)
		vq->dev->ops.error(vq->dev->opaque, vq->idx, err, vq->why);
}

static inline struct vuiso_log *svq_log(struct vuiso_vq *vq)
{
	if (likely(!atomic_load_explicit(&vq->dev->logging,
					 memory_order_relaxed)) ||
	    !vq->dev->ops.log_write)
		return NULL;
	return &vq->log;
}

/*
 * Room left for one more completion's writes (each buffer of the longest
 * chain, its used element) and the ring bookkeeping of the call.
 */
static inline bool svq_log_room(const struct vuiso_vq *vq,
				const struct vuiso_log *log)
{
	return !log || log->cap - log->n >= vq->size + SVQ_LOG_SLACK / 2;
}

/* Hand the call's guest writes to the VMM, outside the RCU read side. */
static void svq_log_flush(struct vuiso_vq *vq)
{
	for (uint32_t i = 0; i < vq->log.n; i++)
		vq->dev->ops.log_write(vq->dev->opaque, vq->log.r[i].gpa,
				       vq->log.r[i].len);
	vq->log.n = 0;
}

/* ------------------------------------------------------------------ */
/* Guest -> back-end                                                   */
/* ------------------------------------------------------------------ */

/* Guest -> bounce; inline when the buffer lies in the last-hit range. */
static inline int copy_from_guest(const struct vuiso_memmap *m, uint64_t gpa,
				  uint8_t *dst, uint32_t len, size_t *hint)
{
	const uint8_t *src = vuiso_memmap_hint(m, gpa, len, hint);

	if (likely(src)) {
		memcpy(dst, src, len);
		return 0;
	}
	return vuiso_memmap_read(m, gpa, dst, len, hint);
}

static inline int copy_to_guest(const struct vuiso_memmap *m, uint64_t gpa,
				const uint8_t *src, uint32_t len, size_t *hint)
{
	uint8_t *dst = vuiso_memmap_hint(m, gpa, len, hint);

	if (likely(dst)) {
		memcpy(dst, src, len);
		return 0;
	}
	return vuiso_memmap_write(m, gpa, src, len, hint);
}

static inline int check_guest(const struct vuiso_memmap *m, uint64_t gpa,
			      uint32_t len, size_t *hint)
{
	if (likely(vuiso_memmap_hint(m, gpa, len, hint)))
		return 0;
	return vuiso_memmap_check(m, gpa, len, hint);
}

/*
 * A chain found no room (svq_take_room() gave back what it took).  Cold.
 * Return: -E2BIG when it could not fit even an empty pool, 1 when the
 * pool was merged and the caller should try once more, else 0 (no room
 * now; the chain is retried on completion).
 */
static int svq_no_room(struct vuiso_vq *vq, const struct vuiso_seg *seg,
		       unsigned nseg, uint16_t chain_head, bool retried)
{
	struct vuiso_pool *pool = &vq->pool;
	uint64_t need = 0;

	for (unsigned i = 0; i < nseg; i++)
		need += 1ULL << vuiso_pool_order_of(seg[i].len);
	if (unlikely(need > pool->nblocks))
		return vring_bad(
			vq->why, -E2BIG,
			"guest: request at head %u needs more bounce space than the whole pool (%" PRIu64
			" bytes)",
			chain_head,
			(uint64_t)pool->nblocks << VUISO_POOL_BLOCK_SHIFT);
	if (retried || vq->inflight || nseg > vq->nfree)
		return 0;
	/*
	 * Nothing in flight means nothing will be freed: merge the parked
	 * blocks so the pool is one block again, from which any chain that
	 * passed the size check above fits.
	 */
	vuiso_pool_flush(pool);
	return need <= vuiso_pool_free_blocks(pool);
}

/*
 * Steps 1 and 2, one pass over chain @c: for each guest buffer take the
 * next free slot and a bounce block of its size, fill the slot with what
 * completion needs (private memory) and the shadow buffer with what the
 * back-end will see, then copy the device-readable bytes into the block,
 * or check that the device-writable buffer is mapped.  The free list
 * hands out slots in list order, so taking them links the chain and the
 * list's head moves past it at the end.  All or nothing: when a block
 * is missing, the blocks taken go back and the free list is untouched.
 * Return: 1 with *@head set, 0 no room now (nothing taken; retried on
 * completion), or a negative errno with vq->why set.
 */
SVQ_HOT int svq_take_room(struct vuiso_vq *vq, const struct vuiso_memmap *m,
			  size_t *hint, const struct vuiso_chain *c,
			  uint16_t *head)
{
	struct vuiso_pool *pool = &vq->pool;
	bool retried = false;
	uint16_t s;
	unsigned i;
	int ret;

	/* Enough free slots: the walk below stays on the free list. */
	if (unlikely(c->nseg > vq->nfree))
		return svq_no_room(vq, c->seg, c->nseg, c->head, true);
again:
	s = vq->free_slot;
	for (i = 0; i < c->nseg; i++) {
		const struct vuiso_seg *sg = &c->seg[i];
		struct vuiso_sbuf *sb = &vq->sbuf[i];
		struct svq_slot *sl = &vq->slot[s];
		unsigned order = vuiso_pool_order_of(sg->len);
		uint64_t off;
		int64_t blk;

		if (unlikely(order > pool->max_order))
			break;
		blk = vuiso_pool_get(pool, order);
		if (unlikely(blk < 0))
			break;
		off = (uint64_t)blk << VUISO_POOL_BLOCK_SHIFT;
		sl->seg = *sg;
		sl->blk = (uint32_t)blk;
		sl->order = (uint8_t)order;
		sb->addr = vq->pool_backend + off;
		sb->len = sg->len;
		sb->id = s;
		sb->write = (uint8_t)sg->write;

		if (!sg->write) {
			ret = copy_from_guest(m, sg->gpa, vq->pool_base + off,
					      sg->len, hint);
		} else {
			ret = check_guest(m, sg->gpa, sg->len, hint);
			/* What the back-end does not write reads as zeros,
			 * not as an earlier request's bytes. */
			if (unlikely(vq->clear_writable))
				memset(vq->pool_base + off, 0, sg->len);
		}
		if (unlikely(ret))
			return vring_bad(
				vq->why, -EFAULT,
				"guest: buffer 0x%" PRIx64
				"+%u at head %u is not in guest memory",
				sg->gpa, sg->len, c->head);
		s = sl->next;
	}
	if (likely(i == c->nseg)) {
		/* The chain's last slot keeps its free-list link: every walk
		 * over a chain counts its req->nslots slots. */
		*head = vq->free_slot;
		vq->free_slot = s;
		vq->nfree -= c->nseg;
		return 1;
	}
	for (s = vq->free_slot; i--; s = vq->slot[s].next)
		vuiso_pool_put(pool, vq->slot[s].blk, vq->slot[s].order);
	ret = svq_no_room(vq, c->seg, c->nseg, c->head, retried);
	if (ret == 1) {
		retried = true;
		goto again;
	}
	return ret;
}

/*
 * Step 3: record the request under its first slot, write the shadow chain
 * (published by the caller once per call) and take the guest chain.
 */
SVQ_HOT void svq_record(struct vuiso_vq *vq, const struct vuiso_chain *c,
			uint16_t head, enum vuiso_layout gl,
			enum vuiso_layout sl)
{
	struct svq_req *r = &vq->req[head];

	r->guest_token = c->token;
	r->nslots = c->nseg;
	r->writable = c->in_bytes;
	r->state = SVQ_REQ_INFLIGHT;
	r->seq = vq->seq++;
	vq->inflight++;

	vring_shadow_add(sl, &vq->s, vq->sbuf, c->nseg);
	vring_guest_consume(gl, &vq->g, c);
	vq->stats.requests++;
	vq->stats.bytes_out += c->out_bytes;
}

/*
 * Forward the guest's next available chain.
 * Return: 1 forwarded, 0 no room now (nothing consumed; retried on
 * completion), or a negative errno with vq->why set.
 */
SVQ_HOT int svq_forward(struct vuiso_vq *vq, const struct vuiso_memmap *m,
			size_t *hint, enum vuiso_layout gl,
			enum vuiso_layout sl)
{
	/* Only inline code sees it (svq_no_room() gets fields by value),
	 * so the compiler can keep it in registers. */
	struct vuiso_chain c = {.seg = vq->seg};
	uint16_t head = SLOT_NIL;
	int ret;

	ret = vring_guest_walk(gl, &vq->g, m, hint, &c, vq->indirect, vq->why);
	if (unlikely(ret < 0))
		return ret;
	ret = svq_take_room(vq, m, hint, &c, &head);
	if (ret <= 0)
		return ret;
	svq_record(vq, &c, head, gl, sl);
	return 1;
}

/*
 * Take guest chains until none is left, the budget runs out or there is no
 * room.  Return: 1 when the budget ran out with work left, else 0; or a
 * negative errno.  *@kick is set when the back-end wants a kick.
 */
SVQ_HOT int svq_take_guest(struct vuiso_vq *vq, const struct vuiso_memmap *m,
			   size_t *hint, struct vuiso_log *log,
			   uint32_t *budget, bool *kick, enum vuiso_layout gl,
			   enum vuiso_layout sl)
{
	bool added = false;
	int ret = 0, n;

	vq->guest_pending = false;
	for (;;) {
		n = vring_guest_avail(gl, &vq->g, vq->why);
		if (unlikely(n < 0))
			return n;
		if (n == 0) {
			/* Re-arm guest kicks, then look once more: a chain
			 * made available meanwhile would not kick us. */
			vring_guest_kicks(gl, &vq->g, true, log);
			n = vring_guest_avail(gl, &vq->g, vq->why);
			if (unlikely(n < 0))
				return n;
			if (n == 0)
				break;
		}
		vring_guest_kicks(gl, &vq->g, false, log);
		for (; n > 0; n--) {
			int r;

			if (*budget == 0 || unlikely(!svq_log_room(vq, log))) {
				/* The next call, from either side, goes on. */
				vq->guest_pending = true;
				ret = 1;
				goto out;
			}
			r = svq_forward(vq, m, hint, gl, sl);
			if (unlikely(r < 0))
				return r;
			if (r == 0) {
				/* Back-pressure: resume on completion. */
				vq->guest_pending = true;
				vq->stats.backpressure++;
				goto out;
			}
			(*budget)--;
			added = true;
		}
	}
out:
	if (added && vring_shadow_publish(sl, &vq->s))
		*kick = true;
	return ret;
}

/* ------------------------------------------------------------------ */
/* Back-end -> guest                                                   */
/* ------------------------------------------------------------------ */

SVQ_HOT int svq_complete(struct vuiso_vq *vq, const struct vuiso_memmap *m,
			 size_t *hint, struct vuiso_log *log, uint32_t id,
			 uint32_t len, enum vuiso_layout gl,
			 enum vuiso_layout sl)
{
	struct svq_req *r;
	uint32_t written, left;
	uint16_t s;

	if (unlikely(id >= vq->size))
		return vring_bad(
			vq->why, -EPROTO,
			"back-end: used id %u out of range (queue size %u)", id,
			vq->size);
	r = &vq->req[id];
	if (unlikely(r->state != SVQ_REQ_INFLIGHT))
		return vring_bad(
			vq->why, -EPROTO,
			r->state == SVQ_REQ_DONE
				? "back-end: used id %u completed twice"
				: "back-end: used id %u was never made available",
			id);
	vring_shadow_done(sl, &vq->s, (uint16_t)id);

	/* VIRTIO: the driver may rely only on the first len bytes; a larger
	 * len is clamped to what the chain can hold, never trusted. */
	written = len < r->writable ? len : r->writable;
	left = written;
	s = (uint16_t)id;
	for (unsigned i = 0;;) {
		const struct svq_slot *slot = &vq->slot[s];

		if (slot->seg.write && left) {
			uint32_t n = left < slot->seg.len ? left
							  : slot->seg.len;
			const uint8_t *bounce =
				vq->pool_base +
				((uint64_t)slot->blk << VUISO_POOL_BLOCK_SHIFT);

			if (unlikely(copy_to_guest(m, slot->seg.gpa, bounce, n,
						   hint)))
				return vring_bad(
					vq->why, -EFAULT,
					"guest: buffer 0x%" PRIx64
					"+%u of buffer id %u left guest memory while in flight",
					slot->seg.gpa, n,
					vring_token_id(r->guest_token));
			vring_log(log, slot->seg.gpa, n);
			left -= n;
		}
		vuiso_pool_put(&vq->pool, slot->blk, slot->order);
		if (++i == r->nslots)
			break;
		s = slot->next;
	}
	/* The chain is still linked: onto the free list whole. */
	vq->slot[s].next = vq->free_slot;
	vq->free_slot = (uint16_t)id;
	svq_req_retire(vq, (uint16_t)id, SVQ_REQ_DONE);
	vring_guest_put_used(gl, &vq->g, r->guest_token, written, log);
	vq->stats.completions++;
	vq->stats.bytes_in += written;
	return 0;
}

/*
 * Take used shadow entries.  Return: 1 when the budget ran out with work
 * left, else 0; or a negative errno.
 */
SVQ_HOT int svq_take_used(struct vuiso_vq *vq, const struct vuiso_memmap *m,
			  size_t *hint, struct vuiso_log *log, uint32_t *budget,
			  enum vuiso_layout gl, enum vuiso_layout sl)
{
	for (;;) {
		int n = vring_shadow_used(sl, &vq->s, vq->inflight, vq->why);

		if (unlikely(n < 0))
			return n;
		if (n == 0) {
			/* Stopping: calls stay off, what is left is polled. */
			if (vq->run == SVQ_STOPPING)
				return 0;
			vring_shadow_calls(sl, &vq->s);
			n = vring_shadow_used(sl, &vq->s, vq->inflight,
					      vq->why);
			if (unlikely(n < 0))
				return n;
			if (n == 0)
				return 0;
		}
		for (; n > 0; n--) {
			uint32_t id, len;
			int ret;

			if (*budget == 0 || unlikely(!svq_log_room(vq, log)))
				return 1;
			vring_shadow_get_used(sl, &vq->s, &id, &len);
			ret = svq_complete(vq, m, hint, log, id, len, gl, sl);
			if (unlikely(ret))
				return ret;
			(*budget)--;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

/*
 * The part of a data-path call that runs inside the RCU read side, for a
 * guest ring of layout @gl shadowed by one of layout @sl.  Always inline:
 * svq_run_layouts() instantiates it once per pair, so the ring layers'
 * dispatch folds away and each pair runs straight-line code.
 */
SVQ_HOT int svq_run(struct vuiso_vq *vq, bool from_guest, bool *kick,
		    bool *notify, enum vuiso_layout gl, enum vuiso_layout sl)
{
	struct vuiso_log *log = svq_log(vq);
	const struct vuiso_memmap *m;
	uint32_t budget = vq->budget;
	size_t hint = 0;
	int ret = 0, r;

	m = atomic_load_explicit(&vq->dev->mem, memory_order_acquire);
	if (unlikely(!m || vring_guest_map(gl, &vq->g, m, &hint)))
		return svq_break(
			vq,
			vring_bad(
				vq->why, -EFAULT,
				"guest: a ring of queue %u is not in guest memory",
				vq->idx));
	if (!from_guest) {
		r = svq_take_used(vq, m, &hint, log, &budget, gl, sl);
		*notify = vring_guest_flush(gl, &vq->g, log);
		if (unlikely(r < 0))
			return svq_break(vq, r);
		ret = r;
		/* Resume guest work that waited for room or for budget. */
		if (!vq->guest_pending || vq->run != SVQ_RUNNING)
			return ret;
	}
	if (vq->run == SVQ_RUNNING) {
		r = svq_take_guest(vq, m, &hint, log, &budget, kick, gl, sl);
		if (unlikely(r < 0))
			return svq_break(vq, r);
		ret |= r;
	}
	return ret;
}

/* One svq_run() per pair of layouts; every pair has its own case. */
SVQ_HOT int svq_run_layouts(struct vuiso_vq *vq, bool from_guest, bool *kick,
			    bool *notify)
{
	const enum vuiso_layout split = VUISO_LAYOUT_SPLIT;
	const enum vuiso_layout packed = VUISO_LAYOUT_PACKED;

	switch (vq->glayout) {
	case VUISO_LAYOUT_SPLIT:
		switch (vq->slayout) {
		case VUISO_LAYOUT_SPLIT:
			return svq_run(vq, from_guest, kick, notify, split,
				       split);
		case VUISO_LAYOUT_PACKED:
			return svq_run(vq, from_guest, kick, notify, split,
				       packed);
		}
		break;
	case VUISO_LAYOUT_PACKED:
		switch (vq->slayout) {
		case VUISO_LAYOUT_SPLIT:
			return svq_run(vq, from_guest, kick, notify, packed,
				       split);
		case VUISO_LAYOUT_PACKED:
			return svq_run(vq, from_guest, kick, notify, packed,
				       packed);
		}
		break;
	}
	__builtin_unreachable();
}

SVQ_HOT int svq_call(struct vuiso_vq *vq, bool from_guest)
{
	bool kick = false, notify = false;
	int ret;

	if (unlikely(vq->broken))
		return -EIO;
	if (unlikely(vq->run == SVQ_DETACHED)) {
		/* No back-end: the guest's work waits for the next one. */
		if (!from_guest)
			return -EINVAL;
		vq->guest_pending = true;
		return 0;
	}
	if (unlikely(vq->run == SVQ_STOPPED ||
		     (from_guest && vq->run != SVQ_RUNNING)))
		return -EINVAL;

	rcu_read_lock();
	ret = svq_run_layouts(vq, from_guest, &kick, &notify);
	rcu_read_unlock();
	if (unlikely(vq->log.n))
		svq_log_flush(vq);

	if (kick && !vq->broken) {
		vq->stats.backend_kicks++;
		if (vq->dev->ops.kick_backend)
			vq->dev->ops.kick_backend(vq->dev->opaque, vq->idx);
	}
	if (notify) {
		vq->stats.guest_notifies++;
		if (vq->dev->ops.notify_guest)
			vq->dev->ops.notify_guest(vq->dev->opaque, vq->idx);
	}
	svq_report(vq);
	return ret;
}

/* The two directions, each with its own copy of the data path; the
 * control path (start, attach, stop) calls these too. */
static __attribute__((noinline)) int svq_from_guest(struct vuiso_vq *vq)
{
	return svq_call(vq, true);
}

static __attribute__((noinline)) int svq_from_backend(struct vuiso_vq *vq)
{
	return svq_call(vq, false);
}

VUISO_API int vuiso_vq_kick_from_guest(struct vuiso_vq *vq)
{
	return svq_from_guest(vq);
}

VUISO_API int vuiso_vq_call_from_backend(struct vuiso_vq *vq)
{
	return svq_from_backend(vq);
}

/* Transport bits the shadow virtqueue cannot honour on either side. */
#define SVQ_UNSUPPORTED                                                       \
	(VUISO_BIT(VUISO_F_IN_ORDER) | VUISO_BIT(VUISO_F_NOTIFICATION_DATA) | \
	 VUISO_BIT(VUISO_F_ACCESS_PLATFORM))

/*
 * A fresh shadow ring for a back-end that negotiated @backend_features: its
 * layout is packed exactly when they have RING_PACKED.  Fills @shadow (may
 * be NULL) with what the back-end must be told.
 */
static void svq_shadow_begin(struct vuiso_vq *vq, uint64_t backend_features,
			     struct vuiso_vq_shadow *shadow)
{
	enum vuiso_layout slayout =
		backend_features & VUISO_BIT(VUISO_F_RING_PACKED)
			? VUISO_LAYOUT_PACKED
			: VUISO_LAYOUT_SPLIT;
	const struct vuiso_ring_ops *sops = vring_ops(slayout);
	uint64_t d, a, u;

	vq->slayout = slayout;
	vq->sops = sops;
	sops->shadow_setup(&vq->s, vq->ring_base, vq->size,
			   !!(backend_features & VUISO_BIT(VUISO_F_EVENT_IDX)),
			   &vq->ids);
	if (!shadow)
		return;
	sops->shadow_layout(vq->size, &d, &a, &u);
	shadow->size = vq->size;
	shadow->layout = slayout;
	shadow->vring_base = sops->shadow_base;
	shadow->desc_addr = (uint64_t)(uintptr_t)(vq->ring_base + d);
	shadow->avail_addr = (uint64_t)(uintptr_t)(vq->ring_base + a);
	shadow->used_addr = (uint64_t)(uintptr_t)(vq->ring_base + u);
	shadow->desc_backend = vq->ring_backend + d;
	shadow->avail_backend = vq->ring_backend + a;
	shadow->used_backend = vq->ring_backend + u;
}

VUISO_API int vuiso_vq_start(struct vuiso_vq *vq,
			     const struct vuiso_vq_config *cfg,
			     struct vuiso_vq_shadow *shadow)
{
	const uint64_t packed = VUISO_BIT(VUISO_F_RING_PACKED);
	const struct vuiso_ring_ops *gops;
	enum vuiso_layout glayout;
	struct vuiso_dev *dev = vq->dev;
	const struct vuiso_memmap *m;
	size_t hint = 0;
	int ret;

	if (vq->run != SVQ_STOPPED || vq->broken)
		return -EBUSY;
	if (!cfg || cfg->version != VUISO_VQ_CONFIG_VERSION || !cfg->size ||
	    cfg->size > dev->queue_size_max || (cfg->size & (cfg->size - 1)))
		return -EINVAL;
	glayout = (enum vuiso_layout)cfg->layout;
	gops = vring_ops(glayout);
	if (!gops)
		return -ENOTSUP;
	/* The guest's layout is the one its driver negotiated. */
	if ((glayout == VUISO_LAYOUT_PACKED) !=
	    !!(cfg->guest_features & packed))
		return -EINVAL;
	if ((cfg->guest_features | cfg->backend_features) & SVQ_UNSUPPORTED)
		return -ENOTSUP;

	ret = gops->guest_setup(&vq->g, cfg, &vq->ids);
	if (ret)
		return ret;
	vq->glayout = glayout;
	vq->gops = gops;

	rcu_read_lock();
	m = atomic_load_explicit(&dev->mem, memory_order_acquire);
	ret = m ? vring_guest_map(glayout, &vq->g, m, &hint) : -EFAULT;
	rcu_read_unlock();
	if (ret)
		return ret;

	vq->size = cfg->size;
	vq->budget = dev->budget ? dev->budget : cfg->size;
	/* The shadow's layout is the one the back-end was told to use. */
	svq_shadow_begin(vq, cfg->backend_features, shadow);
	svq_clear(vq, cfg->size);
	memset(&vq->stats, 0, sizeof(vq->stats));
	vq->run = SVQ_RUNNING;
	/*
	 * The guest may have made chains available while the queue was
	 * stopped, and may have been told not to kick (an earlier run that
	 * waited for room left NO_NOTIFY or DISABLE, or a stale event index):
	 * it will not kick for those.  Take them now and ask for kicks again.
	 * Kicking the back-end before the VMM has handed it the shadow ring
	 * is harmless: an eventfd keeps the count until it is read.  A guest
	 * violation found here breaks the queue and is reported as ever.
	 */
	svq_from_guest(vq);
	return 0;
}

VUISO_API int vuiso_vq_detach(struct vuiso_vq *vq)
{
	if (vq->broken)
		return -EIO;
	if (vq->run != SVQ_RUNNING && vq->run != SVQ_STOPPING)
		return -EINVAL;
	/* The requests stay where they are: slots, bounce blocks, guest
	 * addresses, forwarding numbers.  Only the shadow ring is lost. */
	vq->run = SVQ_DETACHED;
	return (int)vq->inflight;
}

static int svq_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Fill vq->byage with the head ids of the requests in flight, oldest
 * first, and return how many.  The key is a request's forwarding number
 * less the next one's, modulo 2^32: every request in flight was forwarded
 * fewer than 2^16 numbers ago, so the key orders them across a wrap too.
 * Control path only (replay, stop): the data path just numbers requests.
 */
static uint32_t svq_inflight_by_age(struct vuiso_vq *vq)
{
	uint32_t n = 0;

	for (uint32_t h = 0; h < vq->size; h++) {
		const struct svq_req *r = &vq->req[h];

		if (r->state == SVQ_REQ_INFLIGHT)
			vq->byage[n++] = (uint64_t)(uint32_t)(r->seq - vq->seq)
						 << 16 |
					 h;
	}
	qsort(vq->byage, n, sizeof(*vq->byage), svq_cmp_u64);
	return n;
}

/*
 * Forward the kept requests again, oldest first, into the fresh shadow
 * ring: the readable bytes once more from guest RAM, since the old
 * back-end may have written the bounce blocks.  Runs inside the RCU read
 * side.  Return: the number replayed, or -EFAULT with vq->why set.
 */
static int svq_replay(struct vuiso_vq *vq, const struct vuiso_memmap *m,
		      size_t *hint)
{
	uint32_t count = svq_inflight_by_age(vq);
	int n = 0;

	for (uint32_t k = 0; k < count; k++) {
		uint16_t h = (uint16_t)vq->byage[k], s = h;
		const struct svq_req *r = &vq->req[h];

		for (unsigned i = 0; i < r->nslots; i++) {
			const struct svq_slot *sl = &vq->slot[s];
			uint64_t off = (uint64_t)sl->blk
				       << VUISO_POOL_BLOCK_SHIFT;
			struct vuiso_sbuf *sb = &vq->sbuf[i];

			if (!sl->seg.write) {
				if (unlikely(copy_from_guest(
					    m, sl->seg.gpa, vq->pool_base + off,
					    sl->seg.len, hint)))
					return vring_bad(
						vq->why, -EFAULT,
						"guest: buffer 0x%" PRIx64
						"+%u of buffer id %u left guest memory before its replay",
						sl->seg.gpa, sl->seg.len,
						vring_token_id(r->guest_token));
			} else if (unlikely(vq->clear_writable)) {
				memset(vq->pool_base + off, 0, sl->seg.len);
			}
			sb->addr = vq->pool_backend + off;
			sb->len = sl->seg.len;
			sb->id = s;
			sb->write = sl->seg.write;
			s = sl->next;
		}
		vring_shadow_add(vq->slayout, &vq->s, vq->sbuf, r->nslots);
		n++;
	}
	return n;
}

VUISO_API int vuiso_vq_attach(struct vuiso_vq *vq, uint64_t backend_features,
			      struct vuiso_vq_shadow *shadow)
{
	const struct vuiso_memmap *m;
	bool kick = false;
	size_t hint = 0;
	int n;

	if (vq->broken)
		return -EIO;
	if (vq->run != SVQ_DETACHED)
		return -EINVAL;
	if (backend_features & SVQ_UNSUPPORTED)
		return -ENOTSUP;
	svq_shadow_begin(vq, backend_features, shadow);

	rcu_read_lock();
	m = atomic_load_explicit(&vq->dev->mem, memory_order_acquire);
	n = m ? svq_replay(vq, m, &hint)
	      : vring_bad(vq->why, -EFAULT,
			  "guest: no guest memory to replay queue %u from",
			  vq->idx);
	if (n > 0)
		kick = vring_shadow_publish(vq->slayout, &vq->s);
	rcu_read_unlock();
	if (n < 0) {
		svq_break(vq, n);
		svq_report(vq);
		return -EIO;
	}
	vq->run = SVQ_RUNNING;
	if (kick) {
		vq->stats.backend_kicks++;
		if (vq->dev->ops.kick_backend)
			vq->dev->ops.kick_backend(vq->dev->opaque, vq->idx);
	}
	/* Then what the guest made available meanwhile. */
	vq->guest_pending = true;
	svq_from_guest(vq);
	return n;
}

/* Complete whatever the back-end has used, however many calls it takes
 * (each bounded by the budget; the in-flight requests bound the total). */
static int svq_drain_used(struct vuiso_vq *vq)
{
	int r = 0;

	while (vq->inflight && (r = svq_from_backend(vq)) == 1)
		;
	return r < 0 ? r : 0;
}

/* Hand request @h, which the back-end never took, back to the guest. */
static void svq_give_back(struct vuiso_vq *vq, uint16_t h)
{
	struct svq_req *r = &vq->req[h];

	vq->gops->guest_unconsume(&vq->g, r->guest_token);
	svq_chain_free(vq, h, r->nslots);
	/* Never made available, as far as any later used id is concerned. */
	svq_req_retire(vq, h, SVQ_REQ_NEVER);
}

VUISO_API int vuiso_vq_stop_begin(struct vuiso_vq *vq)
{
	int r;

	if (vq->broken)
		return -EIO;
	if (vq->run != SVQ_RUNNING && vq->run != SVQ_STOPPING)
		return -EINVAL;
	vq->run = SVQ_STOPPING;
	/*
	 * No more calls: what is left is polled.  A back-end may close its
	 * call eventfd at GET_VRING_BASE (libvhost-user does) and fail hard
	 * when a request it completes later tries to write it.
	 */
	vring_shadow_calls_off(vq->slayout, &vq->s);
	r = svq_drain_used(vq);
	if (r < 0)
		return r;
	return (int)vq->inflight;
}

VUISO_API int vuiso_vq_stop_finish(struct vuiso_vq *vq, uint32_t backend_base,
				   struct vuiso_vq_state *state)
{
	struct vuiso_vq_state st = {0};
	uint32_t left;
	int ret = 0;

	if (vq->broken) {
		ret = -EIO;
		goto out;
	}
	if (vq->run != SVQ_STOPPING)
		return -EINVAL;
	/* What the back-end used before its ring stopped. */
	ret = svq_drain_used(vq);
	if (ret < 0)
		goto out;
	/* What it never took goes back to the guest, newest first: those
	 * are the newest the guest made available, so the guest's index
	 * moves back over them and the next start reads them again. */
	left = svq_inflight_by_age(vq);
	for (;;) {
		uint16_t h = left ? (uint16_t)vq->byage[left - 1] : SLOT_NIL;
		int r = vq->sops->shadow_unadd(
			&vq->s, backend_base,
			h == SLOT_NIL ? 0 : vq->req[h].nslots);

		if (r == 0)
			break;
		if (r < 0 || h == SLOT_NIL) {
			svq_break(
				vq,
				vring_bad(
					vq->why, -EPROTO,
					"back-end: GET_VRING_BASE answered 0x%x, not an index of its ring with %u request(s) in flight",
					backend_base, vq->inflight));
			svq_report(vq);
			ret = -EIO;
			goto out;
		}
		svq_give_back(vq, h);
		left--;
	}
	/* Taken and not finished: still the back-end's. */
	if (vq->inflight)
		ret = (int)vq->inflight;
	else
		vq->run = SVQ_STOPPED;
out:
	vq->gops->guest_state(&vq->g, &st);
	st.inflight = vq->inflight;
	if (state)
		*state = st;
	return ret;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

VUISO_API int vuiso_vq_stop(struct vuiso_vq *vq, unsigned timeout_ms,
			    struct vuiso_vq_state *state)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct vuiso_vq_state st = {0};
	int ret = 0;

	if (vq->run == SVQ_DETACHED) {
		/* No back-end to wait for: the kept requests stay kept
		 * (vuiso_vq_attach() replays them, vuiso_vq_reset() drops
		 * them). */
		if (vq->broken)
			ret = -EIO;
		else if (vq->inflight)
			ret = -ETIMEDOUT;
		else
			vq->run = SVQ_STOPPED;
		vq->gops->guest_state(&vq->g, &st);
	} else if (vq->run != SVQ_STOPPED) {
		vq->run = SVQ_STOPPING;
		for (;;) {
			int r = vq->inflight ? svq_from_backend(vq) : 0;
			uint64_t now;

			if (r == -EIO || vq->broken) {
				ret = -EIO;
				break;
			}
			if (!vq->inflight) {
				vq->run = SVQ_STOPPED;
				break;
			}
			if (r == 1)
				continue;
			now = now_ns();
			if (now >= deadline) {
				ret = -ETIMEDOUT;
				break;
			}
			{
				uint64_t wait = deadline - now;
				struct timespec ts = {0, 0};

				if (wait > 200000)
					wait = 200000;
				ts.tv_nsec = (long)wait;
				nanosleep(&ts, NULL);
			}
		}
		vq->gops->guest_state(&vq->g, &st);
	}
	st.inflight = vq->inflight;
	if (state)
		*state = st;
	return ret;
}

/*
 * Zero the queue's bounce pool.  Punching a hole gives the pages back and
 * makes every mapping (the back-end's too) read zeros, without touching
 * pool pages that were never used; memset is the fallback for an adopted
 * fd that cannot punch holes.
 */
static void svq_scrub_pool(struct vuiso_vq *vq)
{
	struct vuiso_dev *dev = vq->dev;
	off_t off = (off_t)(vq->pool_base - dev->map);

	if (fallocate(dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off,
		      (off_t)dev->pool_size) == 0)
		return;
	memset(vq->pool_base, 0, dev->pool_size);
}

VUISO_API void vuiso_vq_reset(struct vuiso_vq *vq)
{
	/* Nothing of the old guest's requests outlives the reset. */
	svq_scrub_pool(vq);
	if (vq->size) {
		svq_clear(vq, vq->size);
		vq->sops->shadow_setup(&vq->s, vq->ring_base, vq->size, false,
				       &vq->ids);
	}
	vq->run = SVQ_STOPPED;
	vq->broken = false;
	vq->err = 0;
}

VUISO_API void vuiso_vq_get_stats(const struct vuiso_vq *vq,
				  struct vuiso_vq_stats *stats)
{
	*stats = vq->stats;
	stats->inflight = vq->inflight;
	stats->broken = vq->broken;
}
