// SPDX-License-Identifier: MIT
/*
 * Simulated guest driver and back-end for the tests, benchmarks and fuzz
 * harnesses.  See sim.h.
 */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sim.h"

#define PAGE 4096ULL
#define GPA_BASE 0x100000ULL

#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

static inline uint16_t ld16(const void *p)
{
	return le16toh(atomic_load_explicit((const _Atomic uint16_t *)p,
					    memory_order_relaxed));
}

static inline void st16(void *p, uint16_t v)
{
	atomic_store_explicit((_Atomic uint16_t *)p, htole16(v),
			      memory_order_relaxed);
}

static inline bool need_event(uint16_t ev, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - ev - 1) < (uint16_t)(new_idx - old);
}

void sim_put_desc(uint8_t *d, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &f, 2);
	memcpy(d + 14, &n, 2);
}

uint64_t sim_rand(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* ---- guest ---- */

static uint8_t *map_guarded(uint64_t size)
{
	uint8_t *p = mmap(NULL, size + 2 * PAGE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p + PAGE, size, PROT_READ | PROT_WRITE)) {
		munmap(p, size + 2 * PAGE);
		return NULL;
	}
	return p + PAGE;
}

int sim_guest_init(struct sim_guest *g, unsigned nram, uint64_t ram_size,
		   uint32_t qsize, bool event_idx)
{
	uint64_t off;

	memset(g, 0, sizeof(*g));
	if (!nram || nram > SIM_MAX_RAM || ram_size % PAGE)
		return -EINVAL;
	for (unsigned i = 0; i < nram; i++) {
		g->ram[i].gpa = GPA_BASE + i * ram_size;
		g->ram[i].size = ram_size;
		g->ram[i].hva = map_guarded(ram_size);
		if (!g->ram[i].hva)
			return -ENOMEM;
		g->nram++;
	}
	g->qsize = qsize;
	g->event_idx = event_idx;
	g->desc_gpa = GPA_BASE;
	g->avail_gpa = GPA_BASE + 16ULL * qsize;
	g->used_gpa = (g->avail_gpa + 6 + 2ULL * qsize + PAGE - 1) &
		      ~(PAGE - 1);
	off = (g->used_gpa + 6 + 8ULL * qsize + PAGE - 1) & ~(PAGE - 1);
	if (off - GPA_BASE >= ram_size)
		return -EINVAL;
	g->desc = sim_gpa(g, g->desc_gpa);
	g->avail = sim_gpa(g, g->avail_gpa);
	g->used = sim_gpa(g, g->used_gpa);
	g->heap_gpa = off;
	g->heap_next = off;
	g->heap_end = GPA_BASE + nram * ram_size;
	g->next_free = calloc(qsize, sizeof(*g->next_free));
	g->chain_len = calloc(qsize, sizeof(*g->chain_len));
	g->indirect_gpa = calloc(qsize, sizeof(*g->indirect_gpa));
	if (!g->next_free || !g->chain_len || !g->indirect_gpa)
		return -ENOMEM;
	for (uint32_t i = 0; i < qsize; i++)
		g->next_free[i] = (uint16_t)(i + 1);
	g->nfree = qsize;
	return 0;
}

void sim_guest_fini(struct sim_guest *g)
{
	for (unsigned i = 0; i < g->nram; i++)
		munmap(g->ram[i].hva - PAGE, g->ram[i].size + 2 * PAGE);
	free(g->next_free);
	free(g->chain_len);
	free(g->indirect_gpa);
	memset(g, 0, sizeof(*g));
}

void *sim_gpa(struct sim_guest *g, uint64_t gpa)
{
	for (unsigned i = 0; i < g->nram; i++)
		if (gpa >= g->ram[i].gpa &&
		    gpa - g->ram[i].gpa < g->ram[i].size)
			return g->ram[i].hva + (gpa - g->ram[i].gpa);
	return NULL;
}

unsigned sim_guest_regions(struct sim_guest *g, struct vuiso_mem_region *out)
{
	for (unsigned i = 0; i < g->nram; i++) {
		out[i].gpa = g->ram[i].gpa;
		out[i].size = g->ram[i].size;
		out[i].hva = g->ram[i].hva;
	}
	return g->nram;
}

