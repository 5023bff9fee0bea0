/* SPDX-License-Identifier: MIT */
/*
 * libvuiso - vhost-user memory isolation through shadow virtqueues.
 *
 * A VMM (the vhost-user front-end) creates one struct vuiso_dev per device.
 * The device owns an isolated shared-memory region (a sealed memfd) that
 * holds the shadow rings and the bounce buffers; that region is the only
 * memory the VMM registers with the back-end.  For every virtqueue the VMM
 * starts a struct vuiso_vq with the guest ring addresses; the library then
 * copies each guest request into the region, hands the back-end a shadow
 * descriptor chain that points only into the region, and copies results
 * back into guest RAM on completion.
 *
 * Conventions:
 *  - Functions return an int >= 0 on success and a negative errno value on
 *    failure; errno itself is never used as the channel.
 *  - "Control path" functions may allocate and block; "data path" functions
 *    never allocate, never block and do a bounded amount of work.
 *  - One virtqueue is driven by one thread at a time; different virtqueues
 *    of the same device may be driven by different threads concurrently.
 *    vuiso_dev_set_guest_memory() may be called from any thread at any time,
 *    except from inside a libvuiso callback.
 *  - The library starts no threads and owns no event loop.  The VMM calls in
 *    when the guest or the back-end notifies, and the library calls out
 *    through struct vuiso_ops.
 */
#ifndef VUISO_VUISO_H
#define VUISO_VUISO_H

#include <stddef.h>
#include <stdint.h>

/* VUISO_VERSION, generated from the meson project version. */
#include <vuiso/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define VUISO_API __attribute__((visibility("default")))
#else
#define VUISO_API
#endif

/**
 * vuiso_version() - library version, as VUISO_VERSION of the build.
 *
 * Control path, any thread.
 */
VUISO_API unsigned vuiso_version(void);

/*
 * Feature bits the library interprets (VIRTIO 1.2, section 6).
 */
#define VUISO_F_INDIRECT_DESC 28
#define VUISO_F_EVENT_IDX 29
#define VUISO_F_VERSION_1 32
#define VUISO_F_ACCESS_PLATFORM 33
#define VUISO_F_RING_PACKED 34
#define VUISO_F_IN_ORDER 35
#define VUISO_F_NOTIFICATION_DATA 38
#define VUISO_F_RING_RESET 40
/** vhost-user: VHOST_USER_F_PROTOCOL_FEATURES shares bit 30 with the guest word. */
#define VUISO_F_VHOST_USER_PROTOCOL_FEATURES 30
/** vhost: VHOST_F_LOG_ALL, the back-end's dirty logging (never needed isolated). */
#define VUISO_F_VHOST_LOG_ALL 26

/**
 * vuiso_features_for_guest() - feature bits to offer the guest.
 * @backend_features: what the back-end offered (VHOST_USER_GET_FEATURES).
 *
 * Device-specific bits (0-23 and 50-63) pass through.  Transport bits that the
 * shadow virtqueue implements itself toward the guest (INDIRECT_DESC,
 * EVENT_IDX, RING_PACKED) are offered whatever the back-end supports: a
 * packed guest ring is translated to a split shadow ring when the back-end
 * has no packed ring.  VERSION_1 is offered when the back-end offers it.
 * Transport bits the library cannot honour (IN_ORDER, NOTIFICATION_DATA,
 * RING_RESET, ACCESS_PLATFORM and every other bit of 24-49), and the
 * vhost-only bits 26 and 30, are masked.  To keep a guest on split rings,
 * clear VUISO_F_RING_PACKED from the result.
 *
 * Control path, any thread.
 *
 * Return: the bits to offer the guest.
 */
VUISO_API uint64_t vuiso_features_for_guest(uint64_t backend_features);

