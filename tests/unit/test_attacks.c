// SPDX-License-Identifier: MIT
/*
 * The attack catalogue: one named test per attack of a hostile guest or a
 * hostile back-end (the bug classes of the brief, from vhost, DPDK and QEMU
 * CVEs).  Each test proves three things through the public API:
 *  - the queue is marked broken (every later data-path call says -EIO), or,
 *    for input that is legal however odd, it is handled correctly;
 *  - the error callback fired exactly once, with the side ("guest: " or
 *    "back-end: "), the errno and a message naming the attack;
 *  - no byte of guest RAM outside the request's writable buffers changed
 *    (the used ring, which the library owns, excepted); guest RAM has
 *    PROT_NONE guard pages around it, so a stray access crashes the test.
 */
#include <endian.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include "fixture.h"

#define QSIZE 64
#define F_NEXT 1
#define F_WRITE 2
#define F_INDIRECT 4

/* ---- guest RAM snapshots ---- */

struct snap {
	uint8_t *ram[SIM_MAX_RAM];
};

static void snap_take(struct fx *f, struct snap *s)
{
	for (unsigned i = 0; i < f->g.nram; i++) {
		s->ram[i] = malloc(f->g.ram[i].size);
		assert_non_null(s->ram[i]);
		memcpy(s->ram[i], f->g.ram[i].hva, f->g.ram[i].size);
	}
}

static bool in_span(uint64_t gpa, uint64_t start, uint64_t len)
{
	return gpa >= start && gpa - start < len;
}

/*
 * Every byte of guest RAM is as in @s, except the used ring and the @n
 * ranges in @allowed.  Frees the snapshot.
 */
static void snap_check(struct fx *f, struct snap *s,
		       const struct sim_buf *allowed, unsigned n)
{
	uint64_t used_len = 6 + 8ULL * f->g.qsize;

	for (unsigned i = 0; i < f->g.nram; i++) {
		const struct sim_ram *r = &f->g.ram[i];

		for (uint64_t off = 0; off < r->size; off++) {
			uint64_t gpa = r->gpa + off;
			bool ok = in_span(gpa, f->g.used_gpa, used_len);

			/* Whole pages that did not change, quickly. */
			if (!(off & 4095) && off + 4096 <= r->size &&
			    !memcmp(r->hva + off, s->ram[i] + off, 4096)) {
				off += 4095;
				continue;
			}
			if (r->hva[off] == s->ram[i][off])
				continue;
			for (unsigned k = 0; k < n && !ok; k++)
				ok = in_span(gpa, allowed[k].gpa,
					     allowed[k].len);
			if (!ok)
				fail_msg(
					"guest byte at gpa 0x%llx changed from "
					"0x%02x to 0x%02x",
					(unsigned long long)gpa, s->ram[i][off],
					r->hva[off]);
		}
		free(s->ram[i]);
		s->ram[i] = NULL;
	}
}

/* ---- raw guest ring access, for chains no driver would write ---- */

static void desc(struct fx *f, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	sim_put_desc(f->g.desc + 16ULL * i, addr, len, flags, next);
}

/* An indirect table of @n entries in guest RAM; fill with itab_set(). */
static uint64_t itab_new(struct fx *f, unsigned n)
{
	uint64_t gpa = sim_alloc(&f->g, 16ULL * n);

	assert_true(gpa != 0);
	memset(sim_gpa(&f->g, gpa), 0, 16ULL * n);
	return gpa;
}

static void itab_set(struct fx *f, uint64_t table, unsigned i, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	sim_put_desc(sim_gpa(&f->g, table + 16ULL * i), addr, len, flags, next);
}

/* Put @head in the next avail entry and publish avail->idx. */
static void avail(struct fx *f, uint16_t head)
{
	sim_split_avail_raw(&f->g, head);
}

static uint64_t buf(struct fx *f, uint32_t len)
{
	uint64_t gpa = sim_alloc(&f->g, len);

	assert_true(gpa != 0);
	return gpa;
}

static void setup_layouts(struct fx *f, bool indirect, bool guest_packed,
			  bool backend_packed)
{
	struct fx_opts o = {.qsize = QSIZE,
			    .indirect = indirect,
			    .guest_packed = guest_packed,
			    .backend_packed = backend_packed};

	assert_int_equal(fx_init(f, &o), 0);
	/* A recognisable guest heap, so any stray write shows. */
	for (uint64_t g = f->g.heap_gpa; g < f->g.heap_end; g += 4096)
		memset(sim_gpa(&f->g, g), (uint8_t)(g >> 12) | 1, 4096);
}

static void setup(struct fx *f, bool indirect)
{
	setup_layouts(f, indirect, false, false);
}

/* ---- raw packed guest ring ---- */

#define P_AVAIL (1u << 7) /* available in lap 1: AVAIL set, USED clear */
#define P_USED (1u << 15)

/* Descriptor at ring position @pos of a packed guest ring. */
static void pdesc(struct fx *f, uint16_t pos, uint64_t addr, uint32_t len,
		  uint16_t id, uint16_t flags)
{
	sim_put_pdesc(f->g.desc + 16ULL * pos, addr, len, id, flags);
}

/* A packed indirect table entry (NEXT means nothing there). */
static void pitab_set(struct fx *f, uint64_t table, unsigned i, uint64_t addr,
		      uint32_t len, uint16_t flags)
{
	sim_put_pdesc(sim_gpa(&f->g, table + 16ULL * i), addr, len, 0, flags);
}

/* ---- checks ---- */

