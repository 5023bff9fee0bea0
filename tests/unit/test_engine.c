// SPDX-License-Identifier: MIT
/*
 * Engine tests: a simulated guest driver and a simulated back-end drive one
 * shadow virtqueue through the public API, and every byte is checked on
 * both sides, together with all of guest RAM around the buffers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fixture.h"

#define MAX_SEGS 8

/*
 * Every engine test runs for the four combinations of guest ring layout and
 * shadow (back-end) ring layout; the test names end in _<guest>_<backend>.
 */
struct layouts {
	bool guest;   /* the guest's ring is packed */
	bool backend; /* the shadow ring is packed */
};

static const struct layouts split_split = {false, false};
static const struct layouts split_packed = {false, true};
static const struct layouts packed_split = {true, false};
static const struct layouts packed_packed = {true, true};

#define FOUR_LAYOUTS(fn)                             \
	static void fn##_split_split(void **state)   \
	{                                            \
		(void)state;                         \
		fn(&split_split);                    \
	}                                            \
	static void fn##_split_packed(void **state)  \
	{                                            \
		(void)state;                         \
		fn(&split_packed);                   \
	}                                            \
	static void fn##_packed_split(void **state)  \
	{                                            \
		(void)state;                         \
		fn(&packed_split);                   \
	}                                            \
	static void fn##_packed_packed(void **state) \
	{                                            \
		(void)state;                         \
		fn(&packed_packed);                  \
	}

