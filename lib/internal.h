/* SPDX-License-Identifier: MIT */
/*
 * libvuiso internals shared by the modules of lib/.  Nothing here is ABI.
 */
#ifndef VUISO_INTERNAL_H
#define VUISO_INTERNAL_H

#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vuiso/vuiso.h"

#define VUISO_INTERNAL __attribute__((visibility("hidden")))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define VUISO_ALIGN_UP(x, a) (((x) + (a)-1) & ~((__typeof__(x))(a)-1))
#define VUISO_BIT(n) (1ULL << (n))

/*
 * The event-index test of VIRTIO 2.7.7.2 / 2.7.10 (split) and 2.8.10
 * (packed, on positions adjusted for the wrap counter): notify when @event
 * lies in the half-open window [old, new).
 */
static inline bool vring_need_event(uint16_t event, uint16_t new_idx,
				    uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

/*
 * Shared-memory accessors.  Both rings live in memory another party writes
 * concurrently, so every access is a single atomic load or store: a value is
 * read exactly once into a local and the compiler may not re-read it.
 * Little-endian conversion is folded in (VIRTIO 1.x rings are LE).
 */
static inline uint16_t vuiso_ld16(const void *p)
{
	return le16toh(atomic_load_explicit((const _Atomic uint16_t *)p,
					    memory_order_relaxed));
}

static inline uint32_t vuiso_ld32(const void *p)
{
	return le32toh(atomic_load_explicit((const _Atomic uint32_t *)p,
					    memory_order_relaxed));
}

static inline uint64_t vuiso_ld64(const void *p)
{
	return le64toh(atomic_load_explicit((const _Atomic uint64_t *)p,
					    memory_order_relaxed));
}

static inline void vuiso_st16(void *p, uint16_t v)
{
	atomic_store_explicit((_Atomic uint16_t *)p, htole16(v),
			      memory_order_relaxed);
}

static inline void vuiso_st32(void *p, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)p, htole32(v),
			      memory_order_relaxed);
}

static inline void vuiso_st64(void *p, uint64_t v)
{
	atomic_store_explicit((_Atomic uint64_t *)p, htole64(v),
			      memory_order_relaxed);
}

/* ---- Guest memory map (memmap.c) ---- */

/*
 * An immutable, sorted snapshot of guest RAM, published with RCU.  r[0]
 * exists even when n is 0 (a range of size 0 at 0, hva NULL), and a hint
 * is only ever 0 or an index below n: vuiso_memmap_hint() reads r[*hint]
 * unchecked.
 */
struct vuiso_memmap {
	size_t n;                    /* number of ranges */
	struct vuiso_mem_region r[]; /* sorted by gpa, non-overlapping */
};

VUISO_INTERNAL int vuiso_memmap_new(const struct vuiso_mem_region *regions,
				    size_t n, struct vuiso_memmap **out);

/* The range holding @gpa, or NULL.  @hint caches the last hit per caller. */
VUISO_INTERNAL const struct vuiso_mem_region *
vuiso_memmap_find(const struct vuiso_memmap *m, uint64_t gpa, size_t *hint);

/* Host pointer for [@gpa, @gpa + @len) when it lies in one range, else NULL. */
VUISO_INTERNAL void *vuiso_memmap_contig(const struct vuiso_memmap *m,
					 uint64_t gpa, uint64_t len,
					 size_t *hint);

/* 0 when all of [@gpa, @gpa + @len) is mapped (across ranges), -EFAULT. */
VUISO_INTERNAL int vuiso_memmap_check(const struct vuiso_memmap *m,
				      uint64_t gpa, uint64_t len, size_t *hint);

/*
 * Fast path: host pointer for [@gpa, @gpa + @len) when it lies in the range
 * *@hint points at, else NULL (the caller falls back to the full lookup).
 * @len > 0: with n 0, r[0] has size 0, so every lookup gives NULL.
 */
static inline void *vuiso_memmap_hint(const struct vuiso_memmap *m,
				      uint64_t gpa, uint64_t len,
				      const size_t *hint)
{
	const struct vuiso_mem_region *r = &m->r[*hint];
	uint64_t off = gpa - r->gpa; /* below the range: wraps past size */

	if (off > r->size || len > r->size - off)
		return NULL;
	return (uint8_t *)r->hva + off;
}

/* Copy between guest memory and private memory, across ranges. */
VUISO_INTERNAL int vuiso_memmap_read(const struct vuiso_memmap *m, uint64_t gpa,
				     void *dst, uint64_t len, size_t *hint);