/* The queue is broken, said so once as expected, and stays broken. */
static void expect_broken(struct fx *f, int ret, int err, const char *side,
			  const char *what)
{
	struct vuiso_vq_stats st;

	if (f->errors != 1 || !strstr(f->last_msg, what))
		fail_msg("expected one '%s' report, got %u: '%s'", what,
			 f->errors, f->last_msg);
	assert_int_equal(ret, -EIO);
	assert_int_equal(f->last_err, err);
	assert_int_equal(strncmp(f->last_msg, side, strlen(side)), 0);
	vuiso_vq_get_stats(f->vq, &st);
	assert_int_equal(st.broken, 1);
	/* Sticky: every entry point returns early, no second report. */
	assert_int_equal(vuiso_vq_kick_from_guest(f->vq), -EIO);
	assert_int_equal(vuiso_vq_call_from_backend(f->vq), -EIO);
	assert_int_equal(f->errors, 1);
}

/*
 * The guest has made a hostile chain available: the kick breaks the queue
 * with @err / @what, nothing reaches the back-end, no guest byte changes.
 */
static void guest_attack(struct fx *f, int err, const char *what)
{
	struct sim_seg segs[QSIZE];
	struct snap s;
	uint16_t head;
	int ret;

	snap_take(f, &s);
	ret = vuiso_vq_kick_from_guest(f->vq);
	expect_broken(f, ret, err, "guest: ", what);
	snap_check(f, &s, NULL, 0);
	assert_int_equal(sim_backend_pop(&f->b, &head, segs), 0);
	assert_int_equal(f->kicks, 0);
	fx_fini(f);
}

/* A legal request: 16 readable bytes, then @wlen writable ones. */
static int request(struct fx *f, uint32_t wlen, struct sim_buf *b)
{
	b[0] = (struct sim_buf){buf(f, 16), 16, false};
	b[1] = (struct sim_buf){buf(f, wlen), wlen, true};
	return sim_add(&f->g, b, 2, false);
}

/* The back-end pops one chain and fills its writable buffers with @v. */
static uint16_t backend_take(struct fx *f, uint8_t v)
{
	struct sim_seg segs[QSIZE];
	uint16_t head;
	int n = sim_backend_pop(&f->b, &head, segs);

	assert_true(n > 0);
	for (int i = 0; i < n; i++)
		if (segs[i].write)
			memset(segs[i].ptr, v, segs[i].len);
	return head;
}

/* Two requests in flight; returns their shadow heads. */
static void two_in_flight(struct fx *f, struct sim_buf *b, uint16_t *h)
{
	assert_true(request(f, 100, b) >= 0);
	assert_true(request(f, 100, b + 2) >= 0);
	sim_kick_needed(&f->g);
	assert_int_equal(vuiso_vq_kick_from_guest(f->vq), 0);
	h[0] = backend_take(f, 0xaa);
	h[1] = backend_take(f, 0xbb);
}

/* The back-end publishes what it pushed and calls: breaks the queue. */
static void backend_attack(struct fx *f, int err, const char *what)
{
	struct snap s;
	uint32_t id, len;
	int ret;

	snap_take(f, &s);
	sim_backend_flush(&f->b);
	ret = vuiso_vq_call_from_backend(f->vq);
	expect_broken(f, ret, err, "back-end: ", what);
	snap_check(f, &s, NULL, 0);
	assert_false(sim_reap(&f->g, &id, &len));
	fx_fini(f);
}

/* ------------------------------------------------------------------ */
/* Hostile guest                                                       */
/* ------------------------------------------------------------------ */

static void test_guest_descriptor_loop_direct_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	desc(&f, 0, buf(&f, 64), 64, F_NEXT, 1);
	desc(&f, 1, buf(&f, 64), 64, F_NEXT, 2);
	desc(&f, 2, buf(&f, 64), 64, F_NEXT, 0);
	avail(&f, 0);
	guest_attack(&f, -ELOOP, "descriptor loop in descriptor table");
}

static void test_guest_descriptor_loop_indirect_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, true);
	t = itab_new(&f, 2);
	itab_set(&f, t, 0, buf(&f, 64), 64, F_NEXT, 1);
	itab_set(&f, t, 1, buf(&f, 64), 64, F_NEXT, 0);
	desc(&f, 0, t, 32, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -ELOOP, "descriptor loop in indirect table");
}

static void test_guest_nested_indirect_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t, inner;

	(void)state;
	setup(&f, true);
	inner = itab_new(&f, 1);
	itab_set(&f, inner, 0, buf(&f, 64), 64, 0, 0);
	t = itab_new(&f, 1);
	itab_set(&f, t, 0, inner, 16, F_INDIRECT, 0);
	desc(&f, 0, t, 16, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "nested indirect table");
}

static void test_guest_indirect_with_next_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, true);
	t = itab_new(&f, 1);
	itab_set(&f, t, 0, buf(&f, 64), 64, 0, 0);
	desc(&f, 0, t, 16, F_INDIRECT | F_NEXT, 1);
	desc(&f, 1, buf(&f, 64), 64, 0, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "indirect descriptor with NEXT");
}

static void
test_guest_indirect_len_not_multiple_of_16_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, true);
	t = itab_new(&f, 2);
	itab_set(&f, t, 0, buf(&f, 64), 64, F_NEXT, 1);
	itab_set(&f, t, 1, buf(&f, 64), 64, 0, 0);
	desc(&f, 0, t, 24, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "indirect table length 24");
}

static void test_guest_indirect_larger_than_queue_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, true);
	t = itab_new(&f, QSIZE + 1);
	for (unsigned i = 0; i <= QSIZE; i++)
		itab_set(&f, t, i, buf(&f, 8), 8, i < QSIZE ? F_NEXT : 0,
			 (uint16_t)(i + 1));
	desc(&f, 0, t, 16 * (QSIZE + 1), F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "indirect table length 1040");
}

static void test_guest_indirect_len_zero_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, true);
	desc(&f, 0, itab_new(&f, 1), 0, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "indirect table length 0");
}