/**
 * vuiso_features_for_backend() - feature bits to negotiate with the back-end.
 * @backend_features: what the back-end offered (VHOST_USER_GET_FEATURES).
 * @guest_features: what the guest driver accepted, a subset of
 *                  vuiso_features_for_guest(@backend_features).
 *
 * Device bits are those the guest accepted.  Transport bits are decided for
 * the shadow side alone: EVENT_IDX and VERSION_1 when the back-end offers
 * them, never INDIRECT_DESC (guest indirect tables are flattened) and none of
 * the masked bits.  RING_PACKED, which chooses the shadow ring's layout, is
 * set whenever the back-end offers it, whatever the guest's layout (the
 * engine translates): a packed ring moves fewer cache lines between the
 * VMM's CPU and a back-end polling on another.  A VMM may override that
 * choice in the result: clear the bit to keep the back-end on split rings
 * (a back-end whose packed support it does not trust);
 * vuiso_vq_start() follows whatever the VMM finally sent.  VHOST_USER_F_PROTOCOL_FEATURES is kept when offered, since
 * the vhost-user front-end needs it; VHOST_F_LOG_ALL is never set, because
 * under isolation the front-end logs guest writes itself.
 *
 * Control path, any thread.
 *
 * Return: the bits for VHOST_USER_SET_FEATURES.
 */
VUISO_API uint64_t vuiso_features_for_backend(uint64_t backend_features,
					      uint64_t guest_features);

/**
 * enum vuiso_layout - a virtqueue ring layout.
 * @VUISO_LAYOUT_SPLIT: split virtqueue (VIRTIO 1.2, 2.7).
 * @VUISO_LAYOUT_PACKED: packed virtqueue (VIRTIO 1.2, 2.8), negotiated with
 *                       VUISO_F_RING_PACKED.
 *
 * A queue's guest side and shadow side each have their own layout: any of
 * the four combinations works, the library translates between them.
 */
enum vuiso_layout {
	VUISO_LAYOUT_SPLIT = 0,
	VUISO_LAYOUT_PACKED = 1,
};

/**
 * VUISO_PACKED_WRAP - the wrap-counter bit of a packed ring index.
 *
 * Packed ring indices carry a position (bits 0-14) and a wrap counter
 * (bit 15), as VHOST_USER_SET/GET_VRING_BASE encode each half.  A fresh
 * packed queue starts at position 0 with both wrap counters set, i.e.
 * VUISO_PACKED_WRAP.
 */
#define VUISO_PACKED_WRAP 0x8000u

/**
 * struct vuiso_ops - callbacks from the library into the VMM.
 *
 * Every member may be NULL except where noted.  Callbacks run on the thread
 * that called into the library and must not call vuiso_dev_set_guest_memory()
 * or any control-path function on the same device.
 */
struct vuiso_ops {
	/** Set to VUISO_OPS_VERSION. */
	uint32_t version;
	/** Notify the back-end that queue @qidx has new shadow buffers
	 *  (write its kick eventfd).  Called at most once per data-path call. */
	void (*kick_backend)(void *opaque, unsigned qidx);
	/** Notify the guest that queue @qidx has used buffers (inject the
	 *  interrupt).  Called at most once per data-path call. */
	void (*notify_guest)(void *opaque, unsigned qidx);
	/** Queue @qidx is broken: @err is a negative errno value and @msg says
	 *  which side violated which rule.  Called once per breakage. */
	void (*error)(void *opaque, unsigned qidx, int err, const char *msg);
	/** The library wrote [@gpa, @gpa + @len) of guest memory.  Called only
	 *  while logging is enabled with vuiso_dev_set_logging(), at the end
	 *  of the data-path call that wrote, after it has left the RCU read
	 *  side: it may take a lock that a thread inside
	 *  vuiso_dev_set_guest_memory() holds.  Adjacent ranges are merged. */
	void (*log_write)(void *opaque, uint64_t gpa, uint64_t len);
	/** The isolated region @index was created: register it with the
	 *  back-end, with @backend_addr as both guest_phys_addr and
	 *  userspace_addr (@vmm_addr is for the VMM's own use, never sent).
	 *  Optional; the same data is in vuiso_dev_get_region(). */
	void (*region_add)(void *opaque, unsigned index, int fd, uint64_t size,
			   uint64_t backend_addr, void *vmm_addr);
	/** The isolated region @index is about to be unmapped. Optional. */
	void (*region_del)(void *opaque, unsigned index);
};

