// SPDX-License-Identifier: MIT
/*
 * Model-based harness: the input is a sequence of guest and back-end
 * actions, and a reference model of the whole queue checks the library
 * after every one of them.
 *
 * Input: the fixture byte and the layout byte (fz_opts: bit 0 of the
 * layout byte makes the guest ring packed, bit 1 the shadow ring; the
 * actions are the same for all four pairs), then a stream of actions:
 *   0 ADD      n:u8 {len:u16 w:u8}* kick:u8  guest makes a request
 *   1 REWRITE  sel:u8 k:u8 addr:u64 len:u32 flags:u16
 *                                     guest rewrites a descriptor of a
 *                                     request it already made available
 *   2 COMPLETE sel:u8 lensel:u8 [len:u32]  back-end completes one request
 *   3 BOGUS    id:u8                  back-end writes a used entry for an id
 *                                     it does not own (completed twice or
 *                                     never made available, or legit)
 *   4 CALL                            back-end publishes and calls
 *   5 KICK                            guest kick
 *   6 MAP      how:u8                 replace the guest memory map: same
 *                                     map, move a range to new host memory,
 *                                     unplug range 1, plug everything back,
 *                                     unplug range 0 (the rings)
 *   7 STOP                            stop (poll once), restart when clean
 *   8 RESET                           device reset, restart
 *   9 LOG                             toggle dirty logging
 *
 * The model checks, after every library call: each request completes at
 * most once, to the right guest head, with len == min(used len, writable),
 * and exactly those first len writable bytes of it hold the back-end's
 * answer; no other byte of guest RAM changes (the heap is compared whole;
 * unplugged or moved-away host memory is PROT_NONE, so a stray access
 * faults); the guest's descriptor table and avail ring are never written;
 * the shadow chains the back-end sees are well formed, in guest order, and
 * carry exactly the guest's readable bytes; while dirty logging is on, at
 * least every byte written to guest RAM is logged; each violation is reported once
 * with the predicted message.  At the end the queue is drained (every
 * request completes exactly once), reset, and must then take a full ring
 * of requests and a request as large as the whole bounce pool: nothing
 * leaked.
 *
 * Packed rings: the guest's rings are checked as fz_ring_check() says (only
 * the used descriptors the guest reaped were written, never an address);
 * stop's avail_idx and used_idx are compared in the packed encoding
 * (position | wrap << 15) with the model's count of the guest descriptors
 * forwarded; a packed shadow ring is predicted one call at a time, reading
 * the used descriptor at the library's position as the library will and
 * skipping the chain's descriptor count.  A rewrite after the pop keeps the
 * AVAIL/USED bits of a packed ring descriptor, so that the guest's own
 * driver does not take it for a used one.  While dirty logging is on the
 * library may end a call early (so that its buffer of logged ranges cannot
 * fill): the model undoes the predicted completions that call did not take,
 * and accepts either outcome for a used descriptor after the last
 * completion of a stop (see predict_packed_stop()).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "fuzz_common.h"

#define MAXSEG 4
#define MAXQ 128
#define MAXMOVES 8

enum { SH_NEVER, SH_INFLIGHT, SH_DONE };

struct mreq {
	bool live;   /* made available, not completed/dropped */
	bool popped; /* forwarded by the library */
	unsigned n;
	struct sim_buf buf[MAXSEG];
	uint32_t writable;
	uint16_t ndesc; /* guest ring descriptors (packed: the skip) */
};

struct bseg {         /* what the back-end popped */
	uint32_t seq; /* answer stream */
	uint32_t writable;
	bool owned; /* popped, not yet completed by it */
};

struct expect {
	uint16_t head;
	uint32_t len;
	uint32_t seq;
	bool fault; /* this completion faults the queue */
};

struct mctx {
	struct fx f;
	struct mreq req[MAXQ]; /* by guest head */
	uint16_t fifo[65536];  /* guest heads in avail order */
	uint32_t fifo_head, fifo_tail;
	uint8_t sh_state[MAXQ]; /* engine view of each shadow id */
	uint16_t sh_guest[MAXQ];
	struct bseg bk[MAXQ]; /* back-end view of each shadow id */
	uint64_t sh_seen;     /* shadow chains learnt since start */
	uint16_t lib_last_used;
	uint32_t inflight;
	uint32_t seq;
	struct expect exp[1024];
	unsigned nexp;
	const char *violation; /* predicted (or explained) violation */
	/* packed rings: the library's guest avail position, its shadow
	 * used position, and the descriptors per shadow id */
	uint16_t ga_pos, su_pos;
	bool ga_wrap, su_wrap;
	uint16_t sh_ndesc[MAXQ];
	uint32_t budget; /* chains per library call */
	/* packed shadow: the completions predicted for the current call,
	 * with the position before each, so that a call that stopped early
	 * can be undone to what it took */
	struct {
		uint16_t pos, id;
		bool wrap;
	} pstep[MAXQ + 1];
	unsigned npstep;
	bool pviol; /* the current call's prediction set c->violation */
	bool broken;
	bool stopping;            /* stop timed out */
	bool unplugged;           /* range 1 is out of the map */
	bool rings_gone;          /* range 0 (the rings) is out of the map */
	bool logging;             /* dirty logging on */
	uint64_t must_log;        /* guest bytes written since last check */
	uint8_t *moved[MAXMOVES]; /* old host maps, PROT_NONE */
	unsigned nmoved;
	struct fz_heap heap;       /* expected image of the guest heap */
	struct fz_ring_copy rings; /* guest desc table and avail ring */
	struct sim_seg *segs;
};

