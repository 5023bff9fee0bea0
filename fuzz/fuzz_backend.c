// SPDX-License-Identifier: MIT
/*
 * Back-end-side harness: a well-behaved simulated guest makes requests; a
 * hostile back-end writes arbitrary used entries, ids, lengths and indices,
 * and scribbles over the shadow descriptor table, the shadow avail ring and
 * the bounce pool (all of which it can write in a real deployment).
 *
 * Input: the fixture byte and the layout byte (fz_opts: bit 0 of the
 * layout byte makes the guest ring packed, bit 1 the shadow ring), then a
 * stream of operations:
 *   0 ADD    n:u8 {len:u16 w:u8}*  the guest makes a request and kicks
 *   1 USED   sel:u8 id:u32 len:u32 write a used entry (sel picks a real
 *                                   in-flight id or the raw one; packed:
 *                                   the next used descriptor, 16-bit id)
 *   2 PUB                           publish used->idx (packed: no-op but
 *                                   the call decision)
 *   3 JUMP   delta:u16              publish used->idx + delta (packed:
 *                                   skip delta % (2 * size) positions)
 *   4 CALL                          the back-end calls the VMM
 *   5 DESC   i:u8 16 bytes          scribble a shadow descriptor
 *   6 RING   off:u16 n:u8 bytes     scribble the shadow ring area
 *   7 POOL   off:u32 n:u8 bytes     scribble anywhere in the region
 *   8 STOP                          stop, polling once; restart if clean
 *   9 RESET                         device reset and restart
 *  10 KICK                          guest kick without a new request
 *  11 GOOD   sel:u8 len:u32         complete one in-flight request properly
 * With a packed shadow ring only (op modulo 14, else 12):
 *  12 PUSED  rel:u8 id:u16 len:u32 flags:u16
 *                                   a used descriptor at the library's
 *                                   next used position + rel % 128; flags
 *                                   raw when rel bit 7 is set, else with
 *                                   the USED/AVAIL bits of that lap
 *  13 EVENT  off_wrap:u16 flags:u16 the device event suppression area
 *
 * A reference model of the engine's used-side validation predicts, for
 * every used entry the library reads, either a completion (guest head and
 * min(len, writable)) or the exact violation; the guest checks what it
 * reaps against that, and that no byte of guest RAM outside the first
 * `len` writable bytes of completed requests ever changes, nor any byte of
 * the guest rings the library may not write (fz_ring_check).  For a packed
 * shadow ring the model reads the used descriptor at the library's next
 * used position before every call, as the library will, and follows its
 * skip of the chain's descriptor count.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"

#define MAXSEG 4
#define MAXQ 128

enum { SH_NEVER, SH_INFLIGHT, SH_DONE };

struct greq {
	bool live; /* made available, not completed */
	unsigned n;
	struct sim_buf buf[MAXSEG];
	uint32_t writable;
};

struct expect {
	uint16_t head;
	uint32_t len;
};

struct bctx {
	struct fx f;
	struct greq req[MAXQ];         /* by guest head */
	uint16_t fifo[65536];          /* guest heads in avail order */
	uint32_t fifo_head, fifo_tail; /* next to be forwarded, next free */
	uint8_t sh_state[MAXQ];        /* engine's view of each shadow id */
	uint16_t sh_guest[MAXQ]; /* guest head of an in-flight shadow id */
	uint64_t sh_avail_seen;  /* shadow chains the model learnt */
	uint16_t lib_last_used;  /* used entries the library consumed */
	uint32_t inflight;
	struct expect exp[1024]; /* completions the guest must reap next */
	unsigned nexp, exp_pos;
	const char *violation; /* predicted violation, or NULL */
	/* packed shadow ring: the library's positions, descriptors per id */
	uint16_t sa_pos, su_pos;
	bool sa_wrap, su_wrap;
	uint16_t sh_ndesc[MAXQ];
	uint32_t budget;           /* chains per library call */
	struct fz_heap heap;       /* expected image of the guest heap */
	struct fz_ring_copy rings; /* guest desc table and avail ring */
};

#define ld16 fz_ld16
#define ld32 fz_ld32

/* Learn one packed shadow chain of @n descriptors at the library's avail
 * position: well formed, one id, not in flight. */