#define VUISO_OPS_VERSION 1

/**
 * struct vuiso_dev_config - what vuiso_dev_new() needs.
 *
 * Fields left zero take the documented default.
 */
struct vuiso_dev_config {
	/** Set to VUISO_DEV_CONFIG_VERSION. */
	uint32_t version;
	/** Number of virtqueues, 1 to VUISO_MAX_QUEUES. */
	uint32_t num_queues;
	/** Largest queue size any queue will use, a power of two up to
	 *  32768.  Default 256. */
	uint32_t queue_size_max;
	/** Bounce pool bytes per queue, a power of two of at least 64 KiB.
	 *  Default 4 MiB.  A request whose buffers cannot fit in an empty
	 *  pool breaks its queue with -E2BIG. */
	uint64_t pool_size;
	/** Address of the region in the back-end's view (the guest_phys_addr
	 *  of the memory table entry).  Shadow descriptors carry addresses in
	 *  this space.  Default 4 GiB; must be 4 KiB aligned. */
	uint64_t backend_base;
	/** Chains handled by one data-path call before it returns 1.
	 *  Default: queue size. */
	uint32_t budget;
	/** VUISO_DEV_F_* bits; others must be zero. */
	uint32_t flags;
	/** A memfd to use as the region, or -1 to let the library create one.
	 *  A supplied fd must be at least vuiso_region_size() bytes and carry
	 *  F_SEAL_SHRINK (a back-end could otherwise truncate it and make the
	 *  VMM fault) and F_SEAL_SEAL (it could otherwise add seals such as
	 *  F_SEAL_FUTURE_WRITE that lock a restarted back-end out); the
	 *  library duplicates it. */
	int region_fd;
	/** Callbacks, must not be NULL; copied. */
	const struct vuiso_ops *ops;
	/** Passed to every callback. */
	void *opaque;
};

#define VUISO_DEV_CONFIG_VERSION 1

/**
 * VUISO_DEV_F_CLEAR_WRITABLE - zero device-writable bounce blocks before
 * the back-end sees them.
 *
 * A back-end that reports a used length larger than what it wrote makes the
 * library copy whatever the bounce block held into the guest: by default the
 * bytes of an earlier request of the same queue (which the same back-end
 * saw, or wrote, then).  With this flag every device-writable block is
 * cleared when its request is forwarded, so such a guest reads zeros (the
 * swiotlb lesson of CVE-2022-0854).  Costs one memset of the writable bytes
 * per request (docs/performance.md).  Independently of it, a queue's whole
 * pool is cleared by vuiso_vq_reset(), so nothing crosses a device reset.
 */
#define VUISO_DEV_F_CLEAR_WRITABLE (1u << 0)
#define VUISO_MAX_QUEUES 64
#define VUISO_QUEUE_SIZE_MAX 32768

struct vuiso_dev;
struct vuiso_vq;

/**
 * vuiso_region_size() - bytes of isolated region a configuration needs.
 * @cfg: the configuration vuiso_dev_new() will get.
 * @size: out, the size in bytes.
 *
 * Control path, any thread.
 *
 * Return: 0, or -EINVAL for an invalid configuration.
 */
VUISO_API int vuiso_region_size(const struct vuiso_dev_config *cfg,
				uint64_t *size);

/**
 * vuiso_dev_new() - create a device and its isolated region.
 * @cfg: the configuration; read only during the call.
 * @out: out, the new device.
 *
 * Creates (or adopts) the sealed memfd, maps it, lays out per-queue shadow
 * rings and bounce pools, and calls ops->region_add if set.  Queues are
 * created stopped.  The guest memory map starts empty.
 *
 * Control path, any thread.
 *
 * Return: 0, -EINVAL for a bad configuration, -ENOMEM, or the negative errno
 * of a failed memfd_create, ftruncate, fcntl or mmap.
 */