void sim_guest_vq_config(struct sim_guest *g, uint64_t guest_features,
			 uint64_t backend_features, struct vuiso_vq_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->version = VUISO_VQ_CONFIG_VERSION;
	cfg->layout = VUISO_LAYOUT_SPLIT;
	cfg->size = g->qsize;
	cfg->desc_gpa = g->desc_gpa;
	cfg->avail_gpa = g->avail_gpa;
	cfg->used_gpa = g->used_gpa;
	cfg->guest_features = guest_features;
	cfg->backend_features = backend_features;
	cfg->avail_idx = g->avail_idx;
	cfg->used_idx = g->last_used;
}

uint64_t sim_alloc(struct sim_guest *g, uint64_t len)
{
	uint64_t gpa = (g->heap_next + 63) & ~63ULL;

	if (len > g->heap_end - gpa)
		return 0;
	g->heap_next = gpa + len;
	return gpa;
}

void sim_heap_reset(struct sim_guest *g)
{
	g->heap_next = g->heap_gpa;
}

void sim_guest_fill(struct sim_guest *g, uint8_t seed)
{
	for (unsigned i = 0; i < g->nram; i++)
		for (uint64_t j = 0; j < g->ram[i].size; j++)
			g->ram[i].hva[j] = (uint8_t)(seed + j * 7 + (j >> 9));
}

static void copy_to_guest(struct sim_guest *g, uint64_t gpa, const void *src,
			  uint64_t len)
{
	const uint8_t *s = src;

	/* Byte-wise across ranges: only used for small indirect tables. */
	for (uint64_t i = 0; i < len; i++)
		*(uint8_t *)sim_gpa(g, gpa + i) = s[i];
}

int sim_add(struct sim_guest *g, const struct sim_buf *b, unsigned n,
	    bool indirect)
{
	unsigned need = indirect ? 1 : n;
	uint16_t head = g->free_head, d = head;

	if (!n || need > g->nfree)
		return -1;
	if (indirect) {
		uint64_t tgpa = sim_alloc(g, 16ULL * n);
		uint8_t *tbl;

		if (!tgpa)
			return -1;
		tbl = calloc(n, 16);
		if (!tbl)
			return -1;
		for (unsigned i = 0; i < n; i++)
			sim_put_desc(tbl + 16 * i, b[i].gpa, b[i].len,
				     (uint16_t)((b[i].write ? F_WRITE : 0) |
						(i + 1 < n ? F_NEXT : 0)),
				     (uint16_t)(i + 1));
		copy_to_guest(g, tgpa, tbl, 16ULL * n);
		free(tbl);
		sim_put_desc(g->desc + 16ULL * d, tgpa, 16 * n, F_INDIRECT, 0);
		g->free_head = g->next_free[d];
		g->indirect_gpa[head] = tgpa;
	} else {
		for (unsigned i = 0; i < n; i++) {
			uint16_t nx = g->next_free[d];

			sim_put_desc(g->desc + 16ULL * d, b[i].gpa, b[i].len,
				     (uint16_t)((b[i].write ? F_WRITE : 0) |
						(i + 1 < n ? F_NEXT : 0)),
				     i + 1 < n ? nx : 0);
			if (i + 1 < n)
				d = nx;
			else
				g->free_head = nx;
		}
		g->indirect_gpa[head] = 0;
	}
	g->nfree -= need;
	g->chain_len[head] = (uint16_t)need;
	st16(g->avail + 4 + 2ULL * (g->avail_idx & (g->qsize - 1)), head);
	g->avail_idx++;
	return head;
}

bool sim_kick_needed(struct sim_guest *g)
{
	uint16_t old = ld16(g->avail + 2);

	if (old == g->avail_idx)
		return false;
	/* Descriptors and ring entries before the index (device's acquire). */
	atomic_store_explicit((_Atomic uint16_t *)(g->avail + 2),
			      htole16(g->avail_idx), memory_order_release);
	/* Index before reading suppression (device's full barrier). */
	atomic_thread_fence(memory_order_seq_cst);
	if (g->event_idx)
		return need_event(ld16(g->used + 4 + 8ULL * g->qsize),
				  g->avail_idx, old);
	return !(ld16(g->used) & 1);
}

void sim_guest_arm(struct sim_guest *g)
{
	if (g->event_idx)
		st16(g->avail + 4 + 2ULL * g->qsize, g->last_used);
	atomic_thread_fence(memory_order_seq_cst);
}