static uint16_t learn_packed(struct bctx *c, unsigned n)
{
	struct fx *f = &c->f;
	const uint8_t *head = f->b.desc + 16ULL * c->sa_pos;
	uint16_t id = ld16(head + 12);

	FZ_CHECK(id < f->o.qsize, "shadow id %u out of range", id);
	for (unsigned k = 0; k < n; k++) {
		const uint8_t *d = f->b.desc + 16ULL * c->sa_pos;
		uint16_t flags = ld16(d + 14);

		FZ_CHECK(
			fz_pis_avail(flags, c->sa_wrap) &&
				!(flags & FZ_F_INDIRECT) &&
				!!(flags & FZ_F_NEXT) == (k + 1 < n) &&
				ld16(d + 12) == id,
			"shadow chain of id %u: descriptor %u flags 0x%x id %u",
			id, k, flags, ld16(d + 12));
		fz_pstep(&c->sa_pos, &c->sa_wrap, 1, f->o.qsize);
	}
	c->sh_ndesc[id] = (uint16_t)n;
	return id;
}

/* Learn the shadow chains the library just published (read before the
 * back-end can scribble the shadow avail ring). */
static void learn_shadow(struct bctx *c)
{
	struct fx *f = &c->f;
	struct vuiso_vq_stats st;

	/* Not avail->idx: the back-end may have scribbled it. */
	vuiso_vq_get_stats(f->vq, &st);
	while (c->sh_avail_seen != st.requests) {
		uint16_t id;

		FZ_CHECK(c->fifo_head != c->fifo_tail,
			 "a shadow chain no guest request made");
		if (f->o.backend_packed)
			id = learn_packed(
				c, c->req[c->fifo[c->fifo_head & 0xffff]].n);
		else
			id = ld16(f->b.avail + 4 +
				  2 * (c->sh_avail_seen & (f->o.qsize - 1)));

		FZ_CHECK(id < f->o.qsize, "shadow head %u out of range", id);
		FZ_CHECK(c->sh_state[id] != SH_INFLIGHT,
			 "shadow head %u published twice", id);
		c->sh_state[id] = SH_INFLIGHT;
		c->sh_guest[id] = c->fifo[c->fifo_head++ & 0xffff];
		c->inflight++;
		c->sh_avail_seen++;
	}
}

/*
 * Predict the library's handling of one used element naming shadow id @id
 * with @len bytes written, the same for both shadow layouts: a violation
 * (returns false), or a completion queued in exp[] (returns true).
 */
static bool predict_completion(struct bctx *c, uint32_t id, uint32_t len)
{
	struct greq *q;

	if (id >= c->f.o.qsize) {
		c->violation = "out of range";
		return false;
	}
	if (c->sh_state[id] != SH_INFLIGHT) {
		c->violation = c->sh_state[id] == SH_DONE
				       ? "completed twice"
				       : "was never made available";
		return false;
	}
	c->sh_state[id] = SH_DONE;
	c->inflight--;
	q = &c->req[c->sh_guest[id]];
	FZ_CHECK(c->nexp < 1024, "too many expectations");
	c->exp[c->nexp].head = c->sh_guest[id];
	c->exp[c->nexp].len = len < q->writable ? len : q->writable;
	c->nexp++;
	return true;
}

/*
 * Predict what the library will do with the used entries published now:
 * completions are queued in exp[], the first violation in c->violation.
 * Every caller loops until the library has taken all published entries.
 */
static void predict_used(struct bctx *c)
{
	struct fx *f = &c->f;
	uint16_t idx = ld16(f->b.used + 2);
	uint16_t n = (uint16_t)(idx - c->lib_last_used);

	if (c->violation)
		return;
	if (n > c->inflight) {
		c->violation = "used index jumped";
		return;
	}
	for (; n; n--) {
		const uint8_t *e = f->b.used + 4 +
				   8 * (c->lib_last_used & (f->o.qsize - 1));

		if (!predict_completion(c, ld32(e), ld32(e + 4)))
			return;
		c->lib_last_used++;
	}
}

/*
 * Packed shadow ring: predict one library call, which takes used
 * descriptors at its position while their flags say used for its wrap
 * counter and the budget lasts.  Returns 1 when the budget ran out with a
 * used descriptor left (the call returns 1), else 0.  Prediction is per
 * call: between calls the library may publish new chains over positions
 * the back-end wrote.
 */
static int predict_packed_call(struct bctx *c)
{
	struct fx *f = &c->f;

	if (c->violation)
		return 0;
	for (uint32_t k = 0;; k++) {
		const uint8_t *d = f->b.desc + 16ULL * c->su_pos;
		uint16_t id;

		if (!fz_pis_used(ld16(d + 14), c->su_wrap))
			return 0;
		if (k == c->budget)
			return 1;
		id = ld16(d + 12);
		if (!predict_completion(c, id, ld32(d + 8)))
			return 0;
		fz_pstep(&c->su_pos, &c->su_wrap, c->sh_ndesc[id], f->o.qsize);
	}
}