/*
 * The back-end's answer to request @seq: a stream that differs from one
 * request to the next, so a completion copied to the wrong request shows.
 */
#define ANSWER_MAX ((64u << 10) + 256)
static const uint8_t *answer(uint32_t seq)
{
	static uint8_t *pat;

	if (!pat) {
		pat = malloc(ANSWER_MAX + 251);
		FZ_CHECK(pat != NULL, "malloc");
		for (uint32_t i = 0; i < ANSWER_MAX + 251; i++)
			pat[i] = (uint8_t)(i * 7u + (i >> 8) + 1);
	}
	return pat + seq % 251;
}

#define ld16 fz_ld16
#define ld32 fz_ld32

static bool in_range1(struct mctx *c, uint64_t gpa, uint64_t len)
{
	const struct sim_ram *r = &c->f.g.ram[1];

	return len && gpa < r->gpa + r->size && gpa + len > r->gpa;
}

/* ---- guest RAM image ---- */

/* ---- the back-end ---- */

/* Pop every shadow chain the library published since the last look. */
static void backend_pop(struct mctx *c)
{
	struct fx *f = &c->f;
	struct vuiso_vq_stats st;
	uint16_t id;
	int n;

	vuiso_vq_get_stats(f->vq, &st);
	/* Packed: the back-end's per-id count of a chain the library took
	 * as completed (from a used descriptor the back-end wrote for an
	 * earlier chain of that id) is stale. */
	if (f->o.backend_packed)
		for (uint16_t i = 0; i < f->o.qsize; i++)
			if (c->sh_state[i] != SH_INFLIGHT)
				f->b.ndesc[i] = 0;
	while ((n = sim_backend_pop(&f->b, &id, c->segs)) > 0) {
		uint16_t head;
		struct mreq *q;
		uint32_t k = 0;

		FZ_CHECK(c->sh_seen < st.requests,
			 "a shadow chain the library did not count");
		FZ_CHECK(c->fifo_head != c->fifo_tail,
			 "a shadow chain no guest request made");
		FZ_CHECK(c->sh_state[id] != SH_INFLIGHT,
			 "shadow id %u reused while in flight", id);
		head = c->fifo[c->fifo_head++ & 0xffff];
		q = &c->req[head];
		FZ_CHECK(q->live && !q->popped, "head %u forwarded twice",
			 head);
		FZ_CHECK((unsigned)n == q->n,
			 "head %u: %d shadow buffers for %u guest buffers",
			 head, n, q->n);
		for (unsigned i = 0; i < q->n; i++) {
			FZ_CHECK(c->segs[i].len == q->buf[i].len &&
					 c->segs[i].write == q->buf[i].write,
				 "head %u buffer %u: shadow len %u write %d, "
				 "guest "
				 "len %u write %d",
				 head, i, c->segs[i].len, c->segs[i].write,
				 q->buf[i].len, q->buf[i].write);
			FZ_CHECK(!in_range1(c, q->buf[i].gpa, q->buf[i].len) ||
					 !c->unplugged,
				 "head %u forwarded from unplugged memory",
				 head);
			if (!q->buf[i].write) {
				/* Exactly the guest's readable bytes. */
				const uint8_t *ref =
					c->heap.ref +
					(q->buf[i].gpa - c->heap.base);

				FZ_CHECK(memcmp(c->segs[i].ptr, ref,
						q->buf[i].len) == 0,
					 "head %u buffer %u: back-end sees "
					 "other "
					 "bytes than the guest wrote",
					 head, i);
				continue;
			}
			memcpy(c->segs[i].ptr, answer(c->seq) + k,
			       c->segs[i].len);
			k += c->segs[i].len;
		}
		q->popped = true;
		if (f->o.guest_packed)
			fz_pstep(&c->ga_pos, &c->ga_wrap, q->ndesc, f->o.qsize);
		c->sh_ndesc[id] = (uint16_t)n;
		c->sh_state[id] = SH_INFLIGHT;
		c->sh_guest[id] = head;
		c->bk[id] = (struct bseg){c->seq, q->writable, true};
		c->seq++;
		c->sh_seen++;
		c->inflight++;
	}
	FZ_CHECK(n == 0, "the library published a malformed shadow chain");
	FZ_CHECK(c->sh_seen == st.requests, "%llu chains counted, %llu seen",
		 (unsigned long long)st.requests,
		 (unsigned long long)c->sh_seen);
}