#define FOUR_TESTS(fn)                               \
	cmocka_unit_test(fn##_split_split),          \
		cmocka_unit_test(fn##_split_packed), \
		cmocka_unit_test(fn##_packed_split), \
		cmocka_unit_test(fn##_packed_packed)

static struct fx_opts *lay(struct fx_opts *o, const struct layouts *L)
{
	o->guest_packed = L->guest;
	o->backend_packed = L->backend;
	return o;
}

/* A guest ring index as the engine reports it: packed ones carry the wrap
 * counter, which is still 1 for @n below the queue size. */
static uint16_t idx(const struct layouts *L, uint16_t n)
{
	return L->guest ? (uint16_t)(n | VUISO_PACKED_WRAP) : n;
}

/* What the guest put in one request, for both sides to check against. */
struct req {
	bool live;
	unsigned n;
	struct sim_buf buf[MAX_SEGS];
	uint32_t writable;
	uint32_t seq;
};

struct round {
	struct req req[1024]; /* by guest head id */
	uint8_t *ref;         /* expected image of the heap */
	uint64_t ref_base, ref_len;
	uint64_t rng;
	unsigned completed;
	unsigned outstanding;
};

/* The device's answer: byte k of the writable stream. */
static uint8_t answer(uint32_t seq, uint32_t k)
{
	return (uint8_t)(seq * 131u + k * 7u + (k >> 8));
}

static void ref_write(struct round *r, uint64_t gpa, uint8_t v)
{
	r->ref[gpa - r->ref_base] = v;
}

/* Visit guest [gpa, gpa + len) range by range. */
static void guest_span(struct fx *f, uint64_t gpa, uint64_t len,
		       void (*fn)(uint8_t *host, uint64_t off, uint64_t n,
				  void *arg),
		       void *arg)
{
	uint64_t done = 0;

	while (done < len) {
		uint64_t n = len - done;

		for (unsigned i = 0; i < f->g.nram; i++) {
			const struct sim_ram *ram = &f->g.ram[i];
			uint64_t a = gpa + done;

			if (a >= ram->gpa && a - ram->gpa < ram->size) {
				if (n > ram->size - (a - ram->gpa))
					n = ram->size - (a - ram->gpa);
				fn(ram->hva + (a - ram->gpa), done, n, arg);
				break;
			}
		}
		done += n;
	}
}

static void span_fill(uint8_t *host, uint64_t off, uint64_t n, void *arg)
{
	memcpy(host, (uint8_t *)arg + off, n);
}

struct span_cmp {
	const uint8_t *want;
	uint64_t gpa;
};

static void span_check(uint8_t *host, uint64_t off, uint64_t n, void *arg)
{
	struct span_cmp *c = arg;

	if (memcmp(host, c->want + off, n) == 0)
		return;
	for (uint64_t i = 0; i < n; i++)
		if (host[i] != c->want[off + i])
			fail_msg("guest byte at gpa 0x%llx is 0x%02x, expected "
				 "0x%02x",
				 (unsigned long long)(c->gpa + off + i),
				 host[i], c->want[off + i]);
}

/* Check that guest [gpa, gpa + len) holds @want. */
static void guest_expect(struct fx *f, uint64_t gpa, const uint8_t *want,
			 uint64_t len)
{
	struct span_cmp c = {want, gpa};

	guest_span(f, gpa, len, span_check, &c);
}

/* Fill the whole heap with random bytes, in the guest and in ref. */
static void round_begin(struct fx *f, struct round *r)
{
	sim_heap_reset(&f->g);
	r->ref_base = f->g.heap_gpa;
	r->ref_len = f->g.heap_end - f->g.heap_gpa;
	r->ref = realloc(r->ref, r->ref_len);
	assert_non_null(r->ref);
	for (uint64_t i = 0; i < r->ref_len; i++)
		r->ref[i] = (uint8_t)sim_rand(&r->rng);
	guest_span(f, r->ref_base, r->ref_len, span_fill, r->ref);
}

/* Every byte of the heap is what the requests should have left there. */
static void round_check_heap(struct fx *f, struct round *r)
{
	guest_expect(f, r->ref_base, r->ref, r->ref_len);
}

/* Build one request of payload @size: header (16 B readable), payload
 * (readable or writable, split in up to 3 buffers), status (1 B writable). */
static int add_request(struct fx *f, struct round *r, uint32_t size,
		       bool payload_out, uint32_t seq, bool indirect)
{
	struct req q = {.live = true, .seq = seq};
	uint64_t hdr = sim_alloc(&f->g, 16);
	int head;

	if (!hdr)
		return -1;
	q.buf[q.n++] = (struct sim_buf){hdr, 16, false};
	if (size) {
		unsigned parts = 1 + (unsigned)(sim_rand(&r->rng) % 3);
		uint32_t left = size;

		for (unsigned p = 0; p < parts && left; p++) {
			uint32_t len =
				p + 1 == parts
					? left
					: 1 + (uint32_t)(sim_rand(&r->rng) %
							 left);
			uint64_t gpa = sim_alloc(&f->g, len);

			if (!gpa)
				return -1;
			q.buf[q.n++] = (struct sim_buf){gpa, len, !payload_out};
			left -= len;
		}
	}
	q.buf[q.n] = (struct sim_buf){sim_alloc(&f->g, 1), 1, true};
	if (!q.buf[q.n].gpa)
		return -1;
	q.n++;
	for (unsigned i = 0; i < q.n; i++)
		if (q.buf[i].write)
			q.writable += q.buf[i].len;
	head = sim_add(&f->g, q.buf, q.n, indirect);
	if (head < 0)
		return -1;
	/* The driver's indirect tables live below the heap: the heap holds
	 * nothing but the requests' buffers. */
	assert_false(r->req[head].live);
	r->req[head] = q;
	r->outstanding++;
	return head;
}

/*
 * The simulated device: check that the readable bytes it sees are the
 * guest's, write the answer into the writable buffers and pick a used len
 * (all of it, less, or a lie larger than the buffers).
 */
static uint32_t serve(struct fx *f, struct round *r, const struct sim_seg *s,
		      int n, uint32_t *reported)
{
	uint32_t seq, k = 0, in = 0;
	struct req *q = NULL;
	uint64_t choice;
	int i;

	/* The first readable buffer is the header; find its request. */
	for (unsigned h = 0; h < f->g.qsize; h++) {
		const struct req *c = &r->req[h];

		if (c->live && c->n == (unsigned)n &&
		    memcmp(s[0].ptr, r->ref + (c->buf[0].gpa - r->ref_base),
			   16) == 0) {
			q = &r->req[h];
			break;
		}
	}
	if (!q)
		fail_msg("back-end got a chain that matches no guest request");
	seq = q->seq;
	for (i = 0; i < n; i++) {
		assert_int_equal(s[i].len, q->buf[i].len);
		assert_int_equal(s[i].write, q->buf[i].write);
		if (!s[i].write) {
			/* Readable: exactly the guest's bytes. */
			if (memcmp(s[i].ptr,
				   r->ref + (q->buf[i].gpa - r->ref_base),
				   s[i].len) != 0)
				fail_msg("back-end saw wrong readable bytes in "
					 "request %u buffer %d",
					 seq, i);
		} else {
			in += s[i].len;
		}
	}
	choice = sim_rand(&r->rng) % 4;
	*reported = choice == 0 ? in / 2 : choice == 1 ? in + 1000 : in;
	for (i = 0; i < n; i++) {
		if (!s[i].write)
			continue;
		for (uint32_t j = 0; j < s[i].len; j++, k++)
			s[i].ptr[j] = answer(seq, k);
	}
	return in;
}

/* Record what the guest must see for the completion of @head. */
static void expect_completion(struct fx *f, struct round *r, uint32_t head,
			      uint32_t len)
{
	struct req *q;
	uint32_t k = 0, left;

	assert_true(head < f->g.qsize);
	q = &r->req[head];
	assert_true(q->live);
	assert_int_equal(len, len < q->writable ? len : q->writable);
	left = len;
	for (unsigned i = 0; i < q->n && left; i++) {
		if (!q->buf[i].write)
			continue;
		for (uint32_t j = 0; j < q->buf[i].len && left;
		     j++, k++, left--)
			ref_write(r, q->buf[i].gpa + j, answer(q->seq, k));
	}
	q->live = false;
	r->outstanding--;
	r->completed++;
}

/* Back-end: pop what is there, complete in random order, keep some. */
static void backend_step(struct fx *f, struct round *r)
{
	static struct sim_seg segs[1024];
	uint16_t held[1024];
	uint32_t held_len[1024];
	unsigned nheld = 0;
	uint16_t head;
	int n;

	while ((n = sim_backend_pop(&f->b, &head, segs)) > 0) {
		uint32_t rep;

		serve(f, r, segs, n, &rep);
		held[nheld] = head;
		held_len[nheld++] = rep;
	}
	assert_int_equal(n, 0);
	/* Shuffle: out-of-order completion. */
	for (unsigned i = nheld; i > 1; i--) {
		unsigned j = (unsigned)(sim_rand(&r->rng) % i);
		uint16_t t = held[i - 1];
		uint32_t tl = held_len[i - 1];

		held[i - 1] = held[j];
		held_len[i - 1] = held_len[j];
		held[j] = t;
		held_len[j] = tl;
	}
	for (unsigned i = 0; i < nheld; i++)
		sim_backend_push(&f->b, held[i], held_len[i]);
	if (sim_backend_flush(&f->b) || nheld)
		assert_true(vuiso_vq_call_from_backend(f->vq) >= 0);
	sim_backend_arm(&f->b);
}

static void guest_reap(struct fx *f, struct round *r)
{
	uint32_t id, len;

	while (sim_reap(&f->g, &id, &len))
		expect_completion(f, r, id, len);
	sim_guest_arm(&f->g);
}

static void run_round(struct fx *f, struct round *r, unsigned nreq,
		      const uint32_t *sizes, unsigned nsizes, bool indirect)
{
	unsigned added = 0, spins = 0;

	round_begin(f, r);
	while (added < nreq || r->outstanding) {
		while (added < nreq && sim_guest_free(&f->g) >= MAX_SEGS) {
			uint32_t size = sizes[sim_rand(&r->rng) % nsizes];
			int head;

			/* Keep room for the largest request plus tables. */
			if (f->g.heap_end - f->g.heap_next < (2u << 20)) {
				nreq = added;
				break;
			}
			head = add_request(f, r, size, sim_rand(&r->rng) & 1,
					   added, indirect);
			assert_true(head >= 0);
			added++;
		}
		if (sim_kick_needed(&f->g) || spins % 3 == 0)
			assert_true(vuiso_vq_kick_from_guest(f->vq) >= 0);
		backend_step(f, r);
		guest_reap(f, r);
		assert_int_equal(f->errors, 0);
		assert_true(++spins < 100000);
	}
	round_check_heap(f, r);
}

static const uint32_t mixed_sizes[] = {0,    1,    63,     64,     65,
				       512,  1500, 4096,   4097,   65536,
				       8192, 300,  131072, 1 << 20};

static void roundtrip(const struct layouts *L, bool gev, bool bev,
		      bool indirect)
{
	struct fx_opts o = {.qsize = 128,
			    .pool_size = 4 << 20,
			    .nram = 2,
			    .ram_size = 8 << 20,
			    .guest_event_idx = gev,
			    .backend_event_idx = bev,
			    .indirect = indirect};
	struct fx f;
	struct round *r = calloc(1, sizeof(*r));
	struct vuiso_vq_stats st;
	unsigned total = 0;

	assert_non_null(r);
	r->rng = 0x1234 + gev * 2 + bev * 4 + indirect * 8 + L->guest * 16 +
		 L->backend * 32;
	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (unsigned round = 0; round < 12; round++) {
		unsigned n = 20 + (unsigned)(sim_rand(&r->rng) % 40);

		run_round(&f, r, n, mixed_sizes,
			  sizeof(mixed_sizes) / sizeof(mixed_sizes[0]),
			  indirect);
	}
	total = r->completed;
	assert_true(total > 300);
	vuiso_vq_get_stats(f.vq, &st);
	assert_int_equal(st.requests, total);
	assert_int_equal(st.completions, total);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(f.b.bad, 0);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
	free(r->ref);
	free(r);
}

static void test_roundtrip_every_byte_plain(const struct layouts *L)
{
	roundtrip(L, false, false, false);
}

static void test_roundtrip_every_byte_event_idx_both(const struct layouts *L)
{
	roundtrip(L, true, true, false);
}

static void
test_roundtrip_every_byte_event_idx_guest_only(const struct layouts *L)
{
	roundtrip(L, true, false, false);
}

static void
test_roundtrip_every_byte_event_idx_backend_only(const struct layouts *L)
{
	roundtrip(L, false, true, false);
}

static void test_roundtrip_every_byte_indirect(const struct layouts *L)
{
	roundtrip(L, true, true, true);
}

/* A pool much smaller than the ring: the queue waits, nothing is lost. */
static void test_full_pool_backpressure_loses_nothing(const struct layouts *L)
{
	struct fx_opts o = {.qsize = 256, .pool_size = 64 * 1024};
	static const uint32_t sizes[] = {16384, 20000, 8192, 100};
	struct round *r = calloc(1, sizeof(*r));
	struct vuiso_vq_stats st;
	struct fx f;

	assert_non_null(r);
	r->rng = 99;
	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	run_round(&f, r, 200, sizes, 4, false);
	vuiso_vq_get_stats(f.vq, &st);
	assert_int_equal(st.completions, 200);
	assert_true(st.backpressure > 0);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
	free(r->ref);
	free(r);
}

static void
test_request_larger_than_pool_breaks_queue_e2big(const struct layouts *L)
{
	struct fx_opts o = {.pool_size = 64 * 1024};
	struct sim_buf b[2];
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	b[0] = (struct sim_buf){sim_alloc(&f.g, 16), 16, false};
	b[1] = (struct sim_buf){sim_alloc(&f.g, 65536), 65536, true};
	assert_true(sim_add(&f.g, b, 2, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), -EIO);
	assert_int_equal(f.errors, 1);
	assert_int_equal(f.last_err, -E2BIG);
	assert_non_null(strstr(f.last_msg, "pool"));
	/* Broken: every entry point returns early, reported once. */
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), -EIO);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), -EIO);
	assert_int_equal(f.errors, 1);
	fx_fini(&f);
}