static void test_guest_indirect_without_feature_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, false);
	t = itab_new(&f, 1);
	itab_set(&f, t, 0, buf(&f, 64), 64, 0, 0);
	desc(&f, 0, t, 16, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "without VIRTIO_F_INDIRECT_DESC");
}

static void test_guest_indirect_table_unmapped_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, true);
	desc(&f, 0, f.g.heap_end - 16, 32, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EFAULT, "indirect table 0x");
}

/* Direct descriptors lead into an indirect table: together more than the
 * queue size, though each table alone is within bounds. */
static void test_guest_chain_longer_than_queue_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, true);
	t = itab_new(&f, QSIZE);
	for (unsigned i = 0; i < QSIZE; i++)
		itab_set(&f, t, i, buf(&f, 8), 8, i + 1 < QSIZE ? F_NEXT : 0,
			 (uint16_t)(i + 1));
	for (unsigned i = 0; i < 8; i++)
		desc(&f, (uint16_t)i, buf(&f, 8), 8, F_NEXT, (uint16_t)(i + 1));
	desc(&f, 8, t, 16 * QSIZE, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -ELOOP, "longer than the queue size 64");
}

static void test_guest_head_out_of_range_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	avail(&f, QSIZE);
	guest_attack(&f, -EPROTO, "head 64 out of range");
}

static void test_guest_next_out_of_range_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	desc(&f, 0, buf(&f, 64), 64, F_NEXT, 0xffff);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "next 65535 out of range");
}

static void test_guest_next_out_of_range_indirect_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, true);
	t = itab_new(&f, 2);
	itab_set(&f, t, 0, buf(&f, 64), 64, F_NEXT, 2);
	itab_set(&f, t, 1, buf(&f, 64), 64, 0, 0);
	desc(&f, 0, t, 32, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "next 2 out of range (indirect table of 2)");
}

static void test_guest_avail_index_jump_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	desc(&f, 0, buf(&f, 64), 64, 0, 0);
	sim_split_avail_idx_raw(&f.g, QSIZE + 1);
	guest_attack(&f, -EPROTO, "avail index jumped from 0 to 65");
}

static void test_guest_addr_len_overflow_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	desc(&f, 0, UINT64_MAX - 100, 4096, 0, 0);
	avail(&f, 0);
	guest_attack(&f, -EFAULT, "overflows the address space");
}

static void test_guest_buffer_straddles_unmapped_gpa_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	/* Readable: the copy-out would read past the end of guest RAM. */
	desc(&f, 0, f.g.heap_end - 100, 200, 0, 0);
	avail(&f, 0);
	guest_attack(&f, -EFAULT, "is not in guest memory");
}

static void
test_guest_writable_straddles_unmapped_gpa_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	desc(&f, 0, buf(&f, 16), 16, F_NEXT, 1);
	desc(&f, 1, f.g.heap_end - 100, 200, F_WRITE, 0);
	avail(&f, 0);
	guest_attack(&f, -EFAULT, "is not in guest memory");
}

static void test_guest_readable_after_writable_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	desc(&f, 0, buf(&f, 64), 64, F_WRITE | F_NEXT, 1);
	desc(&f, 1, buf(&f, 64), 64, 0, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO,
		     "device-readable descriptor after device-writable");
}

static void test_guest_zero_length_descriptor_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup(&f, false);
	desc(&f, 0, buf(&f, 64), 64, F_NEXT, 1);
	desc(&f, 1, buf(&f, 64), 0, F_WRITE, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "zero-length descriptor");
}

static void test_guest_zero_length_indirect_entry_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup(&f, true);
	t = itab_new(&f, 1);
	itab_set(&f, t, 0, buf(&f, 64), 0, 0, 0);
	desc(&f, 0, t, 16, F_INDIRECT, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "zero-length descriptor");
}

static void test_guest_total_length_over_4gib_breaks_queue(void **state)
{
	struct fx f;
	uint64_t b;

	(void)state;
	setup(&f, false);
	/* Each length fits 32 bits and every address is in RAM, but the
	 * chain adds up to more than 4 GiB (the lengths are never used). */
	b = buf(&f, 64);
	desc(&f, 0, b, 0x80000000u, F_NEXT, 1);
	desc(&f, 1, b, 0x80000000u, F_NEXT, 2);
	desc(&f, 2, b, 0x10, 0, 0);
	avail(&f, 0);
	guest_attack(&f, -EPROTO, "longer than 4 GiB");
}

static void test_guest_request_larger_than_pool_breaks_queue(void **state)
{
	struct fx f;
	uint32_t len = 512 * 1024; /* the fixture's pool is 256 KiB */

	(void)state;
	setup(&f, false);
	desc(&f, 0, buf(&f, len), len, F_WRITE, 0);
	avail(&f, 0);
	guest_attack(&f, -E2BIG, "more bounce space than the whole pool");
}

static void test_guest_rings_unplugged_breaks_queue(void **state)
{
	struct fx f;
	struct vuiso_mem_region mr;

	(void)state;
	setup(&f, false);
	/* Only the second range stays: the rings were in the first. */
	mr = (struct vuiso_mem_region){f.g.ram[1].gpa, f.g.ram[1].size,
				       f.g.ram[1].hva};
	assert_int_equal(vuiso_dev_set_guest_memory(f.dev, &mr, 1), 0);
	guest_attack(&f, -EFAULT, "a ring of queue 0 is not in guest memory");
}

/*
 * Double fetch: after the pop the guest points the descriptor at another
 * buffer and grows it.  The completion uses the snapshot: the original
 * buffer gets the data, the decoy is untouched, the queue stays healthy.
 */