/* Does a completion of @q with @written bytes write unplugged memory? */
static bool completion_faults(struct mctx *c, const struct mreq *q,
			      uint32_t written)
{
	uint32_t left = written;

	if (!c->unplugged)
		return false;
	for (unsigned i = 0; i < q->n && left; i++) {
		uint32_t n;

		if (!q->buf[i].write)
			continue;
		n = left < q->buf[i].len ? left : q->buf[i].len;
		if (in_range1(c, q->buf[i].gpa, n))
			return true;
		left -= n;
	}
	return false;
}

/* Predict the library's reading of the used entries published now. */
static void predict_used(struct mctx *c)
{
	struct fx *f = &c->f;
	uint16_t n = (uint16_t)(ld16(f->b.used + 2) - c->lib_last_used);

	if (c->violation)
		return;
	if (n > c->inflight) {
		c->violation = "used index jumped";
		return;
	}
	for (; n; n--) {
		const uint8_t *e = f->b.used + 4 +
				   8 * (c->lib_last_used & (f->o.qsize - 1));
		uint32_t id = ld32(e), len = ld32(e + 4), written;
		struct mreq *q;

		if (id >= f->o.qsize) {
			c->violation = "out of range";
			return;
		}
		if (c->sh_state[id] != SH_INFLIGHT) {
			c->violation = c->sh_state[id] == SH_DONE
					       ? "completed twice"
					       : "was never made available";
			return;
		}
		q = &c->req[c->sh_guest[id]];
		written = len < q->writable ? len : q->writable;
		FZ_CHECK(c->nexp < 1024, "too many expectations");
		c->exp[c->nexp++] = (struct expect){c->sh_guest[id], written,
						    c->bk[id].seq, false};
		if (completion_faults(c, q, written)) {
			c->exp[c->nexp - 1].fault = true;
			c->violation = "left guest memory while in flight";
			return;
		}
		c->lib_last_used++;
		c->sh_state[id] = SH_DONE;
		c->inflight--;
	}
}

/*
 * Packed shadow ring: predict one library call, which takes used
 * descriptors at its position while their flags say used for its wrap
 * counter and the budget lasts.  Returns 1 when the budget ran out with a
 * used descriptor left, else 0.  Per call: between calls the library may
 * publish new chains over positions the back-end wrote.
 */
static int predict_packed_call(struct mctx *c)
{
	struct fx *f = &c->f;

	c->npstep = 0;
	c->pviol = false;
	if (c->violation)
		return 0;
	c->pviol = true; /* until it returns without one */
	for (uint32_t k = 0;; k++) {
		const uint8_t *d = f->b.desc + 16ULL * c->su_pos;
		uint32_t id, len, written;
		struct mreq *q;

		if (!fz_pis_used(ld16(d + 14), c->su_wrap))
			break;
		if (k == c->budget) {
			c->pviol = false;
			return 1;
		}
		id = ld16(d + 12);
		len = ld32(d + 8);
		if (id >= f->o.qsize) {
			c->violation = "out of range";
			return 0;
		}
		if (c->sh_state[id] != SH_INFLIGHT) {
			c->violation = c->sh_state[id] == SH_DONE
					       ? "completed twice"
					       : "was never made available";
			return 0;
		}
		c->pstep[c->npstep].pos = c->su_pos;
		c->pstep[c->npstep].wrap = c->su_wrap;
		c->pstep[c->npstep++].id = (uint16_t)id;
		q = &c->req[c->sh_guest[id]];
		written = len < q->writable ? len : q->writable;
		FZ_CHECK(c->nexp < 1024, "too many expectations");
		c->exp[c->nexp++] = (struct expect){c->sh_guest[id], written,
						    c->bk[id].seq, false};
		if (completion_faults(c, q, written)) {
			c->exp[c->nexp - 1].fault = true;
			c->violation = "left guest memory while in flight";
			c->npstep--; /* not taken: the queue breaks */
			return 0;
		}
		fz_pstep(&c->su_pos, &c->su_wrap, c->sh_ndesc[id], f->o.qsize);
		c->sh_state[id] = SH_DONE;
		c->inflight--;
	}
	c->pviol = false;
	return 0;
}

/*
 * While dirty logging is on, the library may end a call early (returning
 * 1, as if its budget ran out) so that its buffer of logged ranges cannot
 * fill: undo the predicted completions of that call beyond the @done it
 * took, and a violation it did not reach.
 */
static void packed_call_truncate(struct mctx *c, uint64_t done)
{
	if (done >= c->npstep && (!c->pviol || done > c->npstep))
		return;
	FZ_CHECK(c->logging, "a call took %llu of %u predicted completions",
		 (unsigned long long)done, c->npstep);
	if (c->pviol && c->nexp && c->exp[c->nexp - 1].fault)
		c->nexp--;
	while (c->npstep > done) {
		unsigned i = --c->npstep;

		c->sh_state[c->pstep[i].id] = SH_INFLIGHT;
		c->su_pos = c->pstep[i].pos;
		c->su_wrap = c->pstep[i].wrap;
		c->inflight++;
		c->nexp--;
	}
	if (c->pviol) {
		c->violation = NULL;
		c->pviol = false;
	}
}

/* The violation a used descriptor at the library's position is, with no
 * request in flight; NULL when there is none. */