/*
 * Freed blocks are parked per order and reused as they are.  Park the
 * lowest- and highest-addressed 1 KiB blocks on top, then send a request
 * whose first two parts take them: they split both halves of the pool, so
 * its 32 KiB part cannot fit until the engine, seeing nothing in flight,
 * merges everything and retries.  The request needs exactly the whole pool.
 */
static void
test_whole_pool_request_fits_after_fragmenting_traffic(const struct layouts *L)
{
	static const uint32_t parts[] = {1024, 1024, 32768, 16384,
					 8192, 4096, 2048};
	struct fx_opts o = {.pool_size = 64 * 1024};
	struct sim_seg segs[64];
	struct sim_buf b[7];
	struct {
		uint16_t head;
		uint8_t *addr;
	} got[48], t;
	int order[48], n = 0;
	uint32_t id, len;
	uint16_t head;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int i = 0; i < 48; i++) {
		b[0] = (struct sim_buf){sim_alloc(&f.g, 1024), 1024, true};
		assert_true(sim_add(&f.g, b, 1, false) >= 0);
	}
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	for (int i = 0; i < 48; i++) {
		assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
		got[i].head = head;
		got[i].addr = segs[0].ptr;
	}
	for (int i = 0; i < 48; i++) /* sort by bounce address */
		for (int j = i + 1; j < 48; j++)
			if (got[j].addr < got[i].addr)
				t = got[i], got[i] = got[j], got[j] = t;
	/* The first 16 completions are parked; the last two parked are the
	 * lowest and the highest block. */
	for (int i = 2; i < 16; i++)
		order[n++] = i;
	order[n++] = 0;
	order[n++] = 47;
	order[n++] = 1;
	for (int i = 16; i < 47; i++)
		order[n++] = i;
	for (int i = 0; i < 48; i++)
		sim_backend_push(&f.b, got[order[i]].head, 1);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	while (sim_reap(&f.g, &id, &len))
		;
	for (int i = 0; i < 7; i++)
		b[i] = (struct sim_buf){sim_alloc(&f.g, parts[i]), parts[i],
					true};
	assert_true(sim_add(&f.g, b, 7, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 7);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/* Budget: a call stops after `budget` chains and says so. */
static void test_budget_bounds_work_per_call(const struct layouts *L)
{
	struct fx_opts o = {.budget = 4};
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head;
	unsigned got = 0;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int i = 0; i < 10; i++) {
		b = (struct sim_buf){sim_alloc(&f.g, 64), 64, false};
		assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	}
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 1);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 1);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	while (sim_backend_pop(&f.b, &head, segs) > 0) {
		sim_backend_push(&f.b, head, 0);
		got++;
	}
	assert_int_equal(got, 10);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 1);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 1);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/*
 * Budget and back-pressure together: guest work left over when a call's
 * budget runs out is resumed by whichever call comes next, the back-end's
 * included, until the guest ring is drained.
 */
static void
test_budget_leftover_resumes_from_backend_call(const struct layouts *L)
{
	struct fx_opts o = {.budget = 3, .pool_size = 64 * 1024};
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head;
	uint32_t id, len;
	unsigned forwarded = 0, reaped = 0, spins = 0;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int i = 0; i < 40; i++) {
		b = (struct sim_buf){sim_alloc(&f.g, 8192), 8192, true};
		assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	}
	sim_kick_needed(&f.g);
	/* One guest kick only; from then on only the back-end calls. */
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 1);
	while (reaped < 40) {
		int r;

		while (sim_backend_pop(&f.b, &head, segs) > 0) {
			sim_backend_push(&f.b, head, 8192);
			forwarded++;
		}
		sim_backend_flush(&f.b);
		r = vuiso_vq_call_from_backend(f.vq);
		assert_true(r == 0 || r == 1);
		while (sim_reap(&f.g, &id, &len))
			reaped++;
		assert_true(++spins < 1000);
	}
	assert_int_equal(forwarded, 40);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/*
 * Without EVENT_IDX the guest's interrupt suppression is honoured: split
 * avail->flags NO_INTERRUPT, packed driver event flags DISABLE.
 */