VUISO_API int vuiso_dev_new(const struct vuiso_dev_config *cfg,
			    struct vuiso_dev **out);

/**
 * vuiso_dev_free() - stop nothing, free everything.
 * @dev: the device, or NULL (a no-op).
 *
 * The caller stops its queues first if it wants their requests completed;
 * requests still in flight are dropped.  Calls ops->region_del if set, then
 * unmaps and closes the region.
 *
 * Control path; no other call on @dev may run concurrently.
 */
VUISO_API void vuiso_dev_free(struct vuiso_dev *dev);

/**
 * struct vuiso_region_info - an isolated region, as the back-end must see it.
 */
struct vuiso_region_info {
	/** The memfd; owned by the device, valid until vuiso_dev_free(). */
	int fd;
	/** Offset of the region in @fd (mmap_offset of the memory table). */
	uint64_t fd_offset;
	/** Size in bytes (memory_size). */
	uint64_t size;
	/** Address in the back-end's view (guest_phys_addr). */
	uint64_t backend_addr;
	/** What to send as userspace_addr: a synthetic label, equal to
	 *  @backend_addr.  The back-end only uses it to translate the ring
	 *  addresses of VHOST_USER_SET_VRING_ADDR (send the *_backend ones of
	 *  struct vuiso_vq_shadow), so no VMM address needs to reach it: a
	 *  real one would tell a compromised back-end where the VMM's memory
	 *  lies (ASLR). */
	uint64_t user_addr;
	/** Where the VMM has it mapped: for the VMM's own use, never sent. */
	void *vmm_addr;
};

/**
 * vuiso_dev_get_region() - describe isolated region @index.
 * @dev: the device.
 * @index: region number, 0 to vuiso_dev_num_regions() - 1.
 * @info: out.
 *
 * This is what the VMM sends in VHOST_USER_SET_MEM_TABLE (or ADD_MEM_REG);
 * nothing else may be sent.
 *
 * Control path, any thread.
 *
 * Return: 0, or -ENOENT for a bad @index.
 */
VUISO_API int vuiso_dev_get_region(const struct vuiso_dev *dev, unsigned index,
				   struct vuiso_region_info *info);

/**
 * vuiso_dev_num_regions() - number of isolated regions (currently always 1).
 * @dev: the device.
 *
 * Control path, any thread.
 */
VUISO_API unsigned vuiso_dev_num_regions(const struct vuiso_dev *dev);

/** One range of guest RAM. */
struct vuiso_mem_region {
	/** Guest physical address of the first byte. */
	uint64_t gpa;
	/** Length in bytes, not zero. */
	uint64_t size;
	/** Where the VMM has that range mapped. */
	void *hva;
};

/**
 * vuiso_dev_set_guest_memory() - replace the guest memory map.
 * @dev: the device.
 * @regions: ranges of guest RAM; copied.  May be in any order; must not
 *           overlap or wrap.
 * @n: number of ranges, 0 to VUISO_MAX_MEM_REGIONS.
 *
 * Publishes the new map with RCU; data-path calls that run concurrently on
 * other threads finish with the map they started with, and the old map is
 * freed once they have.  A request in flight re-translates its guest
 * addresses at completion, so a range removed here is never written after
 * this returns; a request whose buffers are no longer mapped at completion
 * breaks its queue.
 *
 * Control path, any thread except from inside a libvuiso callback.  Blocks
 * until concurrent data-path calls have left the old map.
 *
 * Return: 0, -EINVAL for bad ranges (overlap, zero size, wrap, NULL hva), or
 * -ENOMEM.
 */
VUISO_API int vuiso_dev_set_guest_memory(struct vuiso_dev *dev,
					 const struct vuiso_mem_region *regions,
					 size_t n);

#define VUISO_MAX_MEM_REGIONS 512

/**
 * vuiso_dev_set_logging() - turn dirty logging of guest writes on or off.
 * @dev: the device.
 * @on: non-zero to call ops->log_write for every guest write.
 *
 * Under isolation only the VMM writes guest RAM, so it logs for migration.
 * Takes effect for data-path calls that start after it returns.
 *
 * Control path, any thread.
 */
