/* SPDX-License-Identifier: MIT */
/*
 * The example VMM's device model: one vhost-user device, its guest RAM,
 * its virtqueues, and (with isolation on) the libvuiso device in between.
 * Each section below names the file that implements it.
 */
#ifndef VMM_VMM_H
#define VMM_VMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vuiso/vuiso.h>

#include "guest.h"
#include "vhost_user.h"

#define VMM_MAX_QUEUES 16
/* Entries per indirect table of the guest driver (Linux: seg_max + 2). */
#define VMM_MAX_INDIRECT 64
/* Rate sampling while the queue threads run (vmm_join_queues()). */
#define VMM_INTERVAL_S 0.5
#define VMM_MAX_INTERVALS 512

enum vmm_device_type { VMM_DEV_BLK, VMM_DEV_FS, VMM_DEV_NET };

/* --backend-ring: the back-end's ring layout. */
enum vmm_backend_ring {
	VMM_BACKEND_RING_AUTO,   /* what libvuiso picks (or the guest's) */
	VMM_BACKEND_RING_SPLIT,  /* clear VIRTIO_F_RING_PACKED */
	VMM_BACKEND_RING_PACKED, /* set it; refused if not offered */
};

/* Command-line options. */
struct vmm_opts {
	const char *socket; /* back-end socket path */
	enum vmm_device_type type;
	bool isolation;       /* --isolation=on */
	const char *workload; /* see --help */
	unsigned queues;      /* request queues */
	unsigned depth;       /* requests in flight per queue */
	bool depth_set;       /* --depth given (net: else the window) */
	unsigned queue_size;  /* virtqueue size */
	uint32_t bs, min_bs, max_bs;
	uint64_t ops;           /* requests per queue (0: time only) */
	double time_s;          /* run time limit (0: ops only) */
	uint64_t mem_size;      /* guest RAM bytes (0: automatic) */
	uint64_t pool_size;     /* libvuiso bounce pool per queue */
	uint32_t budget;        /* libvuiso chains per data-path call */
	uint64_t fs_file_size;  /* fs read benchmark file size */
	const char *image;      /* blk: image file to compare on the host */
	const char *shared_dir; /* fs: shared directory to check on the host */
	bool no_indirect, no_event_idx, no_mem_slots;
	enum virtq_layout guest_ring;       /* --guest-ring */
	enum vmm_backend_ring backend_ring; /* --backend-ring */
	uint64_t require_features;
	int backend_pid; /* 0: SO_PEERCRED */
	uint64_t seed;
	bool quiet;
	unsigned stall_timeout_s;
	bool reconnect;               /* --reconnect (restart.c) */
	unsigned reconnect_timeout_s; /* how long to wait for a new back-end */
	/* net (net.c) */
	uint32_t frame;      /* --frame: bytes per frame (0: random) */
	uint32_t rx_buf;     /* --rx-buf: bytes per receive buffer */
	bool no_mrg_rxbuf;   /* --no-mrg-rxbuf */
	bool macswap;        /* --net-fwd=macswap (else io) */
	const char *testpmd; /* --testpmd: the binary to start */
};

struct vmm_dev;
struct vmm_queue;

/* Called for every used chain the guest driver takes. */
typedef int (*vmm_complete_fn)(struct vmm_queue *q, void *token, uint32_t len);

struct vmm_queue {
	struct vmm_dev *dev;
	unsigned idx; /* virtqueue index */
	/* The queue whose thread drives this one: itself, or (net) the RX
	 * queue of its pair, whose thread drives RX and TX together. */
	struct vmm_queue *owner;
	struct virtq vq;      /* the guest driver's ring */
	int kick_fd;          /* eventfd the back-end waits on */
	int call_fd;          /* eventfd the back-end signals */
	struct vuiso_vq *svq; /* libvuiso queue, NULL with isolation off */
	bool started;
	bool enabled;             /* SET_VRING_ENABLE 1 sent (or due) */
	bool backend_packed;      /* the back-end's ring is packed */
	bool kick_pending;        /* guest kicked / budget ran out */
	bool call_pending;        /* back-end called / budget ran out */
	bool irq;                 /* the "interrupt line" to the driver */
	vmm_complete_fn complete; /* the driver's completion handler */
	void *priv;               /* the workload's per-queue state */
	pthread_t thread;
	bool joined; /* main thread: the queue's thread has been joined */
	/* --reconnect (restart.c).  @parked is under dev->park_lock; the
	 * others are written by whoever drives the queue while it is
	 * detached (its thread before parking, or the main thread). */
	bool parked;       /* the thread waits for a new back-end */
	unsigned park_gen; /* dev->generation it waits to see pass */
	bool detached;     /* vuiso_vq_detach() done, attach pending */
	unsigned kept;     /* requests the last detach kept */
	/* Progress counters, read by the main thread. */
	_Atomic uint64_t done_reqs;
	_Atomic uint64_t done_bytes;
	uint64_t errors;
	uint64_t backend_calls; /* call eventfd wake-ups */
};