/* Packed shadow ring: predict vuiso_vq_stop(), which calls while requests
 * are in flight and the last call ran out of budget (no new chains). */
static void predict_packed_stop(struct bctx *c)
{
	while (c->inflight && !c->violation)
		if (!predict_packed_call(c))
			break;
}

/* The guest reaps and checks every completion against the prediction. */
static void guest_reap(struct bctx *c)
{
	struct fx *f = &c->f;
	uint32_t id, len;

	for (;;) {
		struct expect *x;
		struct greq *q;
		uint32_t left;
		/* Packed: the used descriptor the guest reads now. */
		uint16_t pos = f->g.vq.packed.last_used;

		if (!sim_reap(&f->g, &id, &len))
			break;
		if (f->g.packed)
			fz_ring_allow(&c->rings, pos);

		FZ_CHECK(c->exp_pos < c->nexp,
			 "guest reaped head %u len %u that no valid used entry "
			 "completed",
			 id, len);
		x = &c->exp[c->exp_pos++];
		FZ_CHECK(id == x->head && len == x->len,
			 "guest reaped head %u len %u, expected head %u len %u",
			 id, len, x->head, x->len);
		q = &c->req[id];
		FZ_CHECK(q->live, "head %u completed twice to the guest", id);
		q->live = false;
		/* The first len writable bytes may hold anything now. */
		left = len;
		for (unsigned i = 0; i < q->n && left; i++) {
			uint32_t k;

			if (!q->buf[i].write)
				continue;
			k = left < q->buf[i].len ? left : q->buf[i].len;
			fz_heap_span(&c->heap, &c->f.g, q->buf[i].gpa, k, true);
			left -= k;
		}
	}
	/* Packed: the library wrote nothing but the used descriptors the
	 * guest just reaped (before the guest re-arms its event area). */
	if (f->g.packed)
		fz_ring_check(&c->rings, &f->g);
	sim_guest_arm(&f->g);
	if (c->exp_pos == c->nexp)
		c->exp_pos = c->nexp = 0;
}

/* After every library call: compare everything with the model. */
static void after_call(struct bctx *c)
{
	struct fx *f = &c->f;

	if (!f->g.packed)
		fz_ring_check(&c->rings, &c->f.g);
	if (c->violation) {
		FZ_CHECK(f->errors == 1, "predicted '%s', got %u errors",
			 c->violation, f->errors);
		FZ_CHECK(strncmp(f->last_msg, "back-end: ", 10) == 0 &&
				 strstr(f->last_msg, c->violation),
			 "predicted '%s', got '%s'", c->violation, f->last_msg);
	} else {
		FZ_CHECK(f->errors == 0, "unexpected error '%s'", f->last_msg);
	}
	fz_check_error_state(f, "back-end: ");
	guest_reap(c);
	FZ_CHECK(c->exp_pos == 0, "%u predicted completions not reaped",
		 c->nexp - c->exp_pos);
	if (!c->violation)
		learn_shadow(c);
	fz_heap_check(&c->heap, &c->f.g, 0, 0);
}

static void call(struct bctx *c)
{
	struct fx *f = &c->f;
	int r;

	if (f->o.backend_packed) {
		do {
			fz_ring_snapshot(&c->rings, &c->f.g);
			predict_packed_call(c);
			r = vuiso_vq_call_from_backend(f->vq);
			FZ_CHECK(r == (c->violation ? -EIO : 0) ||
					 (r == 1 && !c->violation) ||
					 r == -EINVAL,
				 "call returned %d", r);
			after_call(c);
		} while (r == 1);
		return;
	}
	fz_ring_snapshot(&c->rings, &c->f.g);
	predict_used(c);
	do {
		r = vuiso_vq_call_from_backend(f->vq);
	} while (r == 1);
	FZ_CHECK(r == (c->violation ? -EIO : 0) || r == -EINVAL,
		 "call returned %d", r);
	after_call(c);
}

static void kick(struct bctx *c)
{
	int r;

	fz_ring_snapshot(&c->rings, &c->f.g);
	r = vuiso_vq_kick_from_guest(c->f.vq);
	FZ_CHECK(r == 0 || r == 1 || r == -EINVAL, "kick returned %d", r);
	after_call(c);
}