static void
test_guest_rewrites_descriptor_after_pop_snapshot_is_used(void **state)
{
	struct sim_buf b[2], decoy;
	struct fx f;
	struct snap s;
	uint32_t id, len;
	uint16_t head;
	uint16_t next;
	int g;

	(void)state;
	setup(&f, false);
	g = request(&f, 256, b);
	assert_true(g >= 0);
	decoy = (struct sim_buf){buf(&f, 4096), 4096, true};
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	/* The chain is head, head's next; both rewritten. */
	memcpy(&next, f.g.desc + 16ULL * g + 14, 2);
	next = le16toh(next);
	desc(&f, (uint16_t)g, decoy.gpa, 4096, F_WRITE | F_NEXT, next);
	desc(&f, next, decoy.gpa, 4096, F_WRITE, 0);
	snap_take(&f, &s);
	head = backend_take(&f, 0x5a);
	sim_backend_push(&f.b, head, 4096);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.errors, 0);
	snap_check(&f, &s, &b[1], 1);
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(id, (uint32_t)g);
	assert_int_equal(len, 256);
	for (uint32_t i = 0; i < 256; i++)
		assert_int_equal(((uint8_t *)sim_gpa(&f.g, b[1].gpa))[i], 0x5a);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Hostile guest, packed ring                                          */
/* ------------------------------------------------------------------ */

static void test_packed_guest_buffer_id_out_of_range_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup_layouts(&f, false, true, false);
	pdesc(&f, 0, buf(&f, 64), 64, QSIZE, P_AVAIL);
	guest_attack(&f, -EPROTO, "buffer id 64 out of range");
}

/* The id comes from a chain's last descriptor (VIRTIO 2.8.6): a head that
 * names a valid id does not save a chain whose last one does not. */
static void test_packed_guest_buffer_id_of_last_descriptor_counts(void **state)
{
	struct fx f;

	(void)state;
	setup_layouts(&f, false, true, false);
	pdesc(&f, 0, buf(&f, 64), 64, 1, P_AVAIL | F_NEXT);
	pdesc(&f, 1, buf(&f, 64), 64, 0xffff, P_AVAIL);
	guest_attack(&f, -EPROTO, "buffer id 65535 out of range");
}

static void
test_packed_guest_buffer_id_reused_while_in_flight_breaks_queue(void **state)
{
	struct sim_buf b[2];
	struct sim_seg segs[QSIZE];
	struct fx f;
	uint16_t head, pos;
	int id;
	int ret;

	(void)state;
	setup_layouts(&f, false, true, false);
	id = request(&f, 100, b);
	assert_true(id >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 2);
	/* A second chain under the id still in flight. */
	pos = f.g.vq.packed.next_avail;
	pdesc(&f, pos, buf(&f, 64), 64, (uint16_t)id, P_AVAIL);
	ret = vuiso_vq_kick_from_guest(f.vq);
	expect_broken(&f, ret, -EPROTO, "guest: ", "reused while in flight");
	fx_fini(&f);
}

/* Descriptors after the head must be available for their own lap too: a
 * chain whose second descriptor carries the other lap's bits. */
static void test_packed_guest_wrap_counter_mismatch_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup_layouts(&f, false, true, false);
	pdesc(&f, 0, buf(&f, 64), 64, 0, P_AVAIL | F_NEXT);
	pdesc(&f, 1, buf(&f, 64), 64, 0, P_USED);
	guest_attack(&f, -EPROTO, "not available for wrap counter 1");
}

/* Every descriptor of the ring available and chained: the walk stops
 * before it would read its own head a second time. */
static void test_packed_guest_chain_longer_than_ring_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup_layouts(&f, false, true, false);
	for (unsigned i = 0; i < QSIZE; i++)
		pdesc(&f, (uint16_t)i, buf(&f, 8), 8, 0, P_AVAIL | F_NEXT);
	guest_attack(&f, -ELOOP, "longer than the ring of 64 descriptors");
}

/* A chain that wraps onto descriptors of a request still in flight. */
static void
test_packed_guest_chain_overlapping_inflight_breaks_queue(void **state)
{
	struct sim_buf b[2];
	struct sim_seg segs[QSIZE];
	struct fx f;
	uint16_t head;
	int ret;

	(void)state;
	setup_layouts(&f, false, true, false);
	assert_true(request(&f, 100, b) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 2);
	/* Positions 2..63 in lap 1, then 0 in lap 2: 63 descriptors, while
	 * positions 0 and 1 are still the device's. */
	for (unsigned i = 2; i < QSIZE; i++)
		pdesc(&f, (uint16_t)i, buf(&f, 8), 8, 5, P_AVAIL | F_NEXT);
	pdesc(&f, 0, buf(&f, 8), 8, 5, P_USED);
	ret = vuiso_vq_kick_from_guest(f.vq);
	expect_broken(&f, ret, -EPROTO,
		      "guest: ", "overlaps descriptors still in flight");
	fx_fini(&f);
}

static void
test_packed_guest_indirect_in_longer_chain_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup_layouts(&f, true, true, false);
	t = itab_new(&f, 1);
	pitab_set(&f, t, 0, buf(&f, 64), 64, 0);
	pdesc(&f, 0, buf(&f, 64), 64, 0, P_AVAIL | F_NEXT);
	pdesc(&f, 1, t, 16, 0, P_AVAIL | F_INDIRECT);
	guest_attack(&f, -EPROTO,
		     "indirect descriptor in a chain of more than one");
}

static void test_packed_guest_indirect_with_next_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup_layouts(&f, true, true, false);
	t = itab_new(&f, 1);
	pitab_set(&f, t, 0, buf(&f, 64), 64, 0);
	pdesc(&f, 0, t, 16, 0, P_AVAIL | F_INDIRECT | F_NEXT);
	pdesc(&f, 1, buf(&f, 64), 64, 0, P_AVAIL);
	guest_attack(&f, -EPROTO,
		     "indirect descriptor in a chain of more than one");
}