static void
test_no_interrupt_flag_suppresses_guest_notify(const struct layouts *L)
{
	struct fx_opts o = {0};
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head;
	struct fx f;
	/* split: avail->flags; packed: the driver event structure's flags */
	uint16_t *flags;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	flags = (uint16_t *)(f.g.avail + (L->guest ? 2 : 0));
	*flags = htole16(1); /* NO_INTERRUPT / DISABLE */
	b = (struct sim_buf){sim_alloc(&f.g, 64), 64, true};
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(f.kicks, 1);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	sim_backend_push(&f.b, head, 64);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.notifies, 0);
	*flags = 0;
	fx_fini(&f);
}

/* With EVENT_IDX on both sides, a batch costs one kick and one interrupt,
 * and a guest that does not arm used_event gets none. */
static void test_event_idx_batches_notifications(const struct layouts *L)
{
	struct fx_opts o = {.guest_event_idx = true, .backend_event_idx = true};
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head;
	uint32_t id, len;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	sim_guest_arm(&f.g);
	sim_backend_arm(&f.b);
	for (int i = 0; i < 16; i++) {
		b = (struct sim_buf){sim_alloc(&f.g, 128), 128, true};
		assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	}
	assert_true(sim_kick_needed(&f.g));
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(f.kicks, 1);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
		sim_backend_push(&f.b, head, 128);
	}
	assert_true(sim_backend_flush(&f.b));
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.notifies, 1);
	for (int i = 0; i < 16; i++)
		assert_true(sim_reap(&f.g, &id, &len));
	/* Guest does not re-arm used_event: the next completion is silent. */
	b = (struct sim_buf){sim_alloc(&f.g, 128), 128, true};
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	assert_true(sim_kick_needed(&f.g));
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	sim_backend_push(&f.b, head, 1);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(f.notifies, 1);
	fx_fini(&f);
}

/* Stop completes what the back-end finished and returns the indices. */
static void test_stop_drains_and_returns_guest_indices(const struct layouts *L)
{
	struct fx_opts o = {0};
	struct vuiso_vq_state st;
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head;
	uint32_t id, len;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int i = 0; i < 5; i++) {
		b = (struct sim_buf){sim_alloc(&f.g, 100), 100, true};
		assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	}
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	while (sim_backend_pop(&f.b, &head, segs) > 0)
		sim_backend_push(&f.b, head, 100);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_stop(f.vq, 1000, &st), 0);
	assert_int_equal(st.avail_idx, idx(L, 5));
	assert_int_equal(st.used_idx, idx(L, 5));
	assert_int_equal(st.inflight, 0);
	for (int i = 0; i < 5; i++)
		assert_true(sim_reap(&f.g, &id, &len));
	/* Stopped: guest kicks are refused, a restart works. */
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), -EINVAL);
	assert_int_equal(fx_restart(&f), 0);
	b = (struct sim_buf){sim_alloc(&f.g, 100), 100, true};
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	fx_fini(&f);
}

/*
 * Stop and restart after the rings wrapped: 100 requests on a 64-entry
 * ring, stop, check the indices (packed: position 36, wrap counters
 * flipped to 0), restart from them and carry on with every byte checked.
 */
static void test_stop_restart_after_wrap_keeps_indices(const struct layouts *L)
{
	struct fx_opts o = {.qsize = 64};
	struct vuiso_vq_state st;
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head, want;
	uint32_t id, len;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 100; i++) {
			b = (struct sim_buf){sim_alloc(&f.g, 100), 100, true};
			assert_true(b.gpa != 0);
			assert_true(sim_add(&f.g, &b, 1, false) >= 0);
			sim_kick_needed(&f.g);
			assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
			assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
			memset(segs[0].ptr, 0x40 + round, 100);
			sim_backend_push(&f.b, head, 100);
			sim_backend_flush(&f.b);
			assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
			assert_true(sim_reap(&f.g, &id, &len));
			assert_int_equal(len, 100);
			assert_int_equal(((uint8_t *)sim_gpa(&f.g, b.gpa))[99],
					 0x40 + round);
		}
		assert_int_equal(vuiso_vq_stop(f.vq, 0, &st), 0);
		/* split: 100 or 200; packed: 100 = lap 2 position 36 (wrap
		 * 0), 200 = lap 4 position 8 (wrap 0). */
		want = L->guest ? (uint16_t)(round ? 8 : 36)
				: (uint16_t)(100 * (round + 1));
		assert_int_equal(st.avail_idx, want);
		assert_int_equal(st.used_idx, want);
		assert_int_equal(st.vring_base,
				 L->guest
					 ? (uint32_t)want | (uint32_t)want << 16
					 : want);
		assert_int_equal(fx_restart(&f), 0);
		sim_heap_reset(&f.g);
	}
	assert_int_equal(f.errors, 0);
	assert_int_equal(f.b.bad, 0);
	fx_fini(&f);
}

/* Give the fixture's queue a new simulated back-end after a detach. */
static int reattach(struct fx *f, const struct layouts *L)
{
	struct vuiso_region_info ri;
	uint64_t bf = 1ULL << VUISO_F_VERSION_1;
	int n;

	if (L->backend)
		bf |= 1ULL << VUISO_F_RING_PACKED;
	n = vuiso_vq_attach(f->vq, bf, &f->shadow);
	if (n < 0)
		return n;
	sim_backend_fini(&f->b);
	assert_int_equal(vuiso_dev_get_region(f->dev, 0, &ri), 0);
	assert_int_equal(sim_backend_init(&f->b, &ri, &f->shadow, false), 0);
	return n;
}

/*
 * A back-end dies with requests unfinished: the library keeps them and
 * replays them, oldest first and before any new request, to the next
 * back-end; the readable bytes come from guest RAM again (the old back-end
 * scribbled over its bounce buffers), the guest sees every request complete
 * exactly once, with the new back-end's answer.
 */