bool sim_reap(struct sim_guest *g, uint32_t *id, uint32_t *len)
{
	uint16_t idx = le16toh(atomic_load_explicit(
		(const _Atomic uint16_t *)(g->used + 2), memory_order_acquire));
	const uint8_t *e;
	uint32_t v;
	uint16_t head, d;

	if (idx == g->last_used)
		return false;
	e = g->used + 4 + 8ULL * (g->last_used & (g->qsize - 1));
	memcpy(&v, e, 4);
	*id = le32toh(v);
	memcpy(&v, e + 4, 4);
	*len = le32toh(v);
	g->last_used++;
	if (*id >= g->qsize || !g->chain_len[*id])
		return true; /* the caller's test will flag it */
	head = (uint16_t)*id;
	d = head;
	for (unsigned i = 1; i < g->chain_len[head]; i++)
		d = g->next_free[d];
	g->next_free[d] = g->free_head;
	g->free_head = head;
	g->nfree += g->chain_len[head];
	g->chain_len[head] = 0;
	return true;
}

/* ---- back-end ---- */

int sim_backend_init(struct sim_backend *b, const struct vuiso_region_info *ri,
		     const struct vuiso_vq_shadow *sh, bool event_idx)
{
	memset(b, 0, sizeof(*b));
	/* Map the fd itself, as a vhost-user back-end does after
	 * SET_MEM_TABLE: it never sees the VMM's pointers. */
	b->map = mmap(NULL, ri->size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      ri->fd, (off_t)ri->fd_offset);
	if (b->map == MAP_FAILED)
		return -errno;
	b->map_size = ri->size;
	b->base = ri->backend_addr;
	b->qsize = sh->size;
	b->desc = b->map + (sh->desc_backend - b->base);
	b->avail = b->map + (sh->avail_backend - b->base);
	b->used = b->map + (sh->used_backend - b->base);
	b->event_idx = event_idx;
	return 0;
}

void sim_backend_fini(struct sim_backend *b)
{
	if (b->map && b->map != MAP_FAILED)
		munmap(b->map, b->map_size);
	memset(b, 0, sizeof(*b));
}

int sim_backend_pop(struct sim_backend *b, uint16_t *head, struct sim_seg *segs)
{
	uint16_t idx = ld16(b->avail + 2), i;
	unsigned n = 0;

	if (idx == b->last_avail)
		return 0;
	atomic_thread_fence(memory_order_acquire);
	i = ld16(b->avail + 4 + 2ULL * (b->last_avail & (b->qsize - 1)));
	b->last_avail++;
	*head = i;
	for (;;) {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
		const uint8_t *d;

		if (i >= b->qsize || n >= b->qsize)
			goto bad;
		d = b->desc + 16ULL * i;
		memcpy(&addr, d, 8);
		memcpy(&len, d + 8, 4);
		memcpy(&flags, d + 12, 2);
		memcpy(&next, d + 14, 2);
		addr = le64toh(addr);
		len = le32toh(len);
		flags = le16toh(flags);
		next = le16toh(next);
		if (addr < b->base || addr - b->base > b->map_size ||
		    len > b->map_size - (addr - b->base) ||
		    (flags & F_INDIRECT))
			goto bad;
		segs[n].ptr = b->map + (addr - b->base);
		segs[n].len = len;
		segs[n].write = flags & F_WRITE;
		n++;
		if (!(flags & F_NEXT))
			return (int)n;
		i = next;
	}
bad:
	b->bad++;
	return -1;
}

void sim_backend_push(struct sim_backend *b, uint32_t id, uint32_t len)
{
	uint8_t *e = b->used + 4 + 8ULL * (b->used_idx & (b->qsize - 1));
	uint32_t v = htole32(id);

	memcpy(e, &v, 4);
	v = htole32(len);
	memcpy(e + 4, &v, 4);
	b->used_idx++;
}

bool sim_backend_flush(struct sim_backend *b)
{
	uint16_t old = b->used_flushed;

	if (old == b->used_idx)
		return false;
	atomic_store_explicit((_Atomic uint16_t *)(b->used + 2),
			      htole16(b->used_idx), memory_order_release);
	b->used_flushed = b->used_idx;
	atomic_thread_fence(memory_order_seq_cst);
	if (b->event_idx) {
		if (need_event(ld16(b->avail + 4 + 2ULL * b->qsize),
			       b->used_idx, old)) {
			b->calls++;
			return true;
		}
		return false;
	}
	if (ld16(b->avail) & 1)
		return false;
	b->calls++;
	return true;
}

void sim_backend_arm(struct sim_backend *b)
{
	if (b->event_idx)
		st16(b->used + 4 + 8ULL * b->qsize, b->last_avail);
	atomic_thread_fence(memory_order_seq_cst);
}