static const char *packed_peek_violation(struct mctx *c)
{
	const uint8_t *d = c->f.b.desc + 16ULL * c->su_pos;
	uint16_t id = ld16(d + 12);

	if (!fz_pis_used(ld16(d + 14), c->su_wrap))
		return NULL;
	if (id >= c->f.o.qsize)
		return "out of range";
	return c->sh_state[id] == SH_DONE ? "completed twice"
					  : "was never made available";
}

/*
 * Packed shadow ring: vuiso_vq_stop() calls while requests are in flight
 * and the last call ran out of budget; it publishes no new chains.
 * While dirty logging is on, its calls may end early, and once the last
 * request completed it makes no further call: a used descriptor after the
 * last completion may or may not be read.  Returns that violation (stop
 * may report it or stop cleanly), else NULL.
 */
static const char *predict_packed_stop(struct mctx *c)
{
	const char *maybe = NULL;

	while (c->inflight && !c->violation)
		if (!predict_packed_call(c))
			break;
	if (!c->logging || c->inflight)
		return NULL;
	if (c->violation && c->pviol) {
		maybe = c->violation;
		c->violation = NULL;
	} else if (!c->violation) {
		maybe = packed_peek_violation(c);
	}
	return maybe;
}

/* ---- checking a library call ---- */

static void guest_reap(struct mctx *c)
{
	struct fx *f = &c->f;
	unsigned pos = 0;
	uint32_t id, len;

	for (;;) {
		struct expect *x;
		struct mreq *q;
		uint32_t left, k = 0;
		/* Packed: the used descriptor the guest reads now. */
		uint16_t upos = f->g.vq.packed.last_used;

		if (!sim_reap(&f->g, &id, &len))
			break;
		if (f->g.packed)
			fz_ring_allow(&c->rings, upos);

		FZ_CHECK(pos < c->nexp && !c->exp[pos].fault,
			 "guest reaped head %u len %u that no valid used entry "
			 "completed",
			 id, len);
		x = &c->exp[pos++];
		FZ_CHECK(id == x->head && len == x->len,
			 "guest reaped head %u len %u, expected head %u len %u",
			 id, len, x->head, x->len);
		q = &c->req[id];
		FZ_CHECK(q->live && q->popped, "head %u completed twice", id);
		q->live = false;
		c->must_log += len + 8ULL;
		left = len;
		for (unsigned i = 0; i < q->n && left; i++) {
			uint32_t m;

			if (!q->buf[i].write)
				continue;
			m = left < q->buf[i].len ? left : q->buf[i].len;
			memcpy(c->heap.ref + (q->buf[i].gpa - c->heap.base),
			       answer(x->seq) + k, m);
			k += m;
			left -= m;
		}
	}
	/* Packed: nothing written but the used descriptors just reaped
	 * (checked before the guest re-arms its event area). */
	if (f->g.packed)
		fz_ring_check(&c->rings, &f->g);
	sim_guest_arm(&f->g);
	if (pos < c->nexp) {
		/* Only the faulting completion may be left: its writable
		 * bytes in plugged memory are undefined now. */
		struct mreq *q = &c->req[c->exp[pos].head];

		FZ_CHECK(pos + 1 == c->nexp && c->exp[pos].fault,
			 "%u predicted completions not reaped", c->nexp - pos);
		for (unsigned i = 0; i < q->n; i++)
			if (q->buf[i].write)
				for (uint64_t j = 0; j < q->buf[i].len; j++)
					if (!in_range1(c, q->buf[i].gpa + j, 1))
						fz_heap_span(&c->heap, &c->f.g,
							     q->buf[i].gpa + j,
							     1, true);
	}
	c->nexp = 0;
}

/*
 * A guest violation while taking guest work can only come from a request
 * that touches unplugged memory: the one after those the library forwarded
 * in this call (they were counted but, the queue breaking, not published).
 */
static void explain_pop_violation(struct mctx *c)
{
	struct vuiso_vq_stats st;
	bool touches = false;
	uint32_t pos;
	uint16_t head;
	struct mreq *q;

	vuiso_vq_get_stats(c->f.vq, &st);
	pos = c->fifo_head + (uint32_t)(st.requests - c->sh_seen);
	FZ_CHECK(pos != c->fifo_tail, "violation '%s' without guest work",
		 c->f.last_msg);
	head = c->fifo[pos & 0xffff];
	q = &c->req[head];
	for (unsigned i = 0; i < q->n; i++)
		touches |= in_range1(c, q->buf[i].gpa, q->buf[i].len);
	if (c->f.g.chain_indirect[head])
		touches |=
			in_range1(c, c->f.g.chain_indirect[head], 16ULL * q->n);
	FZ_CHECK(c->unplugged && touches,
		 "violation '%s' but head %u is in guest memory", c->f.last_msg,
		 head);
	FZ_CHECK(strncmp(c->f.last_msg, "guest: ", 7) == 0 &&
			 strstr(c->f.last_msg, "is not in guest memory"),
		 "unexpected message '%s'", c->f.last_msg);
}