VUISO_API void vuiso_dev_set_logging(struct vuiso_dev *dev, int on);

/**
 * vuiso_dev_get_vq() - the virtqueue object for queue @qidx.
 * @dev: the device.
 * @qidx: 0 to num_queues - 1.
 *
 * Return: the queue, or NULL for a bad index.  Valid until vuiso_dev_free().
 */
VUISO_API struct vuiso_vq *vuiso_dev_get_vq(struct vuiso_dev *dev,
					    unsigned qidx);

/**
 * struct vuiso_vq_config - a guest virtqueue to shadow.
 */
struct vuiso_vq_config {
	/** Set to VUISO_VQ_CONFIG_VERSION. */
	uint32_t version;
	/** Layout of the guest's ring, enum vuiso_layout: VUISO_LAYOUT_PACKED
	 *  exactly when @guest_features has VUISO_F_RING_PACKED. */
	uint32_t layout;
	/** Queue size: power of two, 1 to the device's queue_size_max (both
	 *  layouts; packed rings of other sizes are refused). */
	uint32_t size;
	/** Guest physical address of the descriptor table (packed: the
	 *  descriptor ring). */
	uint64_t desc_gpa;
	/** Guest physical address of the driver area (split: avail ring;
	 *  packed: driver event suppression structure). */
	uint64_t avail_gpa;
	/** Guest physical address of the device area (split: used ring;
	 *  packed: device event suppression structure). */
	uint64_t used_gpa;
	/** Features negotiated with the guest driver. */
	uint64_t guest_features;
	/** Features negotiated with the back-end.  The shadow ring is packed
	 *  exactly when this has VUISO_F_RING_PACKED. */
	uint64_t backend_features;
	/** Next guest avail index to consume (VHOST_USER_SET_VRING_BASE).
	 *  Packed: position | avail wrap counter << 15 (VUISO_PACKED_WRAP for
	 *  a fresh queue).  vuiso_vq_config_set_base() decodes the message. */
	uint16_t avail_idx;
	/** Next guest used index to write; equal to @avail_idx after a clean
	 *  stop.  Packed: position | used wrap counter << 15. */
	uint16_t used_idx;
};

#define VUISO_VQ_CONFIG_VERSION 1

/**
 * vuiso_vq_config_set_base() - take the guest indices from a
 * VHOST_USER_SET_VRING_BASE value.
 * @cfg: the config; @cfg->layout must be set first.
 * @num: the message's value.  Split: the avail index in bits 0-15 (the used
 *       index is taken equal to it).  Packed: bits 0-14 avail position, 15
 *       avail wrap counter, 16-30 used position, 31 used wrap counter, as
 *       QEMU and DPDK encode it.
 *
 * Sets @cfg->avail_idx and @cfg->used_idx.  A VMM that knows the guest's used
 * index otherwise (split: from the used ring) may overwrite @cfg->used_idx.
 *
 * Control path, any thread.
 */
VUISO_API void vuiso_vq_config_set_base(struct vuiso_vq_config *cfg,
					uint32_t num);

/**
 * struct vuiso_vq_shadow - the shadow ring, as the back-end must see it.
 *
 * VHOST_USER_SET_VRING_ADDR carries the *_backend addresses: in the
 * synthetic user-address space of the region (vuiso_region_info.user_addr,
 * equal to the back-end's own view), so no VMM address reaches the
 * back-end.  The *_addr ones are where the VMM has the rings mapped, for
 * its own use.  The shadow ring always starts fresh:
 * VHOST_USER_SET_VRING_BASE @vring_base.
 */
