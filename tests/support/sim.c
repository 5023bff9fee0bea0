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

void sim_put_pdesc(uint8_t *d, uint64_t addr, uint32_t len, uint16_t id,
		   uint16_t flags)
{
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t i = htole16(id), f = htole16(flags);

	memcpy(d, &a, 8);
	memcpy(d + 8, &l, 4);
	memcpy(d + 12, &i, 2);
	memcpy(d + 14, &f, 2);
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

static void *sim_map(void *opaque, uint64_t gpa, uint64_t len)
{
	struct sim_guest *g = opaque;
	uint8_t *p = sim_gpa(g, gpa);

	/* Contiguous only when the last byte lies in the same mapping. */
	if (!p || !len || sim_gpa(g, gpa + len - 1) != p + len - 1)
		return NULL;
	return p;
}

static void sim_notify(void *opaque)
{
	((struct sim_guest *)opaque)->kicks++;
}

/* Start the shared driver on the areas recorded in @g. */
static int sim_virtq_start(struct sim_guest *g)
{
	struct virtq_config vc = {
		.layout = g->packed ? VIRTQ_LAYOUT_PACKED : VIRTQ_LAYOUT_SPLIT,
		.num = g->qsize,
		.features = 1ULL << VIRTQ_F_INDIRECT_DESC |
			    (g->event_idx ? 1ULL << VIRTQ_F_EVENT_IDX : 0),
		.gpa = {g->desc_gpa, g->avail_gpa, g->used_gpa},
		.indirect_gpa = g->indirect_gpa,
		.max_indirect = SIM_MAX_INDIRECT,
		.map = sim_map,
		.map_opaque = g,
		.notify = sim_notify,
		.notify_opaque = g,
	};
	int ret;

	if (!g->chain_head)
		g->chain_head = calloc(g->qsize, sizeof(*g->chain_head));
	if (!g->chain_indirect)
		g->chain_indirect =
			calloc(g->qsize, sizeof(*g->chain_indirect));
	if (!g->chain_head || !g->chain_indirect)
		return -ENOMEM;
	ret = virtq_init(&g->vq, &vc);
	if (ret)
		return ret;
	g->desc = sim_gpa(g, g->desc_gpa);
	g->avail = sim_gpa(g, g->avail_gpa);
	g->used = sim_gpa(g, g->used_gpa);
	return 0;
}

void sim_guest_remap(struct sim_guest *g)
{
	g->desc = sim_gpa(g, g->desc_gpa);
	g->avail = sim_gpa(g, g->avail_gpa);
	g->used = sim_gpa(g, g->used_gpa);
	if (g->packed) {
		g->vq.packed.desc = (struct virtq_packed_desc *)g->desc;
		g->vq.packed.driver = (struct virtq_packed_event *)g->avail;
		g->vq.packed.device = (struct virtq_packed_event *)g->used;
	} else {
		g->vq.split.desc = (struct virtq_split_desc *)g->desc;
		g->vq.split.avail = (struct virtq_split_avail *)g->avail;
		g->vq.split.used = (struct virtq_split_used *)g->used;
	}
	if (g->vq.indirect_hva)
		g->vq.indirect_hva = sim_gpa(g, g->vq.indirect_gpa);
}

int sim_guest_ring_reset(struct sim_guest *g)
{
	virtq_fini(&g->vq);
	memset(g->chain_indirect, 0, g->qsize * sizeof(*g->chain_indirect));
	return sim_virtq_start(g);
}

int sim_guest_init(struct sim_guest *g, unsigned nram, uint64_t ram_size,
		   uint32_t qsize, bool event_idx, bool packed)
{
	enum virtq_layout layout = packed ? VIRTQ_LAYOUT_PACKED
					  : VIRTQ_LAYOUT_SPLIT;
	struct virtq_areas sz;
	uint64_t off;
	int ret;

	memset(g, 0, sizeof(*g));
	if (!nram || nram > SIM_MAX_RAM || ram_size % PAGE)
		return -EINVAL;
	ret = virtq_area_sizes(layout, qsize, &sz);
	if (ret)
		return ret;
	for (unsigned i = 0; i < nram; i++) {
		g->ram[i].gpa = GPA_BASE + i * ram_size;
		g->ram[i].size = ram_size;
		g->ram[i].hva = map_guarded(ram_size);
		if (!g->ram[i].hva)
			return -ENOMEM;
		g->nram++;
	}
	g->qsize = qsize;
	g->packed = packed;
	g->event_idx = event_idx;
	/* Rings and indirect tables first, each area page-aligned; the heap
	 * (what the tests check byte by byte) after them. */
	g->desc_gpa = GPA_BASE;
	g->avail_gpa = (g->desc_gpa + sz.desc + PAGE - 1) & ~(PAGE - 1);
	g->used_gpa = (g->avail_gpa + sz.driver + PAGE - 1) & ~(PAGE - 1);
	g->indirect_gpa = (g->used_gpa + sz.device + PAGE - 1) & ~(PAGE - 1);
	off = g->indirect_gpa + 16ULL * SIM_MAX_INDIRECT * qsize;
	off = (off + PAGE - 1) & ~(PAGE - 1);
	if (off - GPA_BASE >= ram_size)
		return -EINVAL;
	ret = sim_virtq_start(g);
	if (ret)
		return ret;
	g->heap_gpa = off;
	g->heap_next = off;
	g->heap_end = GPA_BASE + nram * ram_size;
	return 0;
}

void sim_guest_fini(struct sim_guest *g)
{
	virtq_fini(&g->vq);
	free(g->chain_head);
	free(g->chain_indirect);
	for (unsigned i = 0; i < g->nram && !g->shares_ram; i++)
		munmap(g->ram[i].hva - PAGE, g->ram[i].size + 2 * PAGE);
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
	cfg->layout = g->packed ? VUISO_LAYOUT_PACKED : VUISO_LAYOUT_SPLIT;
	if (g->packed)
		guest_features |= 1ULL << VUISO_F_RING_PACKED;
	cfg->size = g->qsize;
	cfg->desc_gpa = g->desc_gpa;
	cfg->avail_gpa = g->avail_gpa;
	cfg->used_gpa = g->used_gpa;
	cfg->guest_features = guest_features;
	cfg->backend_features = backend_features;
	cfg->avail_idx = virtq_avail_idx(&g->vq);
	cfg->used_idx = virtq_used_idx(&g->vq);
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

unsigned sim_guest_free(const struct sim_guest *g)
{
	return g->vq.num_free;
}

int sim_add(struct sim_guest *g, const struct sim_buf *b, unsigned n,
	    bool indirect)
{
	struct virtq_sg sg[SIM_MAX_SEGS];
	unsigned out = 0;
	/* Both drivers give the next chain the id at the head of their
	 * free list; the token carries it back from the used entry. */
	uint16_t id = g->vq.free_head;
	uint16_t head = g->packed ? g->vq.packed.next_avail : id;
	unsigned before = g->vq.num_free;

	if (!n || n > SIM_MAX_SEGS)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		sg[i].gpa = b[i].gpa;
		sg[i].len = b[i].len;
		if (!b[i].write)
			out = i + 1;
	}
	g->vq.indirect = indirect;
	if (virtq_add(&g->vq, sg, out, n - out, (void *)(uintptr_t)(id + 1u)))
		return -1;
	g->chain_head[id] = head;
	/* One ring descriptor for several buffers: an indirect table. */
	g->chain_indirect[id] =
		n > 1 && before - g->vq.num_free == 1
			? g->vq.indirect_gpa + 16ULL * g->vq.max_indirect * id
			: 0;
	return id;
}

void sim_split_avail_idx_raw(struct sim_guest *g, uint16_t idx)
{
	g->vq.split.avail_idx = idx;
	/* Entries before the index, as a driver does (device's acquire). */
	atomic_store_explicit((_Atomic uint16_t *)(g->avail + 2), htole16(idx),
			      memory_order_release);
	virtq_kick_prepare(&g->vq);
}

void sim_split_avail_raw(struct sim_guest *g, uint16_t head)
{
	uint16_t i = g->vq.split.avail_idx;

	st16(g->avail + 4 + 2ULL * (i & (g->qsize - 1)), head);
	sim_split_avail_idx_raw(g, (uint16_t)(i + 1));
}

int sim_guest_second_ring(struct sim_guest *g, struct sim_guest *out,
			  uint32_t qsize, uint64_t heap_bytes)
{
	struct virtq_areas sz;
	int ret = virtq_area_sizes(g->packed ? VIRTQ_LAYOUT_PACKED
					     : VIRTQ_LAYOUT_SPLIT,
				   qsize, &sz);

	if (ret)
		return ret;
	*out = *g;
	memset(&out->vq, 0, sizeof(out->vq));
	out->shares_ram = true;
	out->kicks = 0;
	out->qsize = qsize;
	out->chain_head = NULL;
	out->chain_indirect = NULL;
	out->desc_gpa = sim_alloc(g, sz.desc);
	out->avail_gpa = sim_alloc(g, sz.driver);
	out->used_gpa = sim_alloc(g, sz.device);
	out->indirect_gpa = sim_alloc(g, 16ULL * SIM_MAX_INDIRECT * qsize);
	out->heap_gpa = sim_alloc(g, heap_bytes);
	if (!out->desc_gpa || !out->avail_gpa || !out->used_gpa ||
	    !out->indirect_gpa || !out->heap_gpa)
		return -ENOMEM;
	out->heap_next = out->heap_gpa;
	out->heap_end = out->heap_gpa + heap_bytes;
	return sim_virtq_start(out);
}

uint8_t *sim_chain_desc(struct sim_guest *g, uint16_t id, unsigned k)
{
	uint16_t d = g->chain_head[id];

	if (g->chain_indirect[id])
		return sim_gpa(g, g->chain_indirect[id] + 16ULL * k);
	if (g->packed)
		return g->desc + 16ULL * ((d + k) % g->qsize);
	for (unsigned i = 0; i < k; i++) {
		uint16_t next;

		memcpy(&next, g->desc + 16ULL * d + 14, 2);
		d = le16toh(next) % g->qsize;
	}
	return g->desc + 16ULL * d;
}

bool sim_kick_needed(struct sim_guest *g)
{
	return virtq_kick_prepare(&g->vq);
}

void sim_guest_arm(struct sim_guest *g)
{
	virtq_enable_cb(&g->vq);
}

bool sim_reap(struct sim_guest *g, uint32_t *id, uint32_t *len)
{
	void *token;
	int r = virtq_get_used(&g->vq, &token, len);

	if (r < 0)
		*id = UINT32_MAX;
	if (r <= 0)
		return false;
	*id = (uint32_t)((uintptr_t)token - 1);
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
	b->packed = sh->layout == VUISO_LAYOUT_PACKED;
	b->desc = b->map + (sh->desc_backend - b->base);
	b->avail = b->map + (sh->avail_backend - b->base);
	b->used = b->map + (sh->used_backend - b->base);
	b->event_idx = event_idx;
	/* SET_VRING_BASE: the shadow ring starts where the VMM says. */
	b->last_avail = (uint16_t)(sh->vring_base & 0x7fff);
	b->avail_wrap = sh->vring_base & 0x8000;
	b->used_idx = b->last_avail;
	b->used_wrap = b->avail_wrap;
	if (!b->packed) {
		b->last_avail = (uint16_t)sh->vring_base;
		b->used_idx = b->last_avail;
	}
	b->used_flushed = b->used_idx;
	b->ndesc = calloc(b->qsize, sizeof(*b->ndesc));
	if (!b->ndesc)
		return -ENOMEM;
	return 0;
}

void sim_backend_fini(struct sim_backend *b)
{
	if (b->map && b->map != MAP_FAILED)
		munmap(b->map, b->map_size);
	free(b->ndesc);
	memset(b, 0, sizeof(*b));
}

/* Where a shadow buffer lies in our mapping, or NULL when not inside. */
static uint8_t *be_ptr(struct sim_backend *b, uint64_t addr, uint32_t len)
{
	if (addr < b->base || addr - b->base > b->map_size ||
	    len > b->map_size - (addr - b->base))
		return NULL;
	return b->map + (addr - b->base);
}

static int pop_split(struct sim_backend *b, uint16_t *head,
		     struct sim_seg *segs)
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
		segs[n].ptr = be_ptr(b, addr, len);
		if (!segs[n].ptr || (flags & F_INDIRECT))
			goto bad;
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

/*
 * Packed descriptor flags.  A lap's wrap counter is handled as the pair of
 * AVAIL/USED bits a descriptor carries in it (available: AVAIL == w, USED
 * != w; used: both == w): one mask and compare per descriptor, one XOR
 * per lap.
 */
#define P_AVAIL (1u << 7)
#define P_USED (1u << 15)
#define P_LAP (P_AVAIL | P_USED)

static inline bool p_avail(uint16_t flags, uint16_t lap)
{
	return (flags & P_LAP) == lap;
}

/* Move @pos and its lap bits @n (at most qsize) places on. */
static inline void p_step(const struct sim_backend *b, uint16_t *pos,
			  uint16_t *lap, unsigned n)
{
	unsigned p = *pos + n;

	if (p >= b->qsize) {
		p -= b->qsize;
		*lap ^= P_LAP;
	}
	*pos = (uint16_t)p;
}

static int pop_packed(struct sim_backend *b, uint16_t *head,
		      struct sim_seg *segs)
{
	const uint8_t *desc = b->desc;
	uint16_t pos = b->last_avail, flags, id;
	uint16_t lap = b->avail_wrap ? P_AVAIL : P_USED;
	unsigned n = 0;

	/* Acquire: the head's flags are stored last by the driver, with
	 * release; they are read once, here. */
	flags = le16toh(atomic_load_explicit(
		(const _Atomic uint16_t *)(desc + 16ULL * pos + 14),
		memory_order_acquire));
	if (!p_avail(flags, lap))
		return 0;
	for (;;) {
		const uint8_t *d = desc + 16ULL * pos;
		uint64_t addr;
		uint32_t len;

		memcpy(&addr, d, 8);
		memcpy(&len, d + 8, 4);
		memcpy(&id, d + 12, 2);
		addr = le64toh(addr);
		len = le32toh(len);
		id = le16toh(id);
		if (flags & F_INDIRECT)
			goto bad;
		segs[n].ptr = be_ptr(b, addr, len);
		if (!segs[n].ptr)
			goto bad;
		segs[n].len = len;
		segs[n].write = flags & F_WRITE;
		n++;
		p_step(b, &pos, &lap, 1);
		if (!(flags & F_NEXT))
			break;
		if (n >= b->qsize)
			goto bad;
		flags = ld16(desc + 16ULL * pos + 14);
		if (!p_avail(flags, lap))
			goto bad;
	}
	/* The id of the chain is its last descriptor's. */
	if (id >= b->qsize || b->ndesc[id])
		goto bad;
	b->ndesc[id] = (uint16_t)n;
	b->last_avail = pos;
	b->avail_wrap = lap & P_AVAIL;
	*head = id;
	return (int)n;
bad:
	b->bad++;
	return -1;
}

int sim_backend_pop(struct sim_backend *b, uint16_t *head, struct sim_seg *segs)
{
	return b->packed ? pop_packed(b, head, segs) : pop_split(b, head, segs);
}

void sim_backend_push(struct sim_backend *b, uint32_t id, uint32_t len)
{
	uint8_t *e;
	uint32_t v;

	if (b->packed) {
		uint16_t flags = b->used_wrap ? P_LAP : 0;
		unsigned n = 1, p;

		/* One used descriptor per chain; skip the chain's length (1
		 * for an id we never popped: a test forging completions). */
		if (id < b->qsize) {
			if (b->ndesc[id])
				n = b->ndesc[id];
			b->ndesc[id] = 0;
		}
		e = b->desc + 16ULL * b->used_idx;
		v = htole32(len);
		memcpy(e + 8, &v, 4);
		st16(e + 12, (uint16_t)id);
		/* id and len before the flags the driver polls. */
		atomic_store_explicit((_Atomic uint16_t *)(e + 14),
				      htole16(flags), memory_order_release);
		p = b->used_idx + n;
		if (p >= b->qsize) {
			p -= b->qsize;
			b->used_wrap = !b->used_wrap;
		}
		b->used_idx = (uint16_t)p;
		b->unflushed += n;
		return;
	}
	e = b->used + 4 + 8ULL * (b->used_idx & (b->qsize - 1));
	v = htole32(id);
	memcpy(e, &v, 4);
	v = htole32(len);
	memcpy(e + 4, &v, 4);
	b->used_idx++;
}

static bool flush_packed(struct sim_backend *b)
{
	uint16_t flags, off_wrap, ev, old;
	unsigned n = b->unflushed;

	if (!n)
		return false;
	b->unflushed = 0;
	/* The used flags before reading the driver's wish. */
	atomic_thread_fence(memory_order_seq_cst);
	flags = ld16(b->avail + 2);
	if (flags == 1)
		return false;
	if (flags == 2 && b->event_idx) {
		off_wrap = ld16(b->avail);
		ev = off_wrap & 0x7fff;
		if (!!(off_wrap & 0x8000) != b->used_wrap)
			ev = (uint16_t)(ev - b->qsize);
		old = (uint16_t)(b->used_idx - n);
		if (!need_event(ev, b->used_idx, old))
			return false;
	}
	b->calls++;
	return true;
}

bool sim_backend_flush(struct sim_backend *b)
{
	uint16_t old = b->used_flushed;

	if (b->packed)
		return flush_packed(b);
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
	if (b->packed) {
		/* Device event area: kick at our next avail position. */
		if (b->event_idx) {
			st16(b->used, (uint16_t)(b->last_avail |
						 (b->avail_wrap ? 0x8000 : 0)));
			st16(b->used + 2, 2);
		}
	} else if (b->event_idx) {
		st16(b->used + 4 + 8ULL * b->qsize, b->last_avail);
	}
	atomic_thread_fence(memory_order_seq_cst);
}
