/* SPDX-License-Identifier: MIT */
/*
 * vuiso-vmm: an example VMM that runs unmodified vhost-user back-ends
 * (qemu-storage-daemon, virtiofsd, dpdk-testpmd) with memory isolation
 * through libvuiso.
 *
 * Exit status: 0 success, 1 data mismatch / protocol or device error,
 * 2 usage error, 3 isolation proof failed.
 */
#include "vmm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_text[] =
	"usage: vuiso-vmm --socket=PATH [options]\n"
	"       vuiso-vmm --device=net [--socket=PATH] [options]\n"
	"\n"
	"  --socket=PATH         vhost-user back-end socket (required for\n"
	"                        blk and fs; net without it: the VMM starts\n"
	"                        dpdk-testpmd itself and stops it at the end)\n"
	"  --device=blk|fs|net   device type (default blk)\n"
	"  --isolation=on|off    on (default): the back-end sees only the\n"
	"                        libvuiso isolated region; off: guest RAM\n"
	"                        is shared with the back-end\n"
	"  --workload=NAME       blk: verify (default), randread,\n"
	"                        randwrite, seqread, seqwrite;\n"
	"                        fs: verify (default), read;\n"
	"                        net: verify (default), rate\n"
	"  --queues=N            request queues (default 1; net: queue\n"
	"                        pairs, each on its own thread)\n"
	"  --depth=N             requests in flight per queue (16; net:\n"
	"                        frames out per pair, default what the\n"
	"                        receive buffers can always take)\n"
	"  --queue-size=N        virtqueue size (default 256)\n"
	"  --bs=SIZE             benchmark block size (default 4k)\n"
	"  --min-bs=SIZE         smallest verify request (512)\n"
	"  --max-bs=SIZE         largest verify request (1M)\n"
	"  --ops=N               requests per queue (verify: 2000)\n"
	"  --time=SEC            run time limit (benchmarks: 5)\n"
	"  --mem=SIZE            guest RAM (default: what is needed)\n"
	"  --pool-size=SIZE      libvuiso bounce pool per queue (16M)\n"
	"  --budget=N            libvuiso chains per call (default: queue\n"
	"                        size); small values exercise the\n"
	"                        \"call again\" path\n"
	"  --fs-file-size=SIZE   fs read benchmark file (default 64M)\n"
	"  --image=PATH          blk: compare this image file at the end\n"
	"  --shared-dir=PATH     fs: check this host directory at the end\n"
	"  --require-features=L  fail unless the back-end offers these\n"
	"                        features (names or bit numbers, a,b,c)\n"
	"  --no-indirect         the guest driver uses no indirect tables\n"
	"  --no-event-idx        the guest driver does not use event idx\n"
	"  --no-mem-slots        SET_MEM_TABLE even if ADD_MEM_REG works\n"
	"  --guest-ring=L        the guest driver's ring layout: split\n"
	"                        (default) or packed (VIRTIO_F_RING_PACKED;\n"
	"                        isolated, libvuiso translates for a split\n"
	"                        back-end)\n"
	"  --backend-ring=L      the back-end's ring layout with isolation\n"
	"                        on: auto (default: packed only if guest and\n"
	"                        back-end both do packed), split, or packed\n"
	"                        (fails if the back-end does not offer it)\n"
	"  --backend-pid=PID     back-end for the isolation proof\n"
	"                        (default: the socket peer; after a\n"
	"                        --reconnect always the new socket peer)\n"
	"  --stall-timeout=SEC   fail if nothing completes (default 10)\n"
	"  --reconnect           blk, net with --socket; isolation on: when\n"
	"                        the back-end hangs up, keep its unfinished\n"
	"                        requests, connect again to the same socket\n"
	"                        (every 100 ms) and replay them to the new\n"
	"                        back-end (a write is written again, a read\n"
	"                        read again, a frame may be sent twice)\n"
	"  --reconnect-timeout=SEC  give up waiting for the new back-end\n"
	"                        after SEC seconds (default 10)\n"
	"  --frame=SIZE          net: frame bytes without the FCS, 60..1518\n"
	"                        (verify: random sizes; rate: 64)\n"
	"  --rx-buf=SIZE         net: bytes per receive buffer (default\n"
	"                        1536; verify with mergeable buffers: 512,\n"
	"                        so that frames span several)\n"
	"  --no-mrg-rxbuf        net: do not accept VIRTIO_NET_F_MRG_RXBUF\n"
	"  --net-fwd=io|macswap  net: what the back-end does to a frame\n"
	"                        before it sends it back (default io)\n"
	"  --testpmd=PATH        net: the dpdk-testpmd to start\n"
	"                        (default dpdk-testpmd; needs root)\n"
	"  --seed=N --quiet --help\n"
	"\n"
	"exit status: 0 ok, 1 data mismatch or device/protocol error,\n"
	"2 usage error, 3 isolation proof failed\n";