static void
test_packed_guest_indirect_len_not_multiple_of_16_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup_layouts(&f, true, true, false);
	t = itab_new(&f, 2);
	pitab_set(&f, t, 0, buf(&f, 64), 64, 0);
	pitab_set(&f, t, 1, buf(&f, 64), 64, 0);
	pdesc(&f, 0, t, 24, 0, P_AVAIL | F_INDIRECT);
	guest_attack(&f, -EPROTO, "indirect table length 24");
}

static void test_packed_guest_nested_indirect_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t, inner;

	(void)state;
	setup_layouts(&f, true, true, false);
	inner = itab_new(&f, 1);
	pitab_set(&f, inner, 0, buf(&f, 64), 64, 0);
	t = itab_new(&f, 1);
	pitab_set(&f, t, 0, inner, 16, F_INDIRECT);
	pdesc(&f, 0, t, 16, 0, P_AVAIL | F_INDIRECT);
	guest_attack(&f, -EPROTO, "nested indirect table");
}

static void
test_packed_guest_indirect_without_feature_breaks_queue(void **state)
{
	struct fx f;
	uint64_t t;

	(void)state;
	setup_layouts(&f, false, true, false);
	t = itab_new(&f, 1);
	pitab_set(&f, t, 0, buf(&f, 64), 64, 0);
	pdesc(&f, 0, t, 16, 0, P_AVAIL | F_INDIRECT);
	guest_attack(&f, -EPROTO, "without VIRTIO_F_INDIRECT_DESC");
}

static void test_packed_guest_zero_length_descriptor_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup_layouts(&f, false, true, false);
	pdesc(&f, 0, buf(&f, 64), 0, 0, P_AVAIL);
	guest_attack(&f, -EPROTO, "zero-length descriptor");
}

static void test_packed_guest_addr_len_overflow_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup_layouts(&f, false, true, false);
	pdesc(&f, 0, UINT64_MAX - 10, 100, 0, P_AVAIL);
	guest_attack(&f, -EFAULT, "overflows the address space");
}

static void test_packed_guest_readable_after_writable_breaks_queue(void **state)
{
	struct fx f;

	(void)state;
	setup_layouts(&f, false, true, false);
	pdesc(&f, 0, buf(&f, 64), 64, 0, P_AVAIL | F_WRITE | F_NEXT);
	pdesc(&f, 1, buf(&f, 64), 64, 0, P_AVAIL);
	guest_attack(&f, -EPROTO, "device-readable descriptor after");
}

static void test_packed_guest_total_length_over_4gib_breaks_queue(void **state)
{
	struct fx f;
	uint64_t b;

	(void)state;
	setup_layouts(&f, false, true, false);
	b = buf(&f, 64);
	pdesc(&f, 0, b, 0xc0000000u, 0, P_AVAIL | F_NEXT);
	pdesc(&f, 1, b, 0xc0000000u, 0, P_AVAIL);
	guest_attack(&f, -EPROTO, "longer than 4 GiB");
}

/* Not yet available (the other lap's bits, or nothing written): the queue
 * waits, nothing is consumed, nothing breaks. */
static void test_packed_guest_unavailable_head_is_not_taken(void **state)
{
	struct sim_seg segs[QSIZE];
	struct fx f;
	uint16_t head;

	(void)state;
	setup_layouts(&f, false, true, false);
	pdesc(&f, 0, buf(&f, 64), 64, 0, P_USED);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	pdesc(&f, 0, buf(&f, 64), 64, 0, P_AVAIL | P_USED);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(f.errors, 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 0);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Hostile back-end, packed shadow ring                                */
/* ------------------------------------------------------------------ */

/* A used descriptor carrying the previous lap's bits is not used: the
 * library does not take it, and nothing breaks. */
static void
test_packed_backend_used_flags_of_other_lap_are_not_taken(void **state)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;
	uint32_t id, len;
	uint8_t *d;

	(void)state;
	setup_layouts(&f, false, false, true);
	two_in_flight(&f, b, h);
	d = f.b.desc; /* position 0: where the first used one goes */
	sim_put_pdesc(d, 0, 100, h[0], 0); /* used in lap 0 */
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.errors, 0);
	assert_false(sim_reap(&f.g, &id, &len));
	/* The real used descriptor still completes. */
	sim_backend_push(&f.b, h[0], 100);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(len, 100);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Hostile back-end                                                    */
/* ------------------------------------------------------------------ */

static void test_backend_used_id_out_of_range_breaks_queue(bool packed_shadow)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	sim_backend_push(&f.b, 1000, 100);
	backend_attack(&f, -EPROTO, "used id 1000 out of range");
}

static void
test_backend_used_id_never_available_breaks_queue(bool packed_shadow)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	/* The two chains hold four of the 64 slots: the last is unused. */
	sim_backend_push(&f.b, QSIZE - 1, 100);
	backend_attack(&f, -EPROTO, "was never made available");
}

/* The id is also not a head of any chain: a middle slot of one. */
static void
test_backend_used_id_of_chain_middle_breaks_queue(bool packed_shadow)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;
	uint16_t mid = 0;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	/* Two chains of two buffers hold slots 0-3; two of them are not
	 * heads but the second buffer of a chain in flight. */
	while (mid == h[0] || mid == h[1])
		mid++;
	assert_true(mid < 4);
	sim_backend_push(&f.b, mid, 100);
	backend_attack(&f, -EPROTO, "was never made available");
}

