// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

static void fx_error(void *opaque, unsigned qidx, int err, const char *msg)
{
	struct fx *f = opaque;

	(void)qidx;
	f->errors++;
	f->last_err = err;
	snprintf(f->last_msg, sizeof(f->last_msg), "%s", msg);
}

static void fx_kick(void *opaque, unsigned qidx)
{
	(void)qidx;
	((struct fx *)opaque)->kicks++;
}

static void fx_notify(void *opaque, unsigned qidx)
{
	(void)qidx;
	((struct fx *)opaque)->notifies++;
}

static void fx_log(void *opaque, uint64_t gpa, uint64_t len)
{
	struct fx *f = opaque;

	f->logged += len;
	if (f->log_hook)
		f->log_hook(f, gpa, len);
}

static const struct vuiso_ops fx_ops = {
	.version = VUISO_OPS_VERSION,
	.kick_backend = fx_kick,
	.notify_guest = fx_notify,
	.error = fx_error,
	.log_write = fx_log,
};

static uint64_t fx_features(const struct fx *f, bool event_idx)
{
	uint64_t v = 1ULL << VUISO_F_VERSION_1;

	if (event_idx)
		v |= 1ULL << VUISO_F_EVENT_IDX;
	return v;
}

/* Start at the guest's indices (@state NULL: the driver's own), then give
 * the simulated back-end the fresh shadow ring. */
static int fx_start(struct fx *f, const struct vuiso_vq_state *state)
{
	struct vuiso_vq_config cfg;
	struct vuiso_region_info ri;
	uint64_t gf = fx_features(f, f->o.guest_event_idx);
	uint64_t bf = fx_features(f, f->o.backend_event_idx);
	int ret;

	if (f->o.indirect)
		gf |= 1ULL << VUISO_F_INDIRECT_DESC;
	if (f->o.backend_packed)
		bf |= 1ULL << VUISO_F_RING_PACKED;
	sim_guest_vq_config(&f->g, gf, bf, &cfg);
	if (state) {
		cfg.avail_idx = state->avail_idx;
		cfg.used_idx = state->used_idx;
	}
	ret = vuiso_vq_start(f->vq, &cfg, &f->shadow);
	if (ret)
		return ret;
	sim_backend_fini(&f->b);
	vuiso_dev_get_region(f->dev, 0, &ri);
	return sim_backend_init(&f->b, &ri, &f->shadow, f->o.backend_event_idx);
}

int fx_restart(struct fx *f)
{
	return fx_start(f, NULL);
}

int fx_restart_at(struct fx *f, const struct vuiso_vq_state *state)
{
	return fx_start(f, state);
}

int fx_init(struct fx *f, const struct fx_opts *o)
{
	struct vuiso_dev_config cfg = {
		.version = VUISO_DEV_CONFIG_VERSION,
		.num_queues = 1,
		.region_fd = -1,
		.ops = &fx_ops,
	};
	struct vuiso_mem_region mr[SIM_MAX_RAM];
	unsigned n;
	int ret;

	memset(f, 0, sizeof(*f));
	f->o = *o;
	if (!f->o.qsize)
		f->o.qsize = 64;
	if (!f->o.pool_size)
		f->o.pool_size = 256 * 1024;
	if (!f->o.nram)
		f->o.nram = 2;
	if (!f->o.ram_size)
		f->o.ram_size = 4 << 20;
	ret = sim_guest_init(&f->g, f->o.nram, f->o.ram_size, f->o.qsize,
			     f->o.guest_event_idx, f->o.guest_packed);
	if (ret)
		return ret;
	cfg.queue_size_max = f->o.qsize;
	cfg.pool_size = f->o.pool_size;
	cfg.budget = f->o.budget;
	cfg.flags = f->o.dev_flags;
	cfg.opaque = f;
	ret = vuiso_dev_new(&cfg, &f->dev);
	if (ret)
		return ret;
	f->vq = vuiso_dev_get_vq(f->dev, 0);
	n = sim_guest_regions(&f->g, mr);
	ret = vuiso_dev_set_guest_memory(f->dev, mr, n);
	if (ret)
		return ret;
	return fx_restart(f);
}

void fx_fini(struct fx *f)
{
	sim_backend_fini(&f->b);
	vuiso_dev_free(f->dev);
	sim_guest_fini(&f->g);
	memset(f, 0, sizeof(*f));
}
