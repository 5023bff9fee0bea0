// SPDX-License-Identifier: MIT
/*
 * Bounce pool: a binary buddy allocator over one queue's share of the
 * isolated region.
 *
 * Why buddy: allocation and free are bounded by the number of orders (25),
 * with no per-request malloc; a request's buffers keep their own sizes
 * instead of fixed 2 KiB slots (swiotlb's waste on small packets); and from
 * an empty power-of-two pool any set of blocks whose sizes add up to at most
 * the pool size can be allocated (the free blocks always mirror the binary
 * digits of the free space).  That last property is what makes back-pressure
 * safe: a request that fits an empty pool always fits once the back-end has
 * completed enough of what is in flight, so waiting never deadlocks.
 *
 * Freed blocks are first parked in a small per-order cache and handed out
 * again as they are, so a steady stream of same-sized requests neither
 * splits nor merges.  An allocation that finds no block merges every cache
 * back into the buddy tree before it gives up.  Reused parked blocks can
 * leave the tree fragmented, so the fit-from-empty property holds after
 * vuiso_pool_flush() on a pool with nothing allocated: the engine flushes
 * and retries once when a request does not fit and nothing is in flight.
 *
 * All metadata lives in private memory: the pool bytes are shared with the
 * back-end, which may scribble on free blocks at any time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define POOL_FREE 0x80u
#define POOL_ORDER_MASK 0x1fu

static void pool_push(struct vuiso_pool *p, uint32_t blk, unsigned order)
{
	uint32_t h = p->head[order];

	p->next[blk] = h;
	p->prev[blk] = VUISO_POOL_NIL;
	if (h != VUISO_POOL_NIL)
		p->prev[h] = blk;
	p->head[order] = blk;
	p->nonempty |= 1u << order;
	p->state[blk] = (uint8_t)(order | POOL_FREE);
}

static void pool_unlink(struct vuiso_pool *p, uint32_t blk, unsigned order)
{
	uint32_t n = p->next[blk], pv = p->prev[blk];

	if (pv != VUISO_POOL_NIL)
		p->next[pv] = n;
	else
		p->head[order] = n;
	if (n != VUISO_POOL_NIL)
		p->prev[n] = pv;
	if (p->head[order] == VUISO_POOL_NIL)
		p->nonempty &= ~(1u << order);
	p->state[blk] = (uint8_t)order;
}

int vuiso_pool_init(struct vuiso_pool *p, uint64_t bytes)
{
	uint64_t nblocks;

	memset(p, 0, sizeof(*p));
	if (bytes < VUISO_POOL_MIN || bytes > VUISO_POOL_MAX ||
	    (bytes & (bytes - 1)))
		return -EINVAL;
	nblocks = bytes >> VUISO_POOL_BLOCK_SHIFT;
	p->nblocks = (uint32_t)nblocks;
	p->max_order = (uint32_t)__builtin_ctzll(nblocks);
	p->next = malloc(nblocks * sizeof(*p->next));
	p->prev = malloc(nblocks * sizeof(*p->prev));
	p->state = malloc(nblocks);
	if (!p->next || !p->prev || !p->state) {
		vuiso_pool_destroy(p);
		return -ENOMEM;
	}
	vuiso_pool_reset(p);
	return 0;
}

void vuiso_pool_destroy(struct vuiso_pool *p)
{
	free(p->next);
	free(p->prev);
	free(p->state);
	memset(p, 0, sizeof(*p));
}

void vuiso_pool_reset(struct vuiso_pool *p)
{
	for (unsigned k = 0; k < VUISO_POOL_ORDERS; k++)
		p->head[k] = VUISO_POOL_NIL;
	p->nonempty = 0;
	/* Only block heads are ever consulted; clear the rest for clarity. */
	memset(p->state, 0, p->nblocks);
	memset(p->ncache, 0, sizeof(p->ncache));
	pool_push(p, 0, p->max_order);
	p->tree_free = p->nblocks;
}

/* Return a block to the buddy tree, merging with free buddies. */
static void pool_merge(struct vuiso_pool *p, uint32_t blk, unsigned order)
{
	while (order < p->max_order) {
		uint32_t buddy = blk ^ (1u << order);

		if (p->state[buddy] != (POOL_FREE | order))
			break;
		pool_unlink(p, buddy, order);
		p->state[buddy] = 0;
		blk &= ~(1u << order);
		order++;
	}
	pool_push(p, blk, order);
}

/* Merge every parked block; at most VUISO_POOL_ORDERS * VUISO_POOL_CACHE. */
bool vuiso_pool_flush(struct vuiso_pool *p)
{
	bool any = false;

	for (unsigned k = 0; k < VUISO_POOL_ORDERS; k++) {
		while (p->ncache[k]) {
			pool_merge(p, p->cache[k][--p->ncache[k]], k);
			p->tree_free += 1u << k;
			any = true;
		}
	}
	return any;
}

static int64_t pool_split(struct vuiso_pool *p, unsigned order)
{
	uint32_t avail = p->nonempty & ~((1u << order) - 1);
	unsigned k;
	uint32_t blk;

	if (!avail)
		return -ENOSPC;
	k = (unsigned)__builtin_ctz(avail);
	blk = p->head[k];
	pool_unlink(p, blk, k);
	/* Split down, keeping the low half and freeing the high buddies. */
	while (k > order) {
		k--;
		pool_push(p, blk + (1u << k), k);
	}
	p->state[blk] = (uint8_t)order;
	return blk;
}

/* No parked block of @order: split a bigger one, merging the caches first
 * if none is free. */
int64_t vuiso_pool_get_slow(struct vuiso_pool *p, unsigned order)
{
	int64_t blk = pool_split(p, order);

	if (blk < 0 && vuiso_pool_flush(p))
		blk = pool_split(p, order);
	if (blk < 0)
		return blk;
	p->tree_free -= 1u << order;
	return blk;
}

/* The cache of @order is full: merge the block into the buddy tree. */
void vuiso_pool_put_slow(struct vuiso_pool *p, uint32_t blk, unsigned order)
{
	p->tree_free += 1u << order;
	pool_merge(p, blk, order);
}

uint64_t vuiso_pool_free_blocks(const struct vuiso_pool *p)
{
	uint64_t n = p->tree_free;

	for (unsigned k = 0; k < VUISO_POOL_ORDERS; k++)
		n += (uint64_t)p->ncache[k] << k;
	return n;
}