struct vmm_dev {
	struct vmm_opts *opts;
	struct vmm_vu vu;
	struct vmm_guest_mem mem;
	struct vuiso_dev *iso;    /* NULL with isolation off */
	uint64_t backend_offered; /* GET_FEATURES */
	/* Bits the device model implements itself (net: the control queue,
	 * MAC, status): offered to the guest driver, and sent to the
	 * back-end only if it offers them too. */
	uint64_t model_features;
	uint64_t guest_features;   /* what our guest driver accepted */
	uint64_t backend_features; /* SET_FEATURES */
	unsigned nq;               /* virtqueues in use */
	/* Queues [0, enabled_at_start) get SET_VRING_ENABLE 1 when they
	 * start; the others wait for the device (net: VQ_PAIRS_SET). */
	unsigned enabled_at_start;
	struct vmm_queue q[VMM_MAX_QUEUES];
	_Atomic int failed; /* set once on the first error */
	pthread_mutex_t err_lock;
	char err[768];
	_Atomic int stop; /* ask queue threads to wind down */
	/* --reconnect: the queue threads park while the main thread brings
	 * up a new back-end (restart.c). */
	_Atomic int backend_gone;  /* set by whoever sees the hang-up */
	pthread_mutex_t park_lock; /* guards q[].parked, @generation */
	pthread_cond_t park_cond;  /* a thread parked / the queues may run */
	unsigned generation;       /* bumped when a new back-end is up */
	unsigned reconnects;       /* back-ends replaced so far */
	/* Requests/s of each full VMM_INTERVAL_S of the run after the first,
	 * sampled by vmm_join_queues() from the queues' done_reqs. */
	double interval_rate[VMM_MAX_INTERVALS];
	unsigned nintervals;
};

__attribute__((format(printf, 2, 3))) void vmm_fail(struct vmm_dev *dev,
						    const char *fmt, ...);
static inline bool vmm_failed(const struct vmm_dev *dev)
{
	return atomic_load_explicit(&dev->failed, memory_order_acquire);
}

/* features.c: feature names for messages and --require-features. */
const char *vmm_feature_name(enum vmm_device_type type, unsigned bit);
int vmm_feature_parse(enum vmm_device_type type, const char *name);

/*
 * vmm.c, control path (main thread).  vmm_dev_open connects and negotiates;
 * @driver_wants is the set of feature bits the guest driver understands.
 */
void vmm_dev_init(struct vmm_dev *dev, struct vmm_opts *opts);
int vmm_dev_open(struct vmm_dev *dev, struct vmm_opts *opts,
		 uint64_t driver_wants, unsigned nq);
int vmm_dev_start(struct vmm_dev *dev, uint64_t guest_ram);
/* Stop all queues and check the indices the back-end hands back. */
int vmm_dev_stop(struct vmm_dev *dev);
void vmm_dev_close(struct vmm_dev *dev);

/*
 * vmm.c: a guest driver ring for queue @idx of @num entries, in the layout
 * and with the features the guest driver negotiated, its areas allocated
 * in guest RAM; @notify is its doorbell.  0, or -errno after vmm_fail().
 */
int vmm_guest_ring_init(struct vmm_dev *dev, struct virtq *vq, unsigned idx,
			unsigned num, void (*notify)(void *), void *opaque);

/*
 * vmm.c, the vhost-user steps that a new back-end needs again after a
 * restart (restart.c).  They never fail the device: on error they return
 * -errno with the reason in dev->vu.err, and the caller decides.
 * vmm_backend_negotiate: SET_OWNER, GET_FEATURES, protocol features,
 * GET_QUEUE_NUM.  vmm_backend_send_memory: the memory table (the isolated
 * region only, with isolation on).  vmm_backend_set_vring: one queue's
 * ring, from SET_VRING_NUM to SET_VRING_ENABLE.
 */
int vmm_backend_negotiate(struct vmm_dev *dev, uint64_t *offered,
			  uint64_t *proto, uint64_t *qnum);
int vmm_backend_send_memory(struct vmm_dev *dev);
int vmm_backend_set_vring(struct vmm_dev *dev, struct vmm_queue *q,
			  unsigned num, unsigned base, uint64_t desc,
			  uint64_t used, uint64_t avail);

/*
 * restart.c, --reconnect.  vmm_queues_park: on a thread that drives the
 * @n queues @qs, once dev->backend_gone is set; detaches them and waits
 * until the main thread has attached them to a new back-end (0) or gave up
 * (-EIO).
 * vmm_backend_watch: on the main thread while it joins the queue threads
 * [@first, @first + @n); notices a hang-up, parks the threads, reconnects.
 */