static void
test_backend_restart_replays_unfinished_requests(const struct layouts *L)
{
	struct fx_opts o = {.qsize = 64};
	struct sim_seg segs[64];
	struct sim_buf b[10][2];
	uint16_t head, heads[8];
	uint32_t id, len;
	unsigned seen[10] = {0}, reaped = 0;
	struct vuiso_vq_stats st;
	struct fx f;
	int n;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int i = 0; i < 10; i++) {
		b[i][0] = (struct sim_buf){sim_alloc(&f.g, 64), 64, false};
		b[i][1] = (struct sim_buf){sim_alloc(&f.g, 600), 600, i & 1};
		memset(sim_gpa(&f.g, b[i][0].gpa), 'A' + i, 64);
		memset(sim_gpa(&f.g, b[i][1].gpa), 'a' + i, 600);
	}
	for (int i = 0; i < 8; i++)
		assert_true(sim_add(&f.g, b[i], 2, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	/* The old back-end takes all eight, finishes three, scribbles on
	 * the bounce buffers of the others and dies. */
	for (int i = 0; i < 8; i++) {
		assert_int_equal(sim_backend_pop(&f.b, &heads[i], segs), 2);
		if (i >= 3) {
			memset(segs[0].ptr, 0xee, segs[0].len);
			memset(segs[1].ptr, 0xee, segs[1].len);
		}
	}
	for (int i = 0; i < 3; i++)
		sim_backend_push(&f.b, heads[i], 600);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	while (sim_reap(&f.g, &id, &len)) {
		reaped++;
		assert_true(id < 10);
		seen[id]++;
	}
	assert_int_equal(reaped, 3);
	/* Request 8 goes out before the back-end dies, in slots the three
	 * completions freed: lower ids than request 3's, newer in age. */
	assert_true(sim_add(&f.g, b[8], 2, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(vuiso_vq_detach(f.vq), 6);
	/* Detached: the guest's kick is noted, nothing goes anywhere. */
	assert_true(sim_add(&f.g, b[9], 2, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), -EINVAL);

	/* A new back-end: the six kept, oldest first, then the new one. */
	assert_int_equal(reattach(&f, L), 6);
	for (int k = 0; k < 7; k++) {
		int i = k + 3; /* requests 3..9, in their order */

		n = sim_backend_pop(&f.b, &head, segs);
		assert_int_equal(n, 2);
		assert_int_equal(segs[0].ptr[0], 'A' + i);
		assert_int_equal(segs[0].ptr[63], 'A' + i);
		if (!(i & 1)) /* readable payload: the guest's, not 0xee */
			for (int j = 0; j < 600; j++)
				assert_int_equal(segs[1].ptr[j], 'a' + i);
		else
			memset(segs[1].ptr, 'Z' - i, 600);
		sim_backend_push(&f.b, head, 600);
	}
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 0);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	while (sim_reap(&f.g, &id, &len)) {
		reaped++;
		assert_true(id < 64);
	}
	assert_int_equal(reaped, 10);
	for (int i = 3; i < 10; i += 2) /* the new back-end's answers */
		assert_int_equal(((uint8_t *)sim_gpa(&f.g, b[i][1].gpa))[599],
				 'Z' - i);
	vuiso_vq_get_stats(f.vq, &st);
	assert_int_equal(st.inflight, 0);
	assert_int_equal(st.completions, 10);
	assert_int_equal(f.errors, 0);
	assert_int_equal(f.b.bad, 0);
	fx_fini(&f);
}

/* A reconnected back-end that completes a replayed request twice, or an
 * id the old one completed, breaks the queue with a clear message. */
static void
test_backend_restart_then_completes_twice_breaks_queue(const struct layouts *L)
{
	struct fx_opts o = {.qsize = 64};
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t h[3], head;
	uint32_t id, len;
	struct fx f;

	for (int variant = 0; variant < 2; variant++) {
		assert_int_equal(fx_init(&f, lay(&o, L)), 0);
		for (int i = 0; i < 3; i++) {
			b = (struct sim_buf){sim_alloc(&f.g, 100), 100, true};
			assert_true(sim_add(&f.g, &b, 1, false) >= 0);
		}
		sim_kick_needed(&f.g);
		assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(sim_backend_pop(&f.b, &h[i], segs), 1);
		sim_backend_push(&f.b, h[0], 100);
		sim_backend_flush(&f.b);
		assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
		assert_true(sim_reap(&f.g, &id, &len));
		assert_int_equal(vuiso_vq_detach(f.vq), 2);
		assert_int_equal(reattach(&f, L), 2);
		assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
		if (variant == 0) {
			/* The replayed one, twice. */
			sim_backend_push(&f.b, head, 100);
			sim_backend_push(&f.b, head, 100);
		} else {
			/* One the old back-end had completed. */
			sim_backend_push(&f.b, h[0], 100);
		}
		sim_backend_flush(&f.b);
		assert_int_equal(vuiso_vq_call_from_backend(f.vq), -EIO);
		assert_int_equal(f.errors, 1);
		assert_int_equal(f.last_err, -EPROTO);
		assert_non_null(strstr(f.last_msg, "back-end: used id"));
		assert_non_null(strstr(f.last_msg, "completed twice"));
		fx_fini(&f);
	}
}

/* With the back-end gone a stop cannot drain: it returns at once and the
 * requests stay kept for a replay (or a reset). */
static void test_detached_stop_keeps_requests(const struct layouts *L)
{
	struct fx_opts o = {0};
	struct vuiso_vq_state st;
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head;
	uint32_t id, len;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	b = (struct sim_buf){sim_alloc(&f.g, 100), 100, true};
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(vuiso_vq_stop(f.vq, 10, &st), -ETIMEDOUT);
	assert_int_equal(vuiso_vq_detach(f.vq), 1);
	assert_int_equal(vuiso_vq_detach(f.vq), -EINVAL);
	assert_int_equal(vuiso_vq_stop(f.vq, 1000, &st), -ETIMEDOUT);
	assert_int_equal(st.inflight, 1);
	assert_int_equal(fx_restart(&f), -EBUSY);
	assert_int_equal(reattach(&f, L), 1);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	sim_backend_push(&f.b, head, 100);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_stop(f.vq, 1000, &st), 0);
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(len, 100);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/* The back-end's GET_VRING_BASE answer: the next entry it would take. */
static uint32_t backend_base(const struct fx *f)
{
	if (!f->b.packed)
		return f->b.last_avail;
	return f->b.last_avail | (f->b.avail_wrap ? VUISO_PACKED_WRAP : 0);
}

/*
 * A stop that never waits: six requests forwarded, the back-end took four
 * and used two of them before the stop, one more while it stopped.  The
 * stop completes the three used, gives the two it never took back to the
 * guest ring, and reports the one taken and unfinished; once that one
 * completes the stop ends.  A start from the returned indices reads the two
 * given back again: the guest sees all six complete, each once.
 */
static void
test_two_step_stop_gives_untaken_requests_back(const struct layouts *L)
{
	struct fx_opts o = {.qsize = 64};
	struct vuiso_vq_state st;
	struct sim_seg segs[64];
	struct sim_buf b[6][2];
	uint16_t heads[4], head;
	uint32_t id, len;
	unsigned done[64] = {0}, reaped = 0;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int i = 0; i < 6; i++) {
		b[i][0] = (struct sim_buf){sim_alloc(&f.g, 16), 16, false};
		b[i][1] = (struct sim_buf){sim_alloc(&f.g, 200), 200, true};
		memset(sim_gpa(&f.g, b[i][0].gpa), 'A' + i, 16);
		assert_true(sim_add(&f.g, b[i], 2, false) >= 0);
	}
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sim_backend_pop(&f.b, &heads[i], segs), 2);
	sim_backend_push(&f.b, heads[0], 200);
	sim_backend_push(&f.b, heads[1], 200);
	sim_backend_flush(&f.b);

	assert_int_equal(vuiso_vq_stop_begin(f.vq), 4);
	/* Stopped: guest kicks are refused. */
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), -EINVAL);
	/* The back-end finishes one more while it stops its ring, and is
	 * not asked to call for it: the stop polls (a back-end may already
	 * have closed its call eventfd). */
	sim_backend_push(&f.b, heads[2], 200);
	assert_false(sim_backend_flush(&f.b));
	assert_int_equal(vuiso_vq_stop_finish(f.vq, backend_base(&f), &st), 1);
	assert_int_equal(st.inflight, 1);
	/* The guest ring is back at the two never taken (a packed guest
	 * counts positions: two descriptors a request). */
	assert_int_equal(st.avail_idx, idx(L, L->guest ? 8 : 4));
	assert_int_equal(st.used_idx, idx(L, L->guest ? 6 : 3));
	assert_int_equal(f.errors, 0);
	/* The last one taken finishes, still without a call; the stop ends
	 * without a wait. */
	sim_backend_push(&f.b, heads[3], 200);
	assert_false(sim_backend_flush(&f.b));
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(vuiso_vq_stop(f.vq, 0, &st), 0);
	assert_int_equal(st.avail_idx, idx(L, L->guest ? 8 : 4));
	assert_int_equal(st.used_idx, idx(L, L->guest ? 8 : 4));
	while (sim_reap(&f.g, &id, &len)) {
		assert_true(id < 64);
		done[id]++;
		reaped++;
	}
	assert_int_equal(reaped, 4);

	/* Start from the stop's indices: the two come again. */
	assert_int_equal(fx_restart_at(&f, &st), 0);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	for (int i = 4; i < 6; i++) {
		assert_int_equal(sim_backend_pop(&f.b, &head, segs), 2);
		assert_int_equal(segs[0].ptr[0], 'A' + i);
		sim_backend_push(&f.b, head, 200);
	}
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 0);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	while (sim_reap(&f.g, &id, &len)) {
		assert_true(id < 64);
		done[id]++;
		reaped++;
	}
	assert_int_equal(reaped, 6);
	for (unsigned i = 0; i < 64; i++)
		assert_true(done[i] <= 1);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/* A GET_VRING_BASE answer past what was ever made available, or (packed)
 * inside a chain, is the back-end's violation. */
