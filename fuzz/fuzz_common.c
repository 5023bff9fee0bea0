// SPDX-License-Identifier: MIT
/*
 * Shared pieces of the fuzz harnesses; see fuzz_common.h.
 */
#include <endian.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "fuzz_common.h"

void fz_opts(uint8_t hdr, uint8_t layout, struct fx_opts *o)
{
	static const uint32_t budgets[4] = {0, 1, 2, 3};

	memset(o, 0, sizeof(*o));
	o->qsize = 1u << (hdr & 7);
	o->guest_event_idx = hdr & 8;
	o->backend_event_idx = hdr & 16;
	o->indirect = hdr & 32;
	o->budget = budgets[hdr >> 6];
	o->guest_packed = layout & 1;
	o->backend_packed = layout & 2;
	o->pool_size = 64 * 1024;
	o->nram = 2;
	o->ram_size = 64 * 1024;
}

void fz_fx_init(struct fx *f, const struct fx_opts *o)
{
	int ret = fx_init(f, o);

	FZ_CHECK(ret == 0, "fx_init: %d", ret);
}

void fz_vq_config(struct fx *f, struct vuiso_vq_config *cfg)
{
	uint64_t gf = 1ULL << VUISO_F_VERSION_1, bf = gf;

	if (f->o.guest_event_idx)
		gf |= 1ULL << VUISO_F_EVENT_IDX;
	if (f->o.indirect)
		gf |= 1ULL << VUISO_F_INDIRECT_DESC;
	if (f->o.backend_event_idx)
		bf |= 1ULL << VUISO_F_EVENT_IDX;
	if (f->o.backend_packed)
		bf |= 1ULL << VUISO_F_RING_PACKED;
	sim_guest_vq_config(&f->g, gf, bf, cfg);
}

int fz_start(struct fx *f, const struct vuiso_vq_config *cfg)
{
	struct vuiso_region_info ri;
	int ret = vuiso_vq_start(f->vq, cfg, &f->shadow);

	if (ret)
		return ret;
	sim_backend_fini(&f->b);
	FZ_CHECK(vuiso_dev_get_region(f->dev, 0, &ri) == 0, "region");
	ret = sim_backend_init(&f->b, &ri, &f->shadow, f->o.backend_event_idx);
	FZ_CHECK(ret == 0, "sim_backend_init: %d", ret);
	return 0;
}

int fz_restart(struct fx *f, uint16_t avail_idx, uint16_t used_idx)
{
	struct vuiso_vq_config cfg;

	fz_vq_config(f, &cfg);
	cfg.avail_idx = avail_idx;
	cfg.used_idx = used_idx;
	return fz_start(f, &cfg);
}

int fz_reattach(struct fx *f)
{
	struct vuiso_vq_config cfg;
	struct vuiso_region_info ri;
	int ret;

	fz_vq_config(f, &cfg);
	ret = vuiso_vq_attach(f->vq, cfg.backend_features, &f->shadow);
	if (ret < 0)
		return ret;
	sim_backend_fini(&f->b);
	FZ_CHECK(vuiso_dev_get_region(f->dev, 0, &ri) == 0, "region");
	FZ_CHECK(sim_backend_init(&f->b, &ri, &f->shadow,
				  f->o.backend_event_idx) == 0,
		 "sim_backend_init");
	return ret;
}

uint32_t fz_backend_base(const struct fx *f)
{
	if (!f->b.packed)
		return f->b.last_avail;
	return f->b.last_avail | (f->b.avail_wrap ? VUISO_PACKED_WRAP : 0);
}

int fz_restart_fresh(struct fx *f)
{
	struct vuiso_vq_config cfg;

	fz_vq_config(f, &cfg);
	return fz_start(f, &cfg);
}

void fz_guest_ring_reset(struct sim_guest *g)
{
	int ret = sim_guest_ring_reset(g);

	FZ_CHECK(ret == 0, "sim_guest_ring_reset: %d", ret);
}