int vmm_queues_park(struct vmm_queue *const *qs, unsigned n);
void vmm_backend_watch(struct vmm_dev *dev, unsigned first, unsigned n);

/* proof.c: prints the isolation proof; returns 0 if it holds for the mode. */
int vmm_isolation_proof(struct vmm_dev *dev);

/* What GET_QUEUE_NUM must cover: queues, or (net) queue pairs. */
static inline unsigned vmm_backend_queues_needed(const struct vmm_dev *dev)
{
	return dev->opts->type == VMM_DEV_NET ? dev->nq / 2 : dev->nq;
}

static inline bool vmm_has(const struct vmm_dev *dev, unsigned bit)
{
	return (dev->guest_features >> bit) & 1;
}

/*
 * vmm.c, data path, on the queue's thread.
 * vmm_queue_submit: put a chain on the guest ring (0, or -ENOSPC).
 * vmm_queue_kick: the guest notifies the device.
 * vmm_queue_wait: run the queue's events until at least one completion was
 * delivered to q->complete; returns the count, or -EIO once the device
 * failed.  vmm_queues_wait: the same for the @n (<= VMM_WAIT_MAX) queues
 * @qs that one thread drives (net: a queue pair).
 */
int vmm_queue_submit(struct vmm_queue *q, const struct virtq_sg *sg,
		     unsigned out, unsigned in, void *token);
void vmm_queue_kick(struct vmm_queue *q);
int vmm_queue_wait(struct vmm_queue *q);
#define VMM_WAIT_MAX 2
int vmm_queues_wait(struct vmm_queue *const *qs, unsigned n);
/* vmm_queues_wait, but 0 after @timeout_s seconds without a completion
 * instead of the stall failure. */
int vmm_queues_wait_for(struct vmm_queue *const *qs, unsigned n,
			double timeout_s);

/* Time in seconds from a monotonic clock. */
double vmm_now(void);

/* The workloads: blk.c, fs.c and net.c */
int vmm_blk_run(struct vmm_dev *dev, struct vmm_opts *opts);
int vmm_fs_run(struct vmm_dev *dev, struct vmm_opts *opts);
int vmm_net_run(struct vmm_dev *dev, struct vmm_opts *opts);

/*
 * testpmd.c: the net back-end vuiso-vmm starts itself (no --socket):
 * dpdk-testpmd with its net_vhost PMD on a socket in a temporary directory,
 * forwarding (io, or macswap) every packet back on the queue it came in.
 * vmm_testpmd_start: 0 once the socket exists, or -errno with the reason in
 * @err.  vmm_testpmd_stop: asks it to stop and print its counters (@c, may
 * be NULL), kills it if it does not, removes the directory (kept, with the
 * tail of its log printed, when testpmd did not stop cleanly); 0, or
 * -errno.  Safe to call on
 * a testpmd that died or never started.  vmm_testpmd_alive: false once it
 * exited (@status from waitpid).
 */
struct vmm_testpmd {
	pid_t pid; /* 0: not running */
	pid_t parent;
	int in_fd;       /* its stdin */
	char prefix[32]; /* EAL --file-prefix */
	char dir[64];
	char sock[96];
	char log[96];
};

struct vmm_testpmd_counters {
	uint64_t rx_packets, rx_dropped; /* from the VMM's TX queues */
	uint64_t tx_packets, tx_dropped; /* to the VMM's RX queues */
};

int vmm_testpmd_start(struct vmm_testpmd *t, const char *bin, unsigned pairs,
		      bool macswap, char *err, size_t err_size);
int vmm_testpmd_stop(struct vmm_testpmd *t, struct vmm_testpmd_counters *c);
bool vmm_testpmd_alive(struct vmm_testpmd *t, int *status);
/* CPU seconds (user + system) testpmd used so far, or -1. */
double vmm_testpmd_cpu_seconds(const struct vmm_testpmd *t);

/* report.c: summary figures a workload reports to main. */
struct vmm_summary {
	uint64_t requests;
	uint64_t bytes;
	uint64_t errors;
	double seconds;
	const char *what;
};
void vmm_print_summary(const struct vmm_dev *dev, const struct vmm_summary *s);
/* Print a queue's notification counters (and libvuiso's, if isolated). */
void vmm_queue_print_stats(struct vmm_queue *q);
/* Join the threads of queues [first, first + n), printing progress and
 * recording dev->interval_rate; with --reconnect, replace a back-end that
 * hangs up meanwhile (restart.c). */
void vmm_join_queues(struct vmm_dev *dev, unsigned first, unsigned n,
		     double t0);

/* Workload randomness: xorshift64* stream and the splitmix64 finaliser
 * (turns an offset and a version into a verifiable data pattern). */
static inline uint64_t vmm_rng(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t vmm_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#endif /* VMM_VMM_H */