static const char *const type_names[] = {
	[VMM_DEV_BLK] = "blk",
	[VMM_DEV_FS] = "fs",
	[VMM_DEV_NET] = "net",
};

static void usage(FILE *f)
{
	fputs(usage_text, f);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

enum {
	OPT_SOCKET = 256,
	OPT_DEVICE,
	OPT_ISOLATION,
	OPT_WORKLOAD,
	OPT_QUEUES,
	OPT_DEPTH,
	OPT_QSIZE,
	OPT_BS,
	OPT_MINBS,
	OPT_MAXBS,
	OPT_OPS,
	OPT_TIME,
	OPT_MEM,
	OPT_POOL,
	OPT_FSFILE,
	OPT_IMAGE,
	OPT_SHARED,
	OPT_REQUIRE,
	OPT_NOIND,
	OPT_NOEVT,
	OPT_NOSLOTS,
	OPT_PID,
	OPT_STALL,
	OPT_SEED,
	OPT_QUIET,
	OPT_BUDGET,
	OPT_HELP,
	OPT_GUEST_RING,
	OPT_BACKEND_RING,
	OPT_RECONNECT,
	OPT_RECONNECT_TIMEOUT,
	OPT_FRAME,
	OPT_RXBUF,
	OPT_NOMRG,
	OPT_NETFWD,
	OPT_TESTPMD,
};

static const struct option long_opts[] = {
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"device", required_argument, NULL, OPT_DEVICE},
	{"isolation", required_argument, NULL, OPT_ISOLATION},
	{"workload", required_argument, NULL, OPT_WORKLOAD},
	{"queues", required_argument, NULL, OPT_QUEUES},
	{"depth", required_argument, NULL, OPT_DEPTH},
	{"queue-size", required_argument, NULL, OPT_QSIZE},
	{"bs", required_argument, NULL, OPT_BS},
	{"min-bs", required_argument, NULL, OPT_MINBS},
	{"max-bs", required_argument, NULL, OPT_MAXBS},
	{"ops", required_argument, NULL, OPT_OPS},
	{"time", required_argument, NULL, OPT_TIME},
	{"mem", required_argument, NULL, OPT_MEM},
	{"pool-size", required_argument, NULL, OPT_POOL},
	{"fs-file-size", required_argument, NULL, OPT_FSFILE},
	{"image", required_argument, NULL, OPT_IMAGE},
	{"shared-dir", required_argument, NULL, OPT_SHARED},
	{"require-features", required_argument, NULL, OPT_REQUIRE},
	{"no-indirect", no_argument, NULL, OPT_NOIND},
	{"no-event-idx", no_argument, NULL, OPT_NOEVT},
	{"no-mem-slots", no_argument, NULL, OPT_NOSLOTS},
	{"backend-pid", required_argument, NULL, OPT_PID},
	{"stall-timeout", required_argument, NULL, OPT_STALL},
	{"seed", required_argument, NULL, OPT_SEED},
	{"quiet", no_argument, NULL, OPT_QUIET},
	{"budget", required_argument, NULL, OPT_BUDGET},
	{"help", no_argument, NULL, OPT_HELP},
	{"guest-ring", required_argument, NULL, OPT_GUEST_RING},
	{"backend-ring", required_argument, NULL, OPT_BACKEND_RING},
	{"reconnect", no_argument, NULL, OPT_RECONNECT},
	{"reconnect-timeout", required_argument, NULL, OPT_RECONNECT_TIMEOUT},
	{"frame", required_argument, NULL, OPT_FRAME},
	{"rx-buf", required_argument, NULL, OPT_RXBUF},
	{"no-mrg-rxbuf", no_argument, NULL, OPT_NOMRG},
	{"net-fwd", required_argument, NULL, OPT_NETFWD},
	{"testpmd", required_argument, NULL, OPT_TESTPMD},
	{NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *val)
{
	fprintf(stderr, "vuiso-vmm: bad value '%s' for --%s\n", val, opt);
	return 2;
}

int main(int argc, char **argv)
{
	static struct vmm_dev dev;
	struct vmm_opts o = {
		.type = VMM_DEV_BLK,
		.isolation = true,
		.queues = 1,
		.depth = 16,
		.queue_size = 256,
		.bs = 4096,
		.min_bs = 512,
		.max_bs = 1 << 20,
		.pool_size = 16 << 20,
		.fs_file_size = 64 << 20,
		.stall_timeout_s = 10,
		.reconnect_timeout_s = 10,
		.testpmd = "dpdk-testpmd",
	};
	const char *require = NULL;
	bool ops_set = false, time_set = false;
	uint64_t v;
	int c, r;

	o.seed = (uint64_t)time(NULL);
	while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET:
			o.socket = optarg;
			break;
		case OPT_DEVICE:
			if (!strcmp(optarg, "blk"))
				o.type = VMM_DEV_BLK;
			else if (!strcmp(optarg, "fs"))
				o.type = VMM_DEV_FS;
			else if (!strcmp(optarg, "net"))
				o.type = VMM_DEV_NET;
			else
				return bad("device", optarg);
			break;
		case OPT_ISOLATION:
			if (!strcmp(optarg, "on"))
				o.isolation = true;
			else if (!strcmp(optarg, "off"))
				o.isolation = false;
			else
				return bad("isolation", optarg);
			break;
		case OPT_GUEST_RING:
			if (!strcmp(optarg, "split"))
				o.guest_ring = VIRTQ_LAYOUT_SPLIT;
			else if (!strcmp(optarg, "packed"))
				o.guest_ring = VIRTQ_LAYOUT_PACKED;
			else
				return bad("guest-ring", optarg);
			break;
		case OPT_BACKEND_RING:
			if (!strcmp(optarg, "auto"))
				o.backend_ring = VMM_BACKEND_RING_AUTO;
			else if (!strcmp(optarg, "split"))
				o.backend_ring = VMM_BACKEND_RING_SPLIT;
			else if (!strcmp(optarg, "packed"))
				o.backend_ring = VMM_BACKEND_RING_PACKED;
			else
				return bad("backend-ring", optarg);
			break;
		case OPT_WORKLOAD:
			o.workload = optarg;
			break;
		case OPT_IMAGE:
			o.image = optarg;
			break;
		case OPT_SHARED:
			o.shared_dir = optarg;
			break;
		case OPT_REQUIRE:
			require = optarg;
			break;
		case OPT_NOIND:
			o.no_indirect = true;
			break;
		case OPT_NOEVT:
			o.no_event_idx = true;
			break;
		case OPT_NOSLOTS:
			o.no_mem_slots = true;
			break;
		case OPT_QUIET:
			o.quiet = true;
			break;
		case OPT_RECONNECT:
			o.reconnect = true;
			break;
		case OPT_NOMRG:
			o.no_mrg_rxbuf = true;
			break;
		case OPT_NETFWD:
			if (!strcmp(optarg, "io"))
				o.macswap = false;
			else if (!strcmp(optarg, "macswap"))
				o.macswap = true;
			else
				return bad("net-fwd", optarg);
			break;
		case OPT_TESTPMD:
			o.testpmd = optarg;
			break;
		case OPT_TIME: {
			char *end;

			o.time_s = strtod(optarg, &end);
			if (*end || o.time_s < 0)
				return bad("time", optarg);
			time_set = true;
			break;
		}
		case 'h':
		case OPT_HELP:
			usage(stdout);
			return 0;
		case '?':
			usage(stderr);
			return 2;
		default:
			if (parse_size(optarg, &v) < 0)
				return bad(long_opts[c - OPT_SOCKET].name,
					   optarg);
			switch (c) {
			case OPT_QUEUES:
				o.queues = (unsigned)v;
				break;
			case OPT_DEPTH:
				o.depth = (unsigned)v;
				o.depth_set = true;
				break;
			case OPT_FRAME:
				o.frame = (uint32_t)v;
				break;
			case OPT_RXBUF:
				o.rx_buf = (uint32_t)v;
				break;
			case OPT_QSIZE:
				o.queue_size = (unsigned)v;
				break;
			case OPT_BS:
				o.bs = (uint32_t)v;
				break;
			case OPT_MINBS:
				o.min_bs = (uint32_t)v;
				break;
			case OPT_MAXBS:
				o.max_bs = (uint32_t)v;
				break;
			case OPT_OPS:
				o.ops = v;
				ops_set = true;
				break;
			case OPT_MEM:
				o.mem_size = v;
				break;
			case OPT_POOL:
				o.pool_size = v;
				break;
			case OPT_FSFILE:
				o.fs_file_size = v;
				break;
			case OPT_PID:
				o.backend_pid = (int)v;
				break;
			case OPT_STALL:
				o.stall_timeout_s = (unsigned)v;
				break;
			case OPT_SEED:
				o.seed = v;
				break;
			case OPT_BUDGET:
				o.budget = (uint32_t)v;
				break;
			case OPT_RECONNECT_TIMEOUT:
				if (v < 1 || v > 3600)
					return bad("reconnect-timeout", optarg);
				o.reconnect_timeout_s = (unsigned)v;
				break;
			}
		}
	}
	if ((!o.socket && o.type != VMM_DEV_NET) || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!o.workload)
		o.workload = "verify";
	if (o.depth < 1 || o.depth > 1024 || o.queue_size < 2 ||
	    o.queue_size > 32768 || (o.queue_size & (o.queue_size - 1))) {
		fprintf(stderr, "vuiso-vmm: bad --depth or --queue-size\n");
		return 2;
	}
	if (!strcmp(o.workload, "verify")) {
		if (!ops_set && !time_set)
			o.ops = o.type == VMM_DEV_NET ? 20000 : 2000;
	} else if (!time_set && !ops_set) {
		o.time_s = 5;
	}
	/* Only libvuiso's record of the requests in flight makes a restart
	 * lossless; and a new virtiofsd lacks the FUSE session (INIT, node
	 * ids, open files) that replayed requests refer to. */
	if (o.reconnect && !o.isolation) {
		fprintf(stderr,
			"vuiso-vmm: --reconnect needs --isolation=on: without libvuiso nothing keeps the requests a dead back-end had in flight (vhost-user-blk would need the back-end's VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)\n");
		return 2;
	}
	if (o.reconnect && o.type == VMM_DEV_NET && !o.socket) {
		fprintf(stderr,
			"vuiso-vmm: --reconnect for --device=net needs --socket: the back-end the VMM starts itself is not restarted\n");
		return 2;
	}
	if (o.reconnect && o.type == VMM_DEV_FS) {
		fprintf(stderr,
			"vuiso-vmm: --reconnect is for --device=blk and net: a new virtiofsd has none of the FUSE session state (INIT, node ids, open files) that replayed requests refer to\n");
		return 2;
	}
	if (require) {
		char *list = strdup(require), *save = NULL, *tok;

		for (tok = strtok_r(list, ",", &save); tok;
		     tok = strtok_r(NULL, ",", &save)) {
			int bit = vmm_feature_parse(o.type, tok);

			if (bit < 0) {
				free(list);
				return bad("require-features", tok);
			}
			o.require_features |= 1ULL << bit;
		}
		free(list);
	}
	signal(SIGPIPE, SIG_IGN);

	if (!o.quiet)
		fprintf(stderr,
			"vuiso-vmm: libvuiso %06x, %s device on %s, "
			"isolation %s, guest ring %s\n",
			vuiso_version(), type_names[o.type],
			o.socket ? o.socket : "a dpdk-testpmd of its own",
			o.isolation ? "on" : "off",
			o.guest_ring == VIRTQ_LAYOUT_PACKED ? "packed"
							    : "split");
	vmm_dev_init(&dev, &o);
	r = -EINVAL;
	switch (o.type) {
	case VMM_DEV_BLK:
		r = vmm_blk_run(&dev, &o);
		break;
	case VMM_DEV_FS:
		r = vmm_fs_run(&dev, &o);
		break;
	case VMM_DEV_NET:
		r = vmm_net_run(&dev, &o);
		break;
	}
	if (r == -EINVAL && !vmm_failed(&dev)) {
		vmm_dev_close(&dev);
		return 2;
	}
	if (vmm_failed(&dev)) {
		fprintf(stderr, "vuiso-vmm: FAILED: %s\n", dev.err);
		r = strstr(dev.err, "isolation proof failed") ? 3 : 1;
	} else if (r < 0) {
		fprintf(stderr, "vuiso-vmm: FAILED: %s\n", strerror(-r));
		r = 1;
	} else {
		printf("result: OK\n");
		r = 0;
	}
	vmm_dev_close(&dev);
	return r;
}