struct vuiso_vq_shadow {
	/** Queue size for VHOST_USER_SET_VRING_NUM. */
	uint32_t size;
	/** Layout of the shadow ring, enum vuiso_layout. */
	uint32_t layout;
	/** Value for VHOST_USER_SET_VRING_BASE: 0 for split, position 0 with
	 *  both wrap counters set (0x80008000) for packed. */
	uint32_t vring_base;
	/** Descriptor table (packed: descriptor ring), VMM address. */
	uint64_t desc_addr;
	/** Driver area (packed: driver event suppression), VMM address. */
	uint64_t avail_addr;
	/** Device area (packed: device event suppression), VMM address. */
	uint64_t used_addr;
	/** Same three in the back-end's view, which is also the user-address
	 *  space the region is registered with: what SET_VRING_ADDR sends. */
	uint64_t desc_backend;
	uint64_t avail_backend;
	uint64_t used_backend;
};

/**
 * vuiso_vq_start() - start shadowing a guest virtqueue.
 * @vq: a stopped queue.
 * @cfg: the guest ring; copied.
 * @shadow: out, the shadow ring to give the back-end; may be NULL.
 *
 * Resets the shadow ring and the bounce pool, checks that the guest rings
 * are mapped in the current guest memory map, and makes the queue ready for
 * vuiso_vq_kick_from_guest().  It then rewrites the guest's notification
 * suppression (an earlier run may have left kicks off) and takes the chains
 * the guest already made available, for which it will not kick: like a
 * vuiso_vq_kick_from_guest(), this may call ops->kick_backend (harmless
 * before the back-end has the ring: an eventfd keeps the count) and, for a
 * guest that breaks the rules, ops->error.  The VMM then sends the back-end
 * SET_VRING_NUM, SET_VRING_BASE @shadow->vring_base, SET_VRING_ADDR with
 * the *_backend addresses of @shadow, and enables the ring.
 *
 * Control path, on the thread that will drive the queue.
 *
 * Return: 0, -EBUSY if the queue is running, -EINVAL for a bad config,
 * -ENOTSUP for an unsupported layout or features, -EFAULT if a guest ring is
 * not mapped.
 */
VUISO_API int vuiso_vq_start(struct vuiso_vq *vq,
			     const struct vuiso_vq_config *cfg,
			     struct vuiso_vq_shadow *shadow);

/**
 * vuiso_vq_kick_from_guest() - the guest notified the queue.
 * @vq: a started queue.
 *
 * Takes available guest chains, validates them, copies their device-readable
 * bytes into bounce buffers, publishes shadow chains and kicks the back-end
 * once if it wants a kick.  Stops early, without losing anything, when the
 * bounce pool or the shadow ring is full; the work resumes on completion.
 *
 * Data path.
 *
 * Return: 0 when no guest work is left (or the queue waits for
 * completions), 1 when the budget ran out with guest work left (call again
 * later), -EIO if the queue is broken, -EINVAL if it is not started.
 */
VUISO_API int vuiso_vq_kick_from_guest(struct vuiso_vq *vq);

/**
 * vuiso_vq_call_from_backend() - the back-end notified the queue.
 * @vq: a started queue.
 *
 * Takes used shadow entries, validates each against the in-flight table,
 * copies min(len, writable bytes) back into the guest buffers, puts the
 * guest's used entries and notifies the guest once if it wants an
 * interrupt.  If guest work waited for bounce space, it resumes here.
 *
 * Data path.
 *
 * Return: 0 when no work is left, 1 when the budget ran out with work left
 * (call again later; with dirty logging on this also happens when the call
 * has gathered as many logged ranges as it keeps), -EIO if the queue is
 * broken, -EINVAL if it is not started.
 */
VUISO_API int vuiso_vq_call_from_backend(struct vuiso_vq *vq);

/** Guest ring state handed back when a queue stops. */
struct vuiso_vq_state {
	/** Next guest avail index (packed: position | wrap counter << 15). */
	uint16_t avail_idx;
	/** Next guest used index (packed: position | wrap counter << 15). */
	uint16_t used_idx;
	/** The VHOST_USER_GET_VRING_BASE answer for the guest side: split:
	 *  @avail_idx; packed: @avail_idx | @used_idx << 16. */
	uint32_t vring_base;
	/** Requests still in flight in the back-end (0 after a clean stop). */
	uint32_t inflight;
};