static void model_restart(struct bctx *c)
{
	memset(c->sh_state, 0, sizeof(c->sh_state));
	memset(c->sh_ndesc, 0, sizeof(c->sh_ndesc));
	c->sa_pos = c->su_pos = 0;
	c->sa_wrap = c->su_wrap = true;
	c->sh_avail_seen = 0;
	c->lib_last_used = 0;
	c->inflight = 0;
	c->violation = NULL;
}

static void add(struct bctx *c, struct fz_in *in)
{
	struct fx *f = &c->f;
	struct greq q = {.live = true};
	/* VIRTIO: no chain, indirect or not, longer than the queue. */
	unsigned n = 1 +
		     fz_u8(in) % (MAXSEG < f->o.qsize ? MAXSEG : f->o.qsize);
	bool live = false;
	int head;

	for (unsigned h = 0; h < f->o.qsize; h++)
		live |= c->req[h].live;
	if (!live && f->g.heap_end - f->g.heap_next < (16u << 10))
		sim_heap_reset(&f->g);
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = 1 + fz_u16(in) % 2048;
		bool w = fz_u8(in) & 1;
		uint64_t gpa = sim_alloc(&f->g, len);

		if (!gpa)
			return;
		/* Readable before writable, as a driver must. */
		if (!w && q.n && q.buf[q.n - 1].write)
			w = true;
		q.buf[q.n++] = (struct sim_buf){gpa, len, w};
		if (w)
			q.writable += len;
	}
	head = sim_add(&f->g, q.buf, q.n, f->o.indirect && (n & 1));
	if (head < 0)
		return;
	FZ_CHECK(!c->req[head].live, "guest reused a live head");
	c->req[head] = q;
	c->fifo[c->fifo_tail++ & 0xffff] = (uint16_t)head;
	sim_kick_needed(&f->g);
	kick(c);
}

static void used(struct bctx *c, uint32_t id, uint32_t len)
{
	struct fx *f = &c->f;

	/* Packed: the back-end never popped, so tell it how many positions
	 * an in-flight chain takes (it skips 1 for any other id). */
	if (f->o.backend_packed && id < f->o.qsize &&
	    c->sh_state[id] == SH_INFLIGHT)
		f->b.ndesc[id] = c->sh_ndesc[id];
	sim_backend_push(&f->b, id, len);
}

/* Packed shadow ring: a used descriptor at any position, any flags. */
static void packed_used_raw(struct bctx *c, struct fz_in *in)
{
	struct fx *f = &c->f;
	uint8_t rel = fz_u8(in);
	uint16_t id = fz_u16(in), pos = c->su_pos, flags;
	uint32_t len = fz_u32(in);
	bool w = c->su_wrap;
	uint8_t *d;

	flags = fz_u16(in);
	fz_pstep(&pos, &w, (rel & 0x7f) % f->o.qsize, f->o.qsize);
	if (!(rel & 0x80)) {
		flags &= (uint16_t) ~(FZ_P_AVAIL | FZ_P_USED);
		flags |= fz_pused_bits(w);
	}
	d = f->b.desc + 16ULL * pos;
	len = htole32(len);
	memcpy(d + 8, &len, 4);
	id = htole16(id);
	memcpy(d + 12, &id, 2);
	fz_st16_release(d + 14, flags);
}

static uint32_t pick_inflight(struct bctx *c, uint8_t sel)
{
	unsigned k = 0, want;

	if (!c->inflight)
		return sel;
	want = sel % c->inflight;
	for (uint32_t id = 0; id < c->f.o.qsize; id++)
		if (c->sh_state[id] == SH_INFLIGHT && k++ == want)
			return id;
	return sel;
}

static void stop(struct bctx *c)
{
	struct fx *f = &c->f;
	struct vuiso_vq_state st;
	int r, want;

	fz_ring_snapshot(&c->rings, &c->f.g);
	if (c->inflight && f->o.backend_packed)
		predict_packed_stop(c);
	else if (c->inflight)
		predict_used(c);
	r = vuiso_vq_stop(f->vq, 0, &st);
	want = c->violation ? -EIO : c->inflight ? -ETIMEDOUT : 0;
	FZ_CHECK(r == want, "stop returned %d, expected %d", r, want);
	after_call(c);
	FZ_CHECK(st.inflight == c->inflight || c->violation,
		 "stop says %u in flight, model %u", st.inflight, c->inflight);
	if (r == 0) {
		FZ_CHECK(fz_restart(f, st.avail_idx, st.used_idx) == 0,
			 "restart");
		model_restart(c);
		/* The start took what the guest made available while the
		 * queue was stopped: learn it as after any call. */
		fz_ring_snapshot(&c->rings, &c->f.g);
		after_call(c);
	}
}