static void
test_backend_same_id_completed_twice_breaks_queue(bool packed_shadow)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;
	struct snap s;
	uint32_t id, len;
	int ret;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	snap_take(&f, &s);
	sim_backend_push(&f.b, h[0], 100);
	sim_backend_push(&f.b, h[0], 100);
	sim_backend_flush(&f.b);
	ret = vuiso_vq_call_from_backend(f.vq);
	expect_broken(&f, ret, -EPROTO, "back-end: ", "completed twice");
	/* The first completion was legal and reached the guest. */
	snap_check(&f, &s, &b[1], 1);
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(len, 100);
	assert_false(sim_reap(&f.g, &id, &len));
	fx_fini(&f);
}

static void
test_backend_completes_twice_across_calls_breaks_queue(bool packed_shadow)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;
	uint32_t id, len;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	sim_backend_push(&f.b, h[0], 100);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_true(sim_reap(&f.g, &id, &len));
	sim_backend_push(&f.b, h[0], 100);
	backend_attack(&f, -EPROTO, "completed twice");
}

static void test_backend_used_index_jump_breaks_queue(void **state)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;

	(void)state;
	setup(&f, false);
	two_in_flight(&f, b, h);
	f.b.used_idx = 3; /* three entries, two requests in flight */
	backend_attack(&f, -EPROTO, "used index jumped from 0 to 3");
}

static void test_backend_used_index_wraps_backwards_breaks_queue(void **state)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;

	(void)state;
	setup(&f, false);
	two_in_flight(&f, b, h);
	f.b.used_idx = 0xffff; /* "minus one": 65535 entries */
	backend_attack(&f, -EPROTO, "used index jumped");
}

/* Legal, however odd: the library clamps and never trusts len. */
static void
test_backend_used_len_larger_than_writable_is_clamped(bool packed_shadow)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;
	struct snap s;
	uint32_t id, len;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	snap_take(&f, &s);
	sim_backend_push(&f.b, h[0], UINT32_MAX);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.errors, 0);
	snap_check(&f, &s, &b[1], 1);
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(len, 100);
	for (uint32_t i = 0; i < 100; i++)
		assert_int_equal(((uint8_t *)sim_gpa(&f.g, b[1].gpa))[i], 0xaa);
	fx_fini(&f);
}

/* The back-end rewrites the shadow descriptors it was given (addresses
 * outside the region, huge lengths): the library never reads them back. */
static void
test_backend_rewrites_shadow_descriptors_is_ignored(bool packed_shadow)
{
	struct sim_buf b[4];
	uint16_t h[2];
	struct fx f;
	struct snap s;
	uint32_t id, len;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	for (unsigned i = 0; i < QSIZE; i++) {
		uint8_t *d = f.b.desc + 16ULL * i;

		if (packed_shadow) /* available-looking, never used */
			sim_put_pdesc(d, b[3].gpa, UINT32_MAX, (uint16_t)i,
				      P_AVAIL | F_WRITE);
		else
			sim_put_desc(d, b[3].gpa, UINT32_MAX, F_WRITE,
				     (uint16_t)(i + 7));
	}
	snap_take(&f, &s);
	sim_backend_push(&f.b, h[0], 50);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.errors, 0);
	/* Only the first 50 bytes of the first request's buffer. */
	b[1].len = 50;
	snap_check(&f, &s, &b[1], 1);
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(len, 50);
	fx_fini(&f);
}

/* A back-end that never completes: stop returns after its bound. */
static void
test_backend_never_completes_stop_returns_after_bound(bool packed_shadow)
{
	struct sim_buf b[4];
	struct vuiso_vq_state st;
	struct timespec t0, t1;
	uint16_t h[2];
	struct fx f;
	struct snap s;
	long ms;

	setup_layouts(&f, false, false, packed_shadow);
	two_in_flight(&f, b, h);
	snap_take(&f, &s);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vuiso_vq_stop(f.vq, 100, &st), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 100);
	assert_true(ms < 5000);
	assert_int_equal(st.inflight, 2);
	assert_int_equal(f.errors, 0);
	snap_check(&f, &s, NULL, 0);
	/* Stopped: guest kicks are refused; a reset drops the requests. */
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), -EINVAL);
	vuiso_vq_reset(f.vq);
	fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* Guest memory map replaced under the queue                           */
/* ------------------------------------------------------------------ */

/*
 * Memory unplug while a request is in flight: its writable buffer's range
 * is removed from the map (and made PROT_NONE here, so any access would
 * crash).  The completion breaks the queue, the unplugged memory is never
 * touched, and nothing else changes.
 */