/**
 * vuiso_vq_stop() - stop taking guest requests and drain the back-end.
 * @vq: the queue.
 * @timeout_ms: how long to wait for the back-end, polling the shadow used
 *              ring; 0 polls once.
 * @state: out, the guest indices to hand back; may be NULL.
 *
 * Completes every request the back-end finishes within the bound to the
 * guest.  On a timeout the queue stays stopped with its requests in flight:
 * a later vuiso_vq_stop() can still complete them, vuiso_vq_reset() drops
 * them.
 *
 * Control path, on the thread that drives the queue.  Blocks up to
 * @timeout_ms.
 *
 * On a queue detached with vuiso_vq_detach() there is no back-end to wait
 * for: it returns at once, -ETIMEDOUT while requests are kept.
 *
 * Return: 0 when nothing is left in flight, -ETIMEDOUT when requests are
 * still in flight, -EIO if the queue is broken (@state still filled).
 */
VUISO_API int vuiso_vq_stop(struct vuiso_vq *vq, unsigned timeout_ms,
			    struct vuiso_vq_state *state);

/**
 * vuiso_vq_stop_begin() - first half of a stop that never waits on the
 * back-end.
 * @vq: a started queue.
 *
 * Stops taking guest requests and completes to the guest what the back-end
 * has already used.  The back-end is asked for no more calls on the shadow
 * ring: what is left is polled (vuiso_vq_call_from_backend() on a timer, or
 * vuiso_vq_stop() with a timeout), since a back-end may close its call
 * eventfd at GET_VRING_BASE (libvhost-user does, and fails hard if a
 * request it completes later writes it).  The VMM then stops the
 * back-end's ring (VHOST_USER_GET_VRING_BASE) and passes the answer to
 * vuiso_vq_stop_finish().  A back-end that is gone needs no answer:
 * vuiso_vq_detach() keeps its requests instead.
 *
 * Control path, on the thread that drives the queue; never sleeps.
 *
 * Return: the number of requests in flight, -EIO if the queue is broken,
 * -EINVAL if it is not started.
 */
VUISO_API int vuiso_vq_stop_begin(struct vuiso_vq *vq);

/**
 * vuiso_vq_stop_finish() - second half: settle with the back-end's index.
 * @vq: a queue after vuiso_vq_stop_begin().
 * @backend_base: the back-end's VHOST_USER_GET_VRING_BASE answer for the
 *                shadow ring, the next entry it would have taken (split:
 *                its avail index; packed: position | wrap counter << 15 in
 *                bits 0-15).
 * @state: out, the guest indices; may be NULL.
 *
 * Completes what the back-end used before its ring stopped, and hands every
 * request it never took back to the guest: those are the newest the guest
 * made available, so the guest's avail index moves back over them and the
 * next vuiso_vq_start() from @state reads them again.  What is left is what
 * the back-end took and has not completed.  Some back-ends finish their
 * requests before they answer GET_VRING_BASE; others may complete later, or
 * never (gone, or a net back-end holding receive buffers).  For those the
 * VMM chooses: wait from its event loop, polling (calls are off since
 * vuiso_vq_stop_begin(); vuiso_vq_call_from_backend() still completes
 * them; then vuiso_vq_stop(@vq, 0, ...) ends the stop), keep them
 * for the next back-end (vuiso_vq_detach()), or drop them
 * (vuiso_vq_reset()).  Nothing here waits.
 *
 * Control path, on the thread that drives the queue; never sleeps.
 *
 * Return: 0 when nothing is left in flight (the queue is stopped and
 * @state holds the guest indices for the guest side's GET_VRING_BASE), the
 * number of requests taken and not completed (> 0), -EIO if the queue is
 * broken (also for a @backend_base that cannot be an index of the shadow
 * ring: the violation is reported), -EINVAL if no stop was begun.  @state
 * is filled in every case but -EINVAL.
 */
VUISO_API int vuiso_vq_stop_finish(struct vuiso_vq *vq, uint32_t backend_base,
				   struct vuiso_vq_state *state);