static void after_call(struct mctx *c)
{
	struct fx *f = &c->f;

	if (!f->g.packed)
		fz_ring_check(&c->rings, &c->f.g);
	if (f->errors && !c->violation)
		explain_pop_violation(c);
	if (c->violation) {
		FZ_CHECK(f->errors == 1, "predicted '%s', got %u errors",
			 c->violation, f->errors);
		FZ_CHECK(strstr(f->last_msg, c->violation) ||
				 strstr(f->last_msg, "is not in guest memory"),
			 "predicted '%s', got '%s'", c->violation, f->last_msg);
	}
	fz_check_error_state(f, NULL);
	c->must_log = 0;
	guest_reap(c);
	/* The fixture sums what log_write reported during the call; the
	 * guest reaped what it wrote (plus used->idx and flags, not counted). */
	if (c->logging)
		FZ_CHECK(f->logged >= c->must_log,
			 "logged %llu bytes, guest saw %llu written",
			 (unsigned long long)f->logged,
			 (unsigned long long)c->must_log);
	else
		FZ_CHECK(f->logged == 0, "logged while logging is off");
	f->logged = 0;
	if (f->errors) {
		c->broken = true;
		fz_check_broken_sticky(f);
	} else {
		backend_pop(c);
	}
	fz_heap_check(&c->heap, &c->f.g, c->unplugged ? c->f.g.ram[1].gpa : 0,
		      c->unplugged ? c->f.g.ram[1].size : 0);
}

/* A packed shadow ring: predict and check one library call at a time. */
static void call_packed(struct mctx *c)
{
	struct vuiso_vq_stats st0, st1;
	int r;

	sim_backend_flush(&c->f.b);
	do {
		fz_ring_snapshot(&c->rings, &c->f.g);
		if (c->rings_gone)
			c->violation =
				"a ring of queue 0 is not in guest memory";
		predict_packed_call(c);
		vuiso_vq_get_stats(c->f.vq, &st0);
		r = vuiso_vq_call_from_backend(c->f.vq);
		vuiso_vq_get_stats(c->f.vq, &st1);
		if (r == 1)
			packed_call_truncate(c,
					     st1.completions - st0.completions);
		FZ_CHECK(r == 0 || r == -EIO || (r == 1 && !c->violation),
			 "call returned %d", r);
		FZ_CHECK((r == -EIO) == !!c->f.errors, "call returned %d", r);
		after_call(c);
	} while (r == 1 && !c->broken);
	sim_backend_arm(&c->f.b);
}

static void call(struct mctx *c)
{
	int r;

	if (c->broken)
		return;
	if (c->f.o.backend_packed) {
		call_packed(c);
		return;
	}
	sim_backend_flush(&c->f.b);
	fz_ring_snapshot(&c->rings, &c->f.g);
	if (c->rings_gone)
		c->violation = "a ring of queue 0 is not in guest memory";
	predict_used(c);
	do {
		r = vuiso_vq_call_from_backend(c->f.vq);
	} while (r == 1);
	FZ_CHECK(r == 0 || r == -EIO, "call returned %d", r);
	FZ_CHECK((r == -EIO) == !!c->f.errors, "call returned %d", r);
	after_call(c);
	sim_backend_arm(&c->f.b);
}

static void kick(struct mctx *c)
{
	int r;

	if (c->broken)
		return;
	fz_ring_snapshot(&c->rings, &c->f.g);
	if (c->rings_gone && !c->stopping)
		c->violation = "a ring of queue 0 is not in guest memory";
	do {
		r = vuiso_vq_kick_from_guest(c->f.vq);
	} while (r == 1);
	FZ_CHECK(r == (c->stopping ? -EINVAL : 0) || r == -EIO,
		 "kick returned %d", r);
	after_call(c);
}

/* ---- actions ---- */

static void add(struct mctx *c, struct fz_in *in)
{
	struct fx *f = &c->f;
	struct mreq q = {.live = true};
	unsigned n = 1 +
		     fz_u8(in) % (MAXSEG < f->o.qsize ? MAXSEG : f->o.qsize);
	bool live = false;
	unsigned free_before;
	int head;

	for (unsigned h = 0; h < f->o.qsize; h++)
		live |= c->req[h].live;
	if (!live && f->g.heap_end - f->g.heap_next < (16u << 10))
		sim_heap_reset(&f->g);
	/* A driver does not use memory it unplugged (and the harness could
	 * not write it: it is PROT_NONE). */
	if (c->unplugged && f->g.heap_next + (16u << 10) > f->g.ram[1].gpa)
		return;
	for (unsigned i = 0; i < n; i++) {
		uint32_t len = 1 + fz_u16(in) % 2048;
		bool w = fz_u8(in) & 1;
		uint64_t gpa = sim_alloc(&f->g, len);

		if (!gpa)
			return;
		if (!w && q.n && q.buf[q.n - 1].write)
			w = true;
		q.buf[q.n++] = (struct sim_buf){gpa, len, w};
		if (w)
			q.writable += len;
	}
	free_before = sim_guest_free(&f->g);
	head = sim_add(&f->g, q.buf, q.n, f->o.indirect && (n & 1));
	if (head < 0)
		return;
	q.ndesc = (uint16_t)(free_before - sim_guest_free(&f->g));
	FZ_CHECK(!c->req[head].live, "guest reused a live head");
	c->req[head] = q;
	c->fifo[c->fifo_tail++ & 0xffff] = (uint16_t)head;
	sim_kick_needed(&f->g);
	if (fz_u8(in) & 1)
		kick(c);
}

