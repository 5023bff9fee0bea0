/* SPDX-License-Identifier: MIT */
/*
 * One device, one queue, a simulated guest and a simulated back-end wired
 * together through the public API: what the engine, attack and fuzz tests
 * start from.
 */
#ifndef VUISO_TEST_FIXTURE_H
#define VUISO_TEST_FIXTURE_H

#include "sim.h"

struct fx_opts {
	uint32_t qsize;     /* default 64 */
	uint64_t pool_size; /* default 256 KiB */
	unsigned nram;      /* guest RAM ranges, default 2 */
	uint64_t ram_size;  /* per range, default 4 MiB */
	bool guest_event_idx;
	bool backend_event_idx;
	bool indirect;       /* guest negotiates INDIRECT_DESC */
	bool guest_packed;   /* the guest's ring is packed */
	bool backend_packed; /* the back-end negotiates RING_PACKED */
	uint32_t budget;     /* 0: default */
	uint32_t dev_flags;  /* VUISO_DEV_F_* */
};

struct fx {
	struct fx_opts o;
	struct sim_guest g;
	struct sim_backend b;
	struct vuiso_dev *dev;
	struct vuiso_vq *vq;
	struct vuiso_vq_shadow shadow;
	/* what the callbacks saw */
	unsigned errors;
	int last_err;
	char last_msg[256];
	unsigned kicks;    /* back-end kicks */
	unsigned notifies; /* guest notifications */
	uint64_t logged;   /* bytes reported through log_write */
	/* Called from log_write after counting, when set (a test's VMM). */
	void (*log_hook)(struct fx *f, uint64_t gpa, uint64_t len);
	void *hook_opaque;
};

/* 0 on success; the fixture is left half-built on failure (call fx_fini). */
int fx_init(struct fx *f, const struct fx_opts *o);
void fx_fini(struct fx *f);
/* Restart the queue at the guest's current indices (after stop/reset). */
int fx_restart(struct fx *f);
/* Restart it where a stop left the device (vuiso_vq_stop*()'s state),
 * which is behind the driver when requests were given back. */
int fx_restart_at(struct fx *f, const struct vuiso_vq_state *state);

#endif