/**
 * vuiso_vq_detach() - the back-end went away: keep its requests for the next.
 * @vq: a started queue (running, or stopping after a stop that timed out).
 *
 * For a back-end that crashed or is being restarted.  Every request that
 * was forwarded and not completed stays in the library's private table,
 * with the guest addresses it was popped with; the shadow ring is given up.
 * Until vuiso_vq_attach(), vuiso_vq_kick_from_guest() only notes that the
 * guest has work (returns 0, forwards nothing) and
 * vuiso_vq_call_from_backend() returns -EINVAL.  This needs no support from
 * the back-end (no VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD).
 *
 * Control path, on the thread that drives the queue.
 *
 * Return: the number of requests kept, -EINVAL if the queue is not started
 * or already detached, -EIO if it is broken.
 */
VUISO_API int vuiso_vq_detach(struct vuiso_vq *vq);

/**
 * vuiso_vq_attach() - give a new back-end the queue and replay what the old
 * one left unfinished.
 * @vq: a detached queue.
 * @backend_features: what was negotiated with the new back-end (its
 *                    RING_PACKED bit chooses the shadow layout, its
 *                    EVENT_IDX bit the shadow's notifications).
 * @shadow: out, the fresh shadow ring for the new back-end.
 *
 * Resets the shadow ring and forwards the kept requests again, in their
 * original order and before any new one: device-readable bytes are copied
 * again from guest RAM (the old back-end could have written the bounce
 * buffers), device-writable buffers are handed over again.  Then the queue
 * runs as after vuiso_vq_start(), guest work that arrived meanwhile
 * included.  The guest sees every request complete exactly once, but a
 * replay repeats what the old back-end may already have done: a block write
 * is written twice, a read read twice, a net packet may be sent twice.  The
 * VMM decides per device whether that is acceptable; vuiso_vq_reset() drops
 * the kept requests instead (the guest never sees them complete, as with
 * any vhost-user back-end that dies).
 *
 * Control path, on the thread that drives the queue.  May call
 * ops->kick_backend (harmless before the back-end has the ring: an eventfd
 * keeps the count) and, if a kept request's buffers left guest memory,
 * ops->error.
 *
 * Return: the number of requests replayed, -EINVAL if the queue is not
 * detached, -ENOTSUP for unsupported @backend_features, -EIO if the
 * queue broke during the replay.
 */
VUISO_API int vuiso_vq_attach(struct vuiso_vq *vq, uint64_t backend_features,
			      struct vuiso_vq_shadow *shadow);

/**
 * vuiso_vq_reset() - forget the queue: drop in-flight requests, clear the
 * broken state, free every bounce buffer and zero the bounce pool.
 * @vq: the queue.
 *
 * Used on device reset; the queue is stopped afterwards.  Nothing a request
 * before the reset left in the pool can reach a guest buffer after it.
 *
 * Control path, on the thread that drives the queue.
 */
VUISO_API void vuiso_vq_reset(struct vuiso_vq *vq);

/** Counters of one queue. */
struct vuiso_vq_stats {
	/** Guest chains forwarded to the back-end. */
	uint64_t requests;
	/** Requests completed to the guest. */
	uint64_t completions;
	/** Bytes copied guest -> region. */
	uint64_t bytes_out;
	/** Bytes copied region -> guest. */
	uint64_t bytes_in;
	/** Times the queue waited for bounce space or shadow descriptors. */
	uint64_t backpressure;
	/** Back-end kicks and guest notifications sent. */
	uint64_t backend_kicks;
	uint64_t guest_notifies;
	/** Requests in flight now. */
	uint32_t inflight;
	/** Non-zero if the queue is broken. */
	uint32_t broken;
};

/**
 * vuiso_vq_get_stats() - read the queue's counters.
 * @vq: the queue.
 * @stats: out.
 *
 * Call on the thread that drives the queue (or when it is idle).
 */
VUISO_API void vuiso_vq_get_stats(const struct vuiso_vq *vq,
				  struct vuiso_vq_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* VUISO_VUISO_H */