/* Descriptor @k of the chain at @head, in the table or the indirect table. */
static uint8_t *chain_desc(struct mctx *c, uint16_t head, unsigned k)
{
	return sim_chain_desc(&c->f.g, head, k);
}

static void rewrite(struct mctx *c, struct fz_in *in)
{
	struct fx *f = &c->f;
	uint8_t sel = fz_u8(in), kk = fz_u8(in);
	uint64_t addr = fz_u64(in);
	uint32_t len = fz_u32(in);
	uint16_t flags = fz_u16(in);
	unsigned nlive = 0, want;
	struct mreq *q = NULL;
	uint16_t head = 0;
	uint8_t *d;
	unsigned k;

	for (unsigned h = 0; h < f->o.qsize; h++)
		nlive += c->req[h].live;
	if (!nlive)
		return;
	want = sel % nlive;
	for (unsigned h = 0; h < f->o.qsize; h++)
		if (c->req[h].live && !want--) {
			q = &c->req[h];
			head = (uint16_t)h;
			break;
		}
	k = kk % q->n;
	if (c->unplugged && f->g.chain_indirect[head] &&
	    in_range1(c, f->g.chain_indirect[head], 16ULL * q->n))
		return;
	d = chain_desc(c, head, k);
	if (q->popped && f->g.packed && !f->g.chain_indirect[head]) {
		/* Too late, as below; a packed ring descriptor keeps its id
		 * and its AVAIL/USED bits, so that the guest's driver does
		 * not take it for a used one.  Its position may already hold
		 * a used descriptor or another chain (packed positions are
		 * reused out of order): only while it still carries this
		 * chain's id is it this chain's. */
		uint16_t keep = FZ_P_AVAIL | FZ_P_USED;

		if (ld16(d + 12) != head)
			return;

		sim_put_pdesc(
			d, addr, len, ld16(d + 12),
			(uint16_t)((flags & ~keep) | (ld16(d + 14) & keep)));
	} else if (q->popped && f->g.packed) {
		/* An entry of the chain's packed indirect table. */
		sim_put_pdesc(d, addr, len, ld16(d + 12), flags);
	} else if (q->popped) {
		/* Too late: whatever the guest writes now must not matter.
		 * Keep a loop-free chain so the guest's own reaping works. */
		sim_put_desc(d, addr, len, flags, ld16(d + 14));
	} else {
		/* Legal: the library will use the new buffer. */
		uint64_t gpa = sim_alloc(&f->g, q->buf[k].len);

		if (!gpa || (c->unplugged && in_range1(c, gpa, q->buf[k].len)))
			return;
		sim_put_desc(d, gpa, q->buf[k].len, ld16(d + 12), ld16(d + 14));
		q->buf[k].gpa = gpa;
	}
}

static void complete(struct mctx *c, struct fz_in *in)
{
	uint8_t sel = fz_u8(in), lensel = fz_u8(in);
	unsigned owned = 0, want;
	uint32_t len;
	uint16_t id;

	for (unsigned i = 0; i < c->f.o.qsize; i++)
		owned += c->bk[i].owned;
	if (!owned)
		return;
	want = sel % owned;
	for (id = 0; id < c->f.o.qsize; id++)
		if (c->bk[id].owned && !want--)
			break;
	switch (lensel % 5) {
	case 0:
		len = c->bk[id].writable;
		break;
	case 1:
		len = c->bk[id].writable / 2;
		break;
	case 2:
		len = 0;
		break;
	case 3:
		len = c->bk[id].writable + 1 + fz_u16(in);
		break;
	default:
		len = fz_u32(in);
		break;
	}
	c->bk[id].owned = false;
	sim_backend_push(&c->f.b, id, len);
	if (lensel & 0x80)
		call(c);
}

static void bogus(struct mctx *c, struct fz_in *in)
{
	uint16_t id = fz_u8(in) % c->f.o.qsize;

	/* Only ids the back-end does not own: an attack, unless the id is
	 * in flight (the back-end may complete chains it never popped). */
	if (c->bk[id].owned)
		return;
	sim_backend_push(&c->f.b, id, 1);
}

static void set_map(struct mctx *c, uint8_t how);

static void restart(struct mctx *c, uint16_t a, uint16_t u)
{
	FZ_CHECK(fz_restart(&c->f, a, u) == 0, "restart");
	memset(c->sh_state, 0, sizeof(c->sh_state));
	memset(c->sh_ndesc, 0, sizeof(c->sh_ndesc));
	memset(c->bk, 0, sizeof(c->bk));
	c->su_pos = 0;
	c->su_wrap = true;
	c->sh_seen = 0;
	c->lib_last_used = 0;
	c->inflight = 0;
	c->stopping = false;
	/* The start took what the guest made available while the queue was
	 * stopped (it will not kick for it): check it as after a kick. */
	fz_ring_snapshot(&c->rings, &c->f.g);
	after_call(c);
}