VUISO_INTERNAL int vuiso_memmap_write(const struct vuiso_memmap *m,
				      uint64_t gpa, const void *src,
				      uint64_t len, size_t *hint);

/* ---- Bounce pool (bounce.c) ---- */

/* Smallest bounce block: one cache line. */
#define VUISO_POOL_BLOCK_SHIFT 6
#define VUISO_POOL_BLOCK (1u << VUISO_POOL_BLOCK_SHIFT)
#define VUISO_POOL_MIN (64u * 1024)
#define VUISO_POOL_MAX (1ULL << 30)
#define VUISO_POOL_ORDERS 25 /* 64 B << 24 = 1 GiB */

/*
 * A binary buddy allocator over a power-of-two pool, with every piece of
 * metadata in private memory (the pool itself is writable by the back-end).
 * Allocation and free are O(VUISO_POOL_ORDERS): a find-first-set over the
 * non-empty orders, then at most one split or merge per order.
 */
/* Freed blocks parked per order before they are merged (lazy buddy). */
#define VUISO_POOL_CACHE 256

struct vuiso_pool {
	uint32_t nblocks;   /* pool size in VUISO_POOL_BLOCK units */
	uint32_t max_order; /* log2(nblocks) */
	uint32_t nonempty;  /* bit k set when free list k is not empty */
	uint32_t head[VUISO_POOL_ORDERS]; /* first free block of order k */
	uint32_t *next;                   /* free-list links, per block */
	uint32_t *prev;
	uint8_t *state;     /* per block head: order | VUISO_POOL_FREE */
	uint64_t tree_free; /* free blocks in the buddy tree (not parked) */
	uint16_t ncache[VUISO_POOL_ORDERS]; /* blocks parked per order */
	uint32_t cache[VUISO_POOL_ORDERS][VUISO_POOL_CACHE];
};

#define VUISO_POOL_NIL UINT32_MAX

VUISO_INTERNAL int vuiso_pool_init(struct vuiso_pool *p, uint64_t bytes);
VUISO_INTERNAL void vuiso_pool_destroy(struct vuiso_pool *p);
VUISO_INTERNAL void vuiso_pool_reset(struct vuiso_pool *p);
/* Out of line: a miss in the per-order cache (bounce.c). */
VUISO_INTERNAL int64_t vuiso_pool_get_slow(struct vuiso_pool *p,
					   unsigned order);
VUISO_INTERNAL void vuiso_pool_put_slow(struct vuiso_pool *p, uint32_t blk,
					unsigned order);

/*
 * The three calls every forwarded buffer makes are inline: on the data path
 * they are a few instructions each when the per-order cache hits, which is
 * what a steady stream of requests does.
 */

/* Order of the block that holds @bytes (> 0); may exceed the pool's. */
static inline unsigned vuiso_pool_order_of(uint32_t bytes)
{
	uint32_t last = (bytes - 1) >> VUISO_POOL_BLOCK_SHIFT; /* last block */

	return last ? 32 - (unsigned)__builtin_clz(last) : 0;
}

/* Order of the block that holds @bytes (> 0), or -E2BIG past the pool. */
static inline int vuiso_pool_order(const struct vuiso_pool *p, uint64_t bytes)
{
	if (unlikely(bytes > (uint64_t)p->nblocks << VUISO_POOL_BLOCK_SHIFT))
		return -E2BIG;
	return (int)vuiso_pool_order_of((uint32_t)bytes);
}

/* Block index, or -ENOSPC when no block of @order is free now. */
static inline int64_t vuiso_pool_get(struct vuiso_pool *p, unsigned order)
{
	if (likely(p->ncache[order]))
		return p->cache[order][--p->ncache[order]];
	return vuiso_pool_get_slow(p, order);
}

static inline void vuiso_pool_put(struct vuiso_pool *p, uint32_t blk,
				  unsigned order)
{
	if (likely(p->ncache[order] < VUISO_POOL_CACHE)) {
		p->cache[order][p->ncache[order]++] = blk;
		return;
	}
	vuiso_pool_put_slow(p, blk, order);
}
/* Merge every parked block into the buddy tree; true if there was any. */
VUISO_INTERNAL bool vuiso_pool_flush(struct vuiso_pool *p);
/* Free space in blocks, parked blocks included (not on the data path). */
VUISO_INTERNAL uint64_t vuiso_pool_free_blocks(const struct vuiso_pool *p);

/* ---- Error reporting ---- */

#define VUISO_ERRMSG_MAX 160

#endif /* VUISO_INTERNAL_H */