static void reset(struct bctx *c)
{
	struct fx *f = &c->f;

	vuiso_vq_reset(f->vq);
	fz_guest_ring_reset(&f->g);
	memset(c->req, 0, sizeof(c->req));
	c->fifo_head = c->fifo_tail = 0;
	c->nexp = c->exp_pos = 0;
	f->errors = 0;
	model_restart(c);
	FZ_CHECK(fz_restart_fresh(f) == 0, "restart");
	fz_ring_snapshot(&c->rings, &c->f.g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	struct bctx *c = calloc(1, sizeof(*c));
	struct fx_opts o;
	struct fx *f;
	uint8_t hdr;

	FZ_CHECK(c != NULL, "calloc");
	f = &c->f;
	hdr = fz_u8(&in);
	fz_opts(hdr, fz_u8(&in), &o);
	fz_fx_init(f, &o);
	FZ_CHECK(!fz_heap_init(&c->heap, &f->g) &&
			 !fz_ring_copy_init(&c->rings, &c->f.g),
		 "malloc");
	model_restart(c);
	c->budget = o.budget ? o.budget : o.qsize;

	for (unsigned steps = 0; fz_more(&in) && steps < 512; steps++) {
		uint8_t op = fz_u8(&in) % (o.backend_packed ? 14 : 12);

		if (f->errors && op != 9)
			continue;
		switch (op) {
		case 0:
			add(c, &in);
			break;
		case 1: {
			uint8_t sel = fz_u8(&in);
			uint32_t id = fz_u32(&in), len = fz_u32(&in);

			if (sel & 1)
				id = pick_inflight(c, (uint8_t)id);
			else if (sel & 2)
				id %= 2 * o.qsize;
			if (sel & 4)
				len &= 0x3fff;
			used(c, id, len);
			break;
		}
		case 2:
			sim_backend_flush(&f->b);
			break;
		case 3:
			if (o.backend_packed)
				fz_pstep(&f->b.used_idx, &f->b.used_wrap,
					 fz_u16(&in), o.qsize);
			else
				f->b.used_idx =
					(uint16_t)(f->b.used_idx + fz_u16(&in));
			sim_backend_flush(&f->b);
			break;
		case 4:
			call(c);
			break;
		case 5: {
			uint8_t *d = f->b.desc + 16 * (fz_u8(&in) % o.qsize);

			for (int i = 0; i < 16; i++)
				d[i] = fz_u8(&in);
			break;
		}
		case 6: {
			/* Packed: descriptors and both event areas. */
			uint64_t span =
				(uint64_t)(f->b.used - f->b.desc) +
				(o.backend_packed ? 4 : 6 + 8ULL * o.qsize);
			uint64_t off = fz_u16(&in) % span;
			unsigned n = fz_u8(&in) % 17;

			for (unsigned i = 0; i < n && off + i < span; i++)
				f->b.desc[off + i] = fz_u8(&in);
			break;
		}
		case 7: {
			uint64_t off = fz_u32(&in) % f->b.map_size;
			unsigned n = fz_u8(&in) % 65;

			for (unsigned i = 0; i < n && off + i < f->b.map_size;
			     i++)
				f->b.map[off + i] = fz_u8(&in);
			break;
		}
		case 8:
			stop(c);
			break;
		case 9:
			reset(c);
			break;
		case 10:
			kick(c);
			break;
		case 11: {
			uint8_t sel = fz_u8(&in);
			uint32_t len = fz_u32(&in);

			if (!c->inflight)
				break;
			used(c, pick_inflight(c, sel), len);
			sim_backend_flush(&f->b);
			call(c);
			break;
		}
		case 12:
			packed_used_raw(c, &in);
			break;
		case 13:
			fz_st16_release(f->b.used, fz_u16(&in));
			fz_st16_release(f->b.used + 2, fz_u16(&in));
			break;
		}
	}
	fz_check_error_state(f, "back-end: ");
	fz_heap_check(&c->heap, &c->f.g, 0, 0);
	fx_fini(f);
	fz_heap_free(&c->heap);
	fz_ring_copy_free(&c->rings);
	free(c);
	return 0;
}