static void stop(struct mctx *c)
{
	struct fx *f = &c->f;
	struct vuiso_vq_state st;
	const char *maybe = NULL;
	int r, want;

	if (c->broken)
		return;
	sim_backend_flush(&f->b);
	fz_ring_snapshot(&c->rings, &c->f.g);
	if (c->inflight && c->rings_gone)
		c->violation = "a ring of queue 0 is not in guest memory";
	if (c->inflight && f->o.backend_packed)
		maybe = predict_packed_stop(c);
	else if (c->inflight)
		predict_used(c);
	r = vuiso_vq_stop(f->vq, 0, &st);
	if (maybe && r == -EIO)
		c->violation = maybe;
	want = c->violation ? -EIO : c->inflight ? -ETIMEDOUT : 0;
	FZ_CHECK(r == want, "stop returned %d, expected %d", r, want);
	after_call(c);
	if (r == -ETIMEDOUT)
		c->stopping = true;
	if (r)
		return;
	FZ_CHECK(st.inflight == 0, "clean stop with %u in flight", st.inflight);
	if (f->o.guest_packed)
		FZ_CHECK(st.avail_idx ==
				 (c->ga_pos | (c->ga_wrap ? FZ_P_WRAP : 0)),
			 "stop: avail_idx 0x%x, model position %u wrap %d",
			 st.avail_idx, c->ga_pos, c->ga_wrap);
	else
		FZ_CHECK(st.avail_idx == (uint16_t)c->fifo_head,
			 "stop: avail_idx %u, model %u", st.avail_idx,
			 (uint16_t)c->fifo_head);
	FZ_CHECK(st.used_idx == virtq_used_idx(&f->g.vq),
		 "stop: used_idx %u, guest %u", st.used_idx,
		 virtq_used_idx(&f->g.vq));
	if (c->rings_gone)
		set_map(c, 3); /* no start without the rings */
	restart(c, st.avail_idx, st.used_idx);
}

static void reset(struct mctx *c)
{
	struct fx *f = &c->f;

	vuiso_vq_reset(f->vq);
	if (c->rings_gone)
		set_map(c, 3);
	fz_guest_ring_reset(&f->g);
	/* Dropped requests: their buffers must never change again. */
	memset(c->req, 0, sizeof(c->req));
	c->fifo_head = c->fifo_tail = 0;
	c->nexp = 0;
	c->violation = NULL;
	c->broken = false;
	f->errors = 0;
	c->ga_pos = 0;
	c->ga_wrap = true;
	/* The fresh indices of the guest's layout (packed: 0x8000). */
	restart(c, virtq_avail_idx(&f->g.vq), virtq_used_idx(&f->g.vq));
}

static void set_map(struct mctx *c, uint8_t how)
{
	struct sim_guest *g = &c->f.g;
	struct vuiso_mem_region mr[SIM_MAX_RAM];
	unsigned n;
	int ret;

	switch (how % 5) {
	case 1: {
		unsigned r = (how >> 2) & 1;
		uint8_t *nm;

		if (c->unplugged)
			r = 0;
		if (c->nmoved == MAXMOVES)
			break;
		nm = fz_map_guarded(g->ram[r].size);
		memcpy(nm, g->ram[r].hva, g->ram[r].size);
		FZ_CHECK(mprotect(g->ram[r].hva, g->ram[r].size, PROT_NONE) ==
				 0,
			 "mprotect");
		c->moved[c->nmoved++] = g->ram[r].hva;
		g->ram[r].hva = nm;
		sim_guest_remap(g);
		break;
	}
	case 2:
		if (c->unplugged)
			break;
		c->unplugged = true;
		FZ_CHECK(mprotect(g->ram[1].hva, g->ram[1].size, PROT_NONE) ==
				 0,
			 "mprotect");
		break;
	case 3:
		c->rings_gone = false;
		if (!c->unplugged)
			break;
		c->unplugged = false;
		FZ_CHECK(mprotect(g->ram[1].hva, g->ram[1].size,
				  PROT_READ | PROT_WRITE) == 0,
			 "mprotect");
		break;
	case 4:
		/* The rings' range goes (the harness keeps using it). */
		if (!c->unplugged)
			c->rings_gone = true;
		break;
	default:
		break;
	}
	n = sim_guest_regions(g, mr);
	if (c->unplugged)
		n = 1;
	if (c->rings_gone) {
		mr[0] = mr[1];
		n = 1;
	}
	ret = vuiso_dev_set_guest_memory(c->f.dev, mr, n);
	FZ_CHECK(ret == 0, "set_guest_memory: %d", ret);
}

/* ---- end of input: drain, reset, prove nothing leaked ---- */

static bool any_live(struct mctx *c)
{
	for (unsigned h = 0; h < c->f.o.qsize; h++)
		if (c->req[h].live)
			return true;
	return false;
}