static void
test_map_replaced_in_flight_unplugged_region_not_touched(void **state)
{
	struct fx_opts o = {.qsize = QSIZE};
	struct vuiso_mem_region mr;
	struct sim_buf b[2];
	struct fx f;
	struct snap s;
	uint16_t head;
	uint64_t r1 = 0;
	int ret;

	(void)state;
	assert_int_equal(fx_init(&f, &o), 0);
	/* Readable header in range 0, writable buffer in range 1. */
	b[0] = (struct sim_buf){buf(&f, 16), 16, false};
	while (f.g.heap_next < f.g.ram[1].gpa)
		r1 = sim_alloc(&f.g, 4096);
	b[1] = (struct sim_buf){buf(&f, 512), 512, true};
	assert_true(r1 && b[1].gpa >= f.g.ram[1].gpa);
	assert_true(sim_add(&f.g, b, 2, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	head = backend_take(&f, 0x77);

	mr = (struct vuiso_mem_region){f.g.ram[0].gpa, f.g.ram[0].size,
				       f.g.ram[0].hva};
	assert_int_equal(vuiso_dev_set_guest_memory(f.dev, &mr, 1), 0);
	snap_take(&f, &s);
	assert_int_equal(mprotect(f.g.ram[1].hva, f.g.ram[1].size, PROT_NONE),
			 0);

	sim_backend_push(&f.b, head, 512);
	sim_backend_flush(&f.b);
	ret = vuiso_vq_call_from_backend(f.vq);
	expect_broken(&f, ret, -EFAULT,
		      "guest: ", "left guest memory while in flight");
	assert_int_equal(mprotect(f.g.ram[1].hva, f.g.ram[1].size,
				  PROT_READ | PROT_WRITE),
			 0);
	snap_check(&f, &s, NULL, 0);
	fx_fini(&f);
}

/* A request made available in memory the VMM has since unplugged. */
static void
test_map_replaced_before_pop_unplugged_buffer_breaks_queue(void **state)
{
	struct vuiso_mem_region mr;
	struct sim_buf b[2];
	struct fx f;

	(void)state;
	setup(&f, false);
	b[0] = (struct sim_buf){buf(&f, 16), 16, false};
	while (f.g.heap_next < f.g.ram[1].gpa)
		sim_alloc(&f.g, 4096);
	b[1] = (struct sim_buf){buf(&f, 512), 512, true};
	assert_true(sim_add(&f.g, b, 2, false) >= 0);
	sim_kick_needed(&f.g);
	mr = (struct vuiso_mem_region){f.g.ram[0].gpa, f.g.ram[0].size,
				       f.g.ram[0].hva};
	assert_int_equal(vuiso_dev_set_guest_memory(f.dev, &mr, 1), 0);
	guest_attack(&f, -EFAULT, "is not in guest memory");
}

/* ------------------------------------------------------------------ */
/* Isolation between queues                                            */
/* ------------------------------------------------------------------ */

struct mq_errors {
	unsigned count[2];
	char msg[2][256];
};

static void mq_error(void *opaque, unsigned qidx, int err, const char *msg)
{
	struct mq_errors *e = opaque;

	(void)err;
	assert_true(qidx < 2);
	e->count[qidx]++;
	snprintf(e->msg[qidx], sizeof(e->msg[qidx]), "%s", msg);
}

/*
 * A hostile guest breaks queue 0 of a two-queue device; queue 1, driven
 * through its own ring in the same guest RAM, keeps running.
 */
static void test_violation_breaks_only_its_own_queue(void **state)
{
	static const struct vuiso_ops ops = {.version = VUISO_OPS_VERSION,
					     .error = mq_error};
	struct mq_errors errs = {0};
	struct vuiso_dev_config dc = {.version = VUISO_DEV_CONFIG_VERSION,
				      .num_queues = 2,
				      .queue_size_max = 16,
				      .pool_size = 64 * 1024,
				      .region_fd = -1,
				      .ops = &ops,
				      .opaque = &errs};
	uint64_t feat = 1ULL << VUISO_F_VERSION_1;
	struct vuiso_mem_region mr[SIM_MAX_RAM];
	struct vuiso_vq_config c0, c1;
	struct vuiso_vq_shadow sh0, sh1;
	struct vuiso_region_info ri;
	struct sim_guest g, g1;
	struct sim_backend b1;
	struct sim_seg segs[16];
	struct sim_buf b[2];
	struct vuiso_dev *dev;
	struct vuiso_vq *vq0, *vq1;
	uint32_t id, len;
	uint16_t head;

	(void)state;
	assert_int_equal(sim_guest_init(&g, 1, 1 << 20, 16, false, false), 0);
	assert_int_equal(vuiso_dev_new(&dc, &dev), 0);
	assert_int_equal(
		vuiso_dev_set_guest_memory(dev, mr, sim_guest_regions(&g, mr)),
		0);
	vq0 = vuiso_dev_get_vq(dev, 0);
	vq1 = vuiso_dev_get_vq(dev, 1);
	sim_guest_vq_config(&g, feat, feat, &c0);
	assert_int_equal(vuiso_vq_start(vq0, &c0, &sh0), 0);

	/* Queue 1: a second driver with its own ring and heap. */
	assert_int_equal(sim_guest_second_ring(&g, &g1, 16, 256 << 10), 0);
	sim_guest_vq_config(&g1, feat, feat, &c1);
	assert_int_equal(vuiso_vq_start(vq1, &c1, &sh1), 0);
	assert_int_equal(vuiso_dev_get_region(dev, 0, &ri), 0);
	assert_int_equal(sim_backend_init(&b1, &ri, &sh1, false), 0);

	/* Queue 0: a descriptor that loops onto itself. */
	sim_put_desc(g.desc, sim_alloc(&g, 64), 64, F_NEXT, 0);
	sim_split_avail_raw(&g, 0);
	assert_int_equal(vuiso_vq_kick_from_guest(vq0), -EIO);
	assert_int_equal(errs.count[0], 1);
	assert_non_null(strstr(errs.msg[0], "guest: descriptor loop"));

	/* Queue 1 still works, byte for byte. */
	b[0] = (struct sim_buf){sim_alloc(&g1, 16), 16, false};
	b[1] = (struct sim_buf){sim_alloc(&g1, 300), 300, true};
	assert_true(sim_add(&g1, b, 2, false) >= 0);
	sim_kick_needed(&g1);
	assert_int_equal(vuiso_vq_kick_from_guest(vq1), 0);
	assert_int_equal(sim_backend_pop(&b1, &head, segs), 2);
	memset(segs[1].ptr, 0x3c, 300);
	sim_backend_push(&b1, head, 300);
	sim_backend_flush(&b1);
	assert_int_equal(vuiso_vq_call_from_backend(vq1), 0);
	assert_true(sim_reap(&g1, &id, &len));
	assert_int_equal(len, 300);
	for (unsigned i = 0; i < 300; i++)
		assert_int_equal(((uint8_t *)sim_gpa(&g, b[1].gpa))[i], 0x3c);
	assert_int_equal(errs.count[1], 0);
	/* Queue 0 stays broken and silent. */
	assert_int_equal(vuiso_vq_kick_from_guest(vq0), -EIO);
	assert_int_equal(errs.count[0], 1);

	sim_backend_fini(&b1);
	vuiso_dev_free(dev);
	sim_guest_fini(&g1);
	sim_guest_fini(&g);
}

/* The back-end attacks run against a split and a packed shadow ring. */
#define BOTH_SHADOWS(fn)                             \
	static void fn##_split_shadow(void **state)  \
	{                                            \
		(void)state;                         \
		fn(false);                           \
	}                                            \
	static void fn##_packed_shadow(void **state) \
	{                                            \
		(void)state;                         \
		fn(true);                            \
	}
#define BOTH_SHADOW_TESTS(fn)                \
	cmocka_unit_test(fn##_split_shadow), \
		cmocka_unit_test(fn##_packed_shadow)

BOTH_SHADOWS(test_backend_used_id_out_of_range_breaks_queue)
BOTH_SHADOWS(test_backend_used_id_never_available_breaks_queue)
BOTH_SHADOWS(test_backend_used_id_of_chain_middle_breaks_queue)
BOTH_SHADOWS(test_backend_same_id_completed_twice_breaks_queue)
BOTH_SHADOWS(test_backend_completes_twice_across_calls_breaks_queue)
BOTH_SHADOWS(test_backend_used_len_larger_than_writable_is_clamped)
BOTH_SHADOWS(test_backend_rewrites_shadow_descriptors_is_ignored)
BOTH_SHADOWS(test_backend_never_completes_stop_returns_after_bound)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_guest_descriptor_loop_direct_breaks_queue),
		cmocka_unit_test(
			test_guest_descriptor_loop_indirect_breaks_queue),
		cmocka_unit_test(test_guest_nested_indirect_breaks_queue),
		cmocka_unit_test(test_guest_indirect_with_next_breaks_queue),
		cmocka_unit_test(
			test_guest_indirect_len_not_multiple_of_16_breaks_queue),
		cmocka_unit_test(
			test_guest_indirect_larger_than_queue_breaks_queue),
		cmocka_unit_test(test_guest_indirect_len_zero_breaks_queue),
		cmocka_unit_test(
			test_guest_indirect_without_feature_breaks_queue),
		cmocka_unit_test(
			test_guest_indirect_table_unmapped_breaks_queue),
		cmocka_unit_test(
			test_guest_chain_longer_than_queue_breaks_queue),
		cmocka_unit_test(test_guest_head_out_of_range_breaks_queue),
		cmocka_unit_test(test_guest_next_out_of_range_breaks_queue),
		cmocka_unit_test(
			test_guest_next_out_of_range_indirect_breaks_queue),
		cmocka_unit_test(test_guest_avail_index_jump_breaks_queue),
		cmocka_unit_test(test_guest_addr_len_overflow_breaks_queue),
		cmocka_unit_test(
			test_guest_buffer_straddles_unmapped_gpa_breaks_queue),
		cmocka_unit_test(
			test_guest_writable_straddles_unmapped_gpa_breaks_queue),
		cmocka_unit_test(
			test_guest_readable_after_writable_breaks_queue),
		cmocka_unit_test(
			test_guest_zero_length_descriptor_breaks_queue),
		cmocka_unit_test(
			test_guest_zero_length_indirect_entry_breaks_queue),
		cmocka_unit_test(
			test_guest_total_length_over_4gib_breaks_queue),
		cmocka_unit_test(
			test_guest_request_larger_than_pool_breaks_queue),
		cmocka_unit_test(test_guest_rings_unplugged_breaks_queue),
		cmocka_unit_test(
			test_guest_rewrites_descriptor_after_pop_snapshot_is_used),
		BOTH_SHADOW_TESTS(
			test_backend_used_id_out_of_range_breaks_queue),
		BOTH_SHADOW_TESTS(
			test_backend_used_id_never_available_breaks_queue),
		BOTH_SHADOW_TESTS(
			test_backend_used_id_of_chain_middle_breaks_queue),
		BOTH_SHADOW_TESTS(
			test_backend_same_id_completed_twice_breaks_queue),
		BOTH_SHADOW_TESTS(
			test_backend_completes_twice_across_calls_breaks_queue),
		cmocka_unit_test(test_backend_used_index_jump_breaks_queue),
		cmocka_unit_test(
			test_backend_used_index_wraps_backwards_breaks_queue),
		BOTH_SHADOW_TESTS(
			test_backend_used_len_larger_than_writable_is_clamped),
		BOTH_SHADOW_TESTS(
			test_backend_rewrites_shadow_descriptors_is_ignored),
		BOTH_SHADOW_TESTS(
			test_backend_never_completes_stop_returns_after_bound),
		cmocka_unit_test(
			test_map_replaced_in_flight_unplugged_region_not_touched),
		cmocka_unit_test(
			test_map_replaced_before_pop_unplugged_buffer_breaks_queue),
		cmocka_unit_test(test_violation_breaks_only_its_own_queue),
		cmocka_unit_test(
			test_packed_guest_buffer_id_out_of_range_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_buffer_id_of_last_descriptor_counts),
		cmocka_unit_test(
			test_packed_guest_buffer_id_reused_while_in_flight_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_wrap_counter_mismatch_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_chain_longer_than_ring_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_chain_overlapping_inflight_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_indirect_in_longer_chain_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_indirect_with_next_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_indirect_len_not_multiple_of_16_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_nested_indirect_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_indirect_without_feature_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_zero_length_descriptor_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_addr_len_overflow_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_readable_after_writable_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_total_length_over_4gib_breaks_queue),
		cmocka_unit_test(
			test_packed_guest_unavailable_head_is_not_taken),
		cmocka_unit_test(
			test_packed_backend_used_flags_of_other_lap_are_not_taken),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