static void
test_two_step_stop_bad_backend_base_breaks_queue(const struct layouts *L)
{
	struct fx_opts o = {.qsize = 64};
	struct vuiso_vq_state st;
	struct sim_seg segs[64];
	struct sim_buf b[2];
	uint16_t head;
	uint32_t bad;
	struct fx f;

	for (int variant = 0; variant < 2; variant++) {
		assert_int_equal(fx_init(&f, lay(&o, L)), 0);
		for (int i = 0; i < 2; i++) {
			b[0] = (struct sim_buf){sim_alloc(&f.g, 16), 16, false};
			b[1] = (struct sim_buf){sim_alloc(&f.g, 100), 100,
						true};
			assert_true(sim_add(&f.g, b, 2, false) >= 0);
		}
		sim_kick_needed(&f.g);
		assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
		assert_int_equal(sim_backend_pop(&f.b, &head, segs), 2);
		assert_int_equal(vuiso_vq_stop_begin(f.vq), 2);
		if (variant == 0)
			/* Five entries taken of the two made available. */
			bad = L->backend ? (10 | VUISO_PACKED_WRAP) : 5;
		else
			/* split: before the first; packed: mid-chain. */
			bad = L->backend ? (3 | VUISO_PACKED_WRAP) : 0xffff;
		assert_int_equal(vuiso_vq_stop_finish(f.vq, bad, &st), -EIO);
		assert_int_equal(f.errors, 1);
		assert_int_equal(f.last_err, -EPROTO);
		assert_non_null(strstr(f.last_msg,
				       "back-end: GET_VRING_BASE answered"));
		fx_fini(&f);
	}
}

/*
 * Stop while the queue waited for bounce space: it had told the guest not
 * to kick (split NO_NOTIFY, packed DISABLE) and one chain is still on the
 * guest ring.  A restart from the stop's indices takes that chain at once,
 * with no kick from anyone, and asks the guest for kicks again.
 */
static void test_restart_after_backpressured_stop_takes_waiting_chain(
	const struct layouts *L)
{
	struct fx_opts o = {.pool_size = 64 * 1024};
	struct vuiso_vq_state st;
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head, flags;
	uint32_t id, len;
	unsigned reaped = 0;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	for (int i = 0; i < 3; i++) {
		b = (struct sim_buf){sim_alloc(&f.g, 32768), 32768, true};
		assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	}
	sim_kick_needed(&f.g);
	/* Two fill the pool; the third waits, guest kicks off. */
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	flags = *(uint16_t *)(L->guest ? f.g.used + 2 : f.g.used);
	assert_int_equal(le16toh(flags), 1); /* NO_NOTIFY / DISABLE */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
		sim_backend_push(&f.b, head, 32768);
	}
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_stop(f.vq, 1000, &st), 0);
	assert_int_equal(st.avail_idx, idx(L, 2));
	while (sim_reap(&f.g, &id, &len))
		reaped++;
	assert_int_equal(reaped, 2);

	/* Restart where the device stopped, not where the driver is. */
	f.kicks = 0;
	assert_int_equal(fx_restart_at(&f, &st), 0);
	/* No kick from the guest: the chain is on the shadow ring already,
	 * the back-end was kicked, and the guest may kick again. */
	assert_int_equal(f.kicks, 1);
	flags = *(uint16_t *)(L->guest ? f.g.used + 2 : f.g.used);
	assert_int_equal(le16toh(flags), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	sim_backend_push(&f.b, head, 32768);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(len, 32768);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/* A back-end that never completes: stop returns after its bound, and a
 * later stop still completes what finishes late. */
static void
test_stop_times_out_when_backend_never_completes(const struct layouts *L)
{
	struct fx_opts o = {0};
	struct vuiso_vq_state st;
	struct sim_seg segs[64];
	struct sim_buf b;
	struct timespec t0, t1;
	uint16_t head;
	uint32_t id, len;
	long ms;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	b = (struct sim_buf){sim_alloc(&f.g, 100), 100, true};
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vuiso_vq_stop(f.vq, 50, &st), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 50);
	assert_int_equal(st.inflight, 1);
	assert_int_equal(st.avail_idx, idx(L, 1));
	assert_int_equal(st.used_idx, idx(L, 0));
	/* Cannot start while a request is still out. */
	assert_int_equal(fx_restart(&f), -EBUSY);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	memset(segs[0].ptr, 0xab, 100);
	sim_backend_push(&f.b, head, 100);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_stop(f.vq, 0, &st), 0);
	assert_int_equal(st.used_idx, idx(L, 1));
	assert_true(sim_reap(&f.g, &id, &len));
	assert_int_equal(len, 100);
	assert_int_equal(((uint8_t *)sim_gpa(&f.g, b.gpa))[99], 0xab);
	fx_fini(&f);
}