/*
 * A packed shadow ring lets earlier back-end actions leave the back-end's
 * used position off the library's (a used descriptor written where the
 * library then published a new chain is gone, not an error): a back-end
 * that now behaves goes back to the library's position and completes
 * every chain in flight, those it completed but the library has not read
 * included.
 */
static void packed_backend_resync(struct mctx *c)
{
	struct sim_backend *b = &c->f.b;

	for (uint16_t id = 0; id < c->f.o.qsize; id++)
		if (c->sh_state[id] == SH_INFLIGHT) {
			c->bk[id].owned = true;
			b->ndesc[id] = c->sh_ndesc[id];
		}
	b->used_idx = c->su_pos;
	b->used_wrap = c->su_wrap;
}

/* The back-end completes everything, the guest kicks, until all is done. */
static void drain(struct mctx *c)
{
	for (unsigned round = 0; round < 4 * MAXQ; round++) {
		if (c->broken || !any_live(c))
			return;
		if (c->f.o.backend_packed)
			packed_backend_resync(c);
		for (uint16_t id = 0; id < c->f.o.qsize; id++)
			if (c->bk[id].owned) {
				c->bk[id].owned = false;
				sim_backend_push(&c->f.b, id,
						 c->bk[id].writable);
			}
		if (c->stopping) {
			stop(c);
		} else {
			call(c);
			kick(c);
		}
	}
	FZ_CHECK(false, "requests left after draining");
}

static void add_one(struct mctx *c, uint64_t len)
{
	struct fx *f = &c->f;
	struct sim_buf b = {sim_alloc(&f->g, len), (uint32_t)len, true};
	int head;

	FZ_CHECK(b.gpa != 0, "heap");
	head = sim_add(&f->g, &b, 1, false);
	FZ_CHECK(head >= 0, "sim_add");
	c->req[head] = (struct mreq){.live = true,
				     .n = 1,
				     .buf = {b},
				     .writable = (uint32_t)len,
				     .ndesc = 1};
	c->fifo[c->fifo_tail++ & 0xffff] = (uint16_t)head;
}

/*
 * After a reset the queue takes a full ring of requests (no slot leaked);
 * once those complete it takes one request as large as the whole bounce
 * pool (no block leaked by completion either).
 */
static void leak_check(struct mctx *c)
{
	struct fx *f = &c->f;
	struct vuiso_vq_stats st;

	reset(c);
	sim_heap_reset(&f->g);
	for (uint32_t i = 0; i < f->o.qsize; i++)
		add_one(c, 64);
	sim_kick_needed(&f->g);
	kick(c);
	vuiso_vq_get_stats(f->vq, &st);
	FZ_CHECK(st.requests == f->o.qsize,
		 "after reset only %llu of %u requests were taken",
		 (unsigned long long)st.requests, f->o.qsize);
	drain(c);
	FZ_CHECK(!c->broken, "clean requests broke the queue: %s", f->last_msg);
	sim_heap_reset(&f->g);
	add_one(c, f->o.pool_size);
	sim_kick_needed(&f->g);
	kick(c);
	vuiso_vq_get_stats(f->vq, &st);
	FZ_CHECK(st.requests == f->o.qsize + 1ULL && !c->broken,
		 "a request as large as the pool does not fit: leak");
	drain(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = {data, size};
	struct mctx *c = calloc(1, sizeof(*c));
	struct fx_opts o;
	struct fx *f;
	uint8_t hdr;

	FZ_CHECK(c != NULL, "calloc");
	f = &c->f;
	hdr = fz_u8(&in);
	fz_opts(hdr, fz_u8(&in), &o);
	fz_fx_init(f, &o);
	c->ga_wrap = c->su_wrap = true;
	c->budget = o.budget ? o.budget : o.qsize;
	c->segs = calloc(o.qsize, sizeof(*c->segs));
	FZ_CHECK(c->segs && !fz_heap_init(&c->heap, &f->g) &&
			 !fz_ring_copy_init(&c->rings, &c->f.g),
		 "malloc");

	for (unsigned steps = 0; fz_more(&in) && steps < 256; steps++) {
		uint8_t op = fz_u8(&in) % 10;

		switch (op) {
		case 0:
			add(c, &in);
			break;
		case 1:
			rewrite(c, &in);
			break;
		case 2:
			complete(c, &in);
			break;
		case 3:
			bogus(c, &in);
			break;
		case 4:
			call(c);
			break;
		case 5:
			kick(c);
			break;
		case 6:
			set_map(c, fz_u8(&in));
			break;
		case 7:
			stop(c);
			break;
		case 8:
			reset(c);
			break;
		default:
			c->logging = !c->logging;
			vuiso_dev_set_logging(f->dev, c->logging);
			break;
		}
	}
	if (c->unplugged || c->rings_gone)
		set_map(c, 3);
	drain(c);
	leak_check(c);

	fx_fini(f);
	for (unsigned i = 0; i < c->nmoved; i++)
		fz_unmap_guarded(c->moved[i], o.ram_size);
	free(c->segs);
	fz_heap_free(&c->heap);
	fz_ring_copy_free(&c->rings);
	free(c);
	return 0;
}