uint8_t *fz_map_guarded(uint64_t size)
{
	uint8_t *p = mmap(NULL, size + 2 * FZ_PAGE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	FZ_CHECK(p != MAP_FAILED, "mmap");
	FZ_CHECK(mprotect(p + FZ_PAGE, size, PROT_READ | PROT_WRITE) == 0,
		 "mprotect");
	return p + FZ_PAGE;
}

void fz_unmap_guarded(uint8_t *p, uint64_t size)
{
	munmap(p - FZ_PAGE, size + 2 * FZ_PAGE);
}

void fz_publish_ram(struct fx *f)
{
	struct vuiso_mem_region mr[SIM_MAX_RAM];
	unsigned n = sim_guest_regions(&f->g, mr);
	int ret = vuiso_dev_set_guest_memory(f->dev, mr, n);

	FZ_CHECK(ret == 0, "set_guest_memory: %d", ret);
}

int fz_heap_init(struct fz_heap *h, struct sim_guest *g)
{
	h->base = g->heap_gpa;
	h->len = g->heap_end - g->heap_gpa;
	h->ref = malloc(h->len);
	if (!h->ref)
		return -1;
	for (uint64_t i = 0; i < h->len; i++)
		h->ref[i] = (uint8_t)(i * 7 + (i >> 9) + 1);
	fz_heap_span(h, g, h->base, h->len, false);
	return 0;
}

void fz_heap_free(struct fz_heap *h)
{
	free(h->ref);
	h->ref = NULL;
}

void fz_heap_span(struct fz_heap *h, struct sim_guest *g, uint64_t gpa,
		  uint64_t len, bool to_ref)
{
	while (len) {
		uint8_t *p = sim_gpa(g, gpa);
		uint8_t *r = h->ref + (gpa - h->base);
		uint64_t n = FZ_PAGE - (gpa & (FZ_PAGE - 1));

		if (n > len)
			n = len;
		if (to_ref)
			memcpy(r, p, n);
		else
			memcpy(p, r, n);
		gpa += n;
		len -= n;
	}
}

void fz_heap_check(const struct fz_heap *h, struct sim_guest *g,
		   uint64_t skip_gpa, uint64_t skip_len)
{
	for (uint64_t off = 0; off < h->len;) {
		uint64_t gpa = h->base + off;
		uint64_t n = FZ_PAGE - (gpa & (FZ_PAGE - 1));
		const uint8_t *p;

		if (n > h->len - off)
			n = h->len - off;
		if (skip_len && gpa < skip_gpa + skip_len &&
		    gpa + n > skip_gpa) {
			off += n;
			continue;
		}
		p = sim_gpa(g, gpa);
		if (memcmp(p, h->ref + off, n))
			for (uint64_t i = 0; i < n; i++)
				FZ_CHECK(p[i] == h->ref[off + i],
					 "guest byte at gpa 0x%llx is 0x%02x, "
					 "expected 0x%02x",
					 (unsigned long long)(gpa + i), p[i],
					 h->ref[off + i]);
		off += n;
	}
}

int fz_ring_copy_init(struct fz_ring_copy *rc, const struct sim_guest *g)
{
	/* Split: the avail ring with used_event; packed: the driver event
	 * suppression area (off_wrap, flags). */
	rc->len = 16ULL * g->qsize + (g->packed ? 4 : 6 + 2ULL * g->qsize);
	rc->qsize = g->qsize;
	rc->buf = malloc(rc->len);
	rc->allow = calloc(g->qsize, 1);
	return rc->buf && rc->allow ? 0 : -1;
}

void fz_ring_copy_free(struct fz_ring_copy *rc)
{
	free(rc->buf);
	free(rc->allow);
	rc->buf = NULL;
	rc->allow = NULL;
}

void fz_ring_snapshot(struct fz_ring_copy *rc, const struct sim_guest *g)
{
	memcpy(rc->buf, g->desc, 16ULL * g->qsize);
	memcpy(rc->buf + 16ULL * g->qsize, g->avail,
	       rc->len - 16ULL * g->qsize);
	memset(rc->allow, 0, rc->qsize);
}

void fz_ring_allow(struct fz_ring_copy *rc, uint16_t pos)
{
	if (pos < rc->qsize)
		rc->allow[pos] = 1;
}

void fz_ring_check(const struct fz_ring_copy *rc, const struct sim_guest *g)
{
	if (!g->packed) {
		FZ_CHECK(memcmp(rc->buf, g->desc, 16ULL * g->qsize) == 0,
			 "the library wrote the guest descriptor table");
		FZ_CHECK(memcmp(rc->buf + 16ULL * g->qsize, g->avail,
				rc->len - 16ULL * g->qsize) == 0,
			 "the library wrote the guest avail ring");
		return;
	}
	FZ_CHECK(memcmp(rc->buf + 16ULL * g->qsize, g->avail, 4) == 0,
		 "the library wrote the guest driver event suppression area");
	for (uint32_t i = 0; i < g->qsize; i++) {
		const uint8_t *d = g->desc + 16ULL * i,
			      *r = rc->buf + 16ULL * i;

		FZ_CHECK(memcmp(d, r, 8) == 0,
			 "the library wrote the address of guest descriptor %u",
			 i);
		FZ_CHECK(
			rc->allow[i] || memcmp(d + 8, r + 8, 8) == 0,
			"the library wrote guest descriptor %u, where the guest reaped no used descriptor",
			i);
	}
}

uint16_t fz_ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

uint32_t fz_ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

void fz_st16_release(uint8_t *p, uint16_t v)
{
	atomic_store_explicit((_Atomic uint16_t *)p, htole16(v),
			      memory_order_release);
}

void fz_set_avail_entry(struct sim_guest *g, uint16_t idx, uint16_t head)
{
	uint16_t v = htole16(head);

	memcpy(g->avail + 4 + 2ULL * (idx & (g->qsize - 1)), &v, 2);
}

void fz_set_avail_idx(struct sim_guest *g, uint16_t idx)
{
	/* Ring entries before the index: pairs with the device's acquire. */
	atomic_store_explicit((_Atomic uint16_t *)(g->avail + 2), htole16(idx),
			      memory_order_release);
}

void fz_check_broken_sticky(struct fx *f)
{
	unsigned errors = f->errors;
	int r;

	r = vuiso_vq_kick_from_guest(f->vq);
	FZ_CHECK(r == -EIO, "kick on a broken queue returned %d", r);
	r = vuiso_vq_call_from_backend(f->vq);
	FZ_CHECK(r == -EIO, "call on a broken queue returned %d", r);
	FZ_CHECK(f->errors == errors, "error reported again on a broken queue");
}

/* With FUZZ_VERBOSE set, print each distinct violation report once: shows
 * which branch a corpus input reaches. */
static void fz_trace(const char *msg)
{
	static char last[256];

	if (!getenv("FUZZ_VERBOSE") || !strcmp(last, msg))
		return;
	snprintf(last, sizeof(last), "%s", msg);
	fprintf(stderr, "  reported: %s\n", msg);
}

void fz_check_error_state(struct fx *f, const char *prefix)
{
	struct vuiso_vq_stats st;

	vuiso_vq_get_stats(f->vq, &st);
	FZ_CHECK(f->errors <= 1, "%u error reports", f->errors);
	FZ_CHECK(!!st.broken == !!f->errors, "broken=%u but %u error reports",
		 st.broken, f->errors);
	if (!f->errors)
		return;
	fz_trace(f->last_msg);
	FZ_CHECK(f->last_err < 0, "error code %d", f->last_err);
	if (prefix)
		FZ_CHECK(strncmp(f->last_msg, prefix, strlen(prefix)) == 0,
			 "message '%s' does not start with '%s'", f->last_msg,
			 prefix);
	else
		FZ_CHECK(strncmp(f->last_msg, "guest: ", 7) == 0 ||
				 strncmp(f->last_msg, "back-end: ", 10) == 0,
			 "message '%s' names no side", f->last_msg);
}