/* Reset drops in-flight requests and frees the whole pool. */
static void
test_reset_drops_inflight_and_restarts_clean(const struct layouts *L)
{
	struct fx_opts o = {.pool_size = 64 * 1024};
	struct sim_seg segs[64];
	struct vuiso_vq_stats st;
	struct sim_buf b;
	uint16_t head;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	b = (struct sim_buf){sim_alloc(&f.g, 60000), 60000, true};
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	vuiso_vq_reset(f.vq);
	vuiso_vq_get_stats(f.vq, &st);
	assert_int_equal(st.inflight, 0);
	/* The guest side is reset too (as on a device reset). */
	sim_guest_fini(&f.g);
	assert_int_equal(sim_guest_init(&f.g, 2, 4 << 20, 64, false, L->guest),
			 0);
	{
		struct vuiso_mem_region mr[SIM_MAX_RAM];
		unsigned n = sim_guest_regions(&f.g, mr);

		assert_int_equal(vuiso_dev_set_guest_memory(f.dev, mr, n), 0);
	}
	assert_int_equal(fx_restart(&f), 0);
	/* The whole 64 KiB pool is free again: a 60000-byte request fits. */
	b = (struct sim_buf){sim_alloc(&f.g, 60000), 60000, true};
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/*
 * Dirty logging with more scattered guest writes than one call may keep:
 * the call ends early (returns 1, as for a spent budget), the next goes on,
 * and every written byte is logged exactly once in the end.
 */
static void
test_dirty_log_full_buffer_ends_call_early_nothing_lost(const struct layouts *L)
{
	struct fx_opts o = {.qsize = 64};
	struct sim_seg segs[64];
	struct sim_buf b[2];
	uint16_t head;
	uint32_t id, len;
	unsigned calls = 0, reaped = 0;
	int r;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	vuiso_dev_set_logging(f.dev, 1);
	/* 30 chains of 2 writable buffers with gaps between all of them: no
	 * two writes merge into one log range, 3 ranges a completion. */
	for (int c = 0; c < 30; c++) {
		for (int i = 0; i < 2; i++) {
			b[i] = (struct sim_buf){sim_alloc(&f.g, 100), 100,
						true};
			assert_true(sim_alloc(&f.g, 64) != 0);
		}
		assert_true(sim_add(&f.g, b, 2, false) >= 0);
	}
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	while ((r = sim_backend_pop(&f.b, &head, segs)) > 0)
		sim_backend_push(&f.b, head, 200);
	sim_backend_flush(&f.b);
	f.logged = 0;
	do {
		r = vuiso_vq_call_from_backend(f.vq);
		assert_true(r == 0 || r == 1);
		assert_true(++calls < 10);
	} while (r == 1);
	/* A call keeps room for a whole chain of the queue (64 + 16 of the
	 * 2 x 64 + 32 entries): 90 ranges need a second call. */
	assert_true(calls >= 2);
	while (sim_reap(&f.g, &id, &len)) {
		assert_int_equal(len, 200);
		reaped++;
	}
	assert_int_equal(reaped, 30);
	/* 6000 payload bytes and the used ring's writes, nothing lost. */
	assert_true(f.logged >= 6000);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
}

/*
 * One request whose device-writable buffer the back-end fills with 0xab,
 * then one whose buffer it leaves alone while it reports every byte
 * written: returns the second buffer's guest address.
 */
static uint64_t write_then_lie(struct fx *f, bool reset_between)
{
	struct sim_seg segs[64];
	struct sim_buf b;
	uint16_t head;
	uint32_t id, len;

	for (int i = 0; i < 2; i++) {
		b = (struct sim_buf){sim_alloc(&f->g, 4096), 4096, true};
		memset(sim_gpa(&f->g, b.gpa), 0x11, 4096);
		assert_true(sim_add(&f->g, &b, 1, false) >= 0);
		sim_kick_needed(&f->g);
		assert_int_equal(vuiso_vq_kick_from_guest(f->vq), 0);
		assert_int_equal(sim_backend_pop(&f->b, &head, segs), 1);
		if (i == 0)
			memset(segs[0].ptr, 0xab, 4096);
		sim_backend_push(&f->b, head, 4096);
		sim_backend_flush(&f->b);
		assert_int_equal(vuiso_vq_call_from_backend(f->vq), 0);
		assert_true(sim_reap(&f->g, &id, &len));
		assert_int_equal(len, 4096);
		if (i == 0 && reset_between) {
			/* A device reset, as on a guest reboot. */
			vuiso_vq_reset(f->vq);
			assert_int_equal(fx_restart(f), 0);
		}
	}
	assert_int_equal(f->errors, 0);
	return b.gpa;
}

static void expect_zeros(struct fx *f, uint64_t gpa, uint32_t len)
{
	const uint8_t *p = sim_gpa(&f->g, gpa);

	for (uint32_t i = 0; i < len; i++)
		if (p[i])
			fail_msg("guest byte %u is 0x%02x, not 0: an earlier "
				 "request's data leaked",
				 i, p[i]);
}

/* A back-end that over-reports after a device reset gets zeros to the
 * guest, not the bytes of a request from before the reset. */
static void test_reset_scrubs_pool_nothing_crosses_it(const struct layouts *L)
{
	struct fx_opts o = {0};
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	expect_zeros(&f, write_then_lie(&f, true), 4096);
	fx_fini(&f);
}

/* VUISO_DEV_F_CLEAR_WRITABLE: the same lie without a reset reads zeros. */
static void
test_clear_writable_hides_earlier_request_bytes(const struct layouts *L)
{
	struct fx_opts o = {.dev_flags = VUISO_DEV_F_CLEAR_WRITABLE};
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	expect_zeros(&f, write_then_lie(&f, false), 4096);
	fx_fini(&f);
}

/* The map is replaced while a request is in flight: completion writes
 * through the new mapping, never the old one. */
static void
test_memory_map_replaced_in_flight_uses_new_mapping(const struct layouts *L)
{
	struct fx_opts o = {.nram = 1};
	struct vuiso_mem_region mr;
	struct sim_seg segs[64];
	struct sim_buf b;
	uint8_t *copy;
	uint16_t head;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	b = (struct sim_buf){sim_alloc(&f.g, 256), 256, true};
	memset(sim_gpa(&f.g, b.gpa), 0x11, 256);
	assert_true(sim_add(&f.g, &b, 1, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);

	/* Move guest RAM to a new host mapping (same GPAs). */
	copy = malloc(f.g.ram[0].size);
	assert_non_null(copy);
	memcpy(copy, f.g.ram[0].hva, f.g.ram[0].size);
	mr = (struct vuiso_mem_region){f.g.ram[0].gpa, f.g.ram[0].size, copy};
	assert_int_equal(vuiso_dev_set_guest_memory(f.dev, &mr, 1), 0);

	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 1);
	memset(segs[0].ptr, 0x77, 256);
	sim_backend_push(&f.b, head, 256);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	assert_int_equal(copy[b.gpa - f.g.ram[0].gpa], 0x77);
	assert_int_equal(copy[b.gpa - f.g.ram[0].gpa + 255], 0x77);
	/* The old mapping was not written. */
	assert_int_equal(((uint8_t *)sim_gpa(&f.g, b.gpa))[0], 0x11);
	assert_int_equal(f.errors, 0);
	fx_fini(&f);
	free(copy);
}

/* Dirty logging reports every byte the library writes to guest RAM. */
static void test_dirty_log_reports_guest_writes(const struct layouts *L)
{
	struct fx_opts o = {0};
	struct sim_seg segs[64];
	struct sim_buf b[2];
	uint16_t head;
	struct fx f;

	assert_int_equal(fx_init(&f, lay(&o, L)), 0);
	vuiso_dev_set_logging(f.dev, 1);
	b[0] = (struct sim_buf){sim_alloc(&f.g, 64), 64, false};
	b[1] = (struct sim_buf){sim_alloc(&f.g, 1000), 1000, true};
	assert_true(sim_add(&f.g, b, 2, false) >= 0);
	sim_kick_needed(&f.g);
	assert_int_equal(vuiso_vq_kick_from_guest(f.vq), 0);
	assert_int_equal(sim_backend_pop(&f.b, &head, segs), 2);
	sim_backend_push(&f.b, head, 700);
	sim_backend_flush(&f.b);
	assert_int_equal(vuiso_vq_call_from_backend(f.vq), 0);
	/* 700 payload bytes + one used element (8) + used->idx (2), plus
	 * the used->flags writes of notification suppression. */
	assert_true(f.logged >= 710);
	vuiso_dev_set_logging(f.dev, 0);
	fx_fini(&f);
}

FOUR_LAYOUTS(test_roundtrip_every_byte_plain)
FOUR_LAYOUTS(test_roundtrip_every_byte_event_idx_both)
FOUR_LAYOUTS(test_roundtrip_every_byte_event_idx_guest_only)
FOUR_LAYOUTS(test_roundtrip_every_byte_event_idx_backend_only)
FOUR_LAYOUTS(test_roundtrip_every_byte_indirect)
FOUR_LAYOUTS(test_full_pool_backpressure_loses_nothing)
FOUR_LAYOUTS(test_request_larger_than_pool_breaks_queue_e2big)
FOUR_LAYOUTS(test_whole_pool_request_fits_after_fragmenting_traffic)
FOUR_LAYOUTS(test_budget_bounds_work_per_call)
FOUR_LAYOUTS(test_budget_leftover_resumes_from_backend_call)
FOUR_LAYOUTS(test_event_idx_batches_notifications)
FOUR_LAYOUTS(test_stop_drains_and_returns_guest_indices)
FOUR_LAYOUTS(test_stop_times_out_when_backend_never_completes)
FOUR_LAYOUTS(test_reset_drops_inflight_and_restarts_clean)
FOUR_LAYOUTS(test_memory_map_replaced_in_flight_uses_new_mapping)
FOUR_LAYOUTS(test_dirty_log_reports_guest_writes)
FOUR_LAYOUTS(test_restart_after_backpressured_stop_takes_waiting_chain)
FOUR_LAYOUTS(test_two_step_stop_gives_untaken_requests_back)
FOUR_LAYOUTS(test_two_step_stop_bad_backend_base_breaks_queue)
FOUR_LAYOUTS(test_backend_restart_replays_unfinished_requests)
FOUR_LAYOUTS(test_backend_restart_then_completes_twice_breaks_queue)
FOUR_LAYOUTS(test_detached_stop_keeps_requests)
FOUR_LAYOUTS(test_dirty_log_full_buffer_ends_call_early_nothing_lost)
FOUR_LAYOUTS(test_reset_scrubs_pool_nothing_crosses_it)
FOUR_LAYOUTS(test_clear_writable_hides_earlier_request_bytes)
FOUR_LAYOUTS(test_stop_restart_after_wrap_keeps_indices)
FOUR_LAYOUTS(test_no_interrupt_flag_suppresses_guest_notify)

int main(void)
{
	const struct CMUnitTest tests[] = {
		FOUR_TESTS(test_roundtrip_every_byte_plain),
		FOUR_TESTS(test_roundtrip_every_byte_event_idx_both),
		FOUR_TESTS(test_roundtrip_every_byte_event_idx_guest_only),
		FOUR_TESTS(test_roundtrip_every_byte_event_idx_backend_only),
		FOUR_TESTS(test_roundtrip_every_byte_indirect),
		FOUR_TESTS(test_full_pool_backpressure_loses_nothing),
		FOUR_TESTS(test_request_larger_than_pool_breaks_queue_e2big),
		FOUR_TESTS(
			test_whole_pool_request_fits_after_fragmenting_traffic),
		FOUR_TESTS(test_budget_bounds_work_per_call),
		FOUR_TESTS(test_budget_leftover_resumes_from_backend_call),
		FOUR_TESTS(test_event_idx_batches_notifications),
		FOUR_TESTS(test_stop_drains_and_returns_guest_indices),
		FOUR_TESTS(test_stop_restart_after_wrap_keeps_indices),
		FOUR_TESTS(
			test_restart_after_backpressured_stop_takes_waiting_chain),
		FOUR_TESTS(test_backend_restart_replays_unfinished_requests),
		FOUR_TESTS(
			test_backend_restart_then_completes_twice_breaks_queue),
		FOUR_TESTS(test_detached_stop_keeps_requests),
		FOUR_TESTS(test_two_step_stop_gives_untaken_requests_back),
		FOUR_TESTS(test_two_step_stop_bad_backend_base_breaks_queue),
		FOUR_TESTS(test_stop_times_out_when_backend_never_completes),
		FOUR_TESTS(test_reset_drops_inflight_and_restarts_clean),
		FOUR_TESTS(test_reset_scrubs_pool_nothing_crosses_it),
		FOUR_TESTS(test_clear_writable_hides_earlier_request_bytes),
		FOUR_TESTS(test_memory_map_replaced_in_flight_uses_new_mapping),
		FOUR_TESTS(test_dirty_log_reports_guest_writes),
		FOUR_TESTS(
			test_dirty_log_full_buffer_ends_call_early_nothing_lost),
		FOUR_TESTS(test_no_interrupt_flag_suppresses_guest_notify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
