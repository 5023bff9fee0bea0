/* SPDX-License-Identifier: MIT */
/*
 * The isolation proof: what the back-end maps (/proc/PID/maps) and every fd
 * the front-end ever passed it (vhost_user.c records each at send time),
 * checked against the guest RAM memfd and libvuiso's isolated region; and
 * every address of every message sent (vhost_user.c records them), checked
 * against this process's own mappings (/proc/self/maps): under isolation
 * no VMM address reaches the back-end, so it learns nothing of where the
 * VMM's memory lies.  With
 * --isolation=off the same checks report guest RAM as mapped and its host
 * address as sent, so they are shown to be able to fail.
 */
#include "vmm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static bool same_file(const struct vmm_vu_sent_fd *s, const struct stat *st)
{
	return s->dev == st->st_dev && s->ino == st->st_ino;
}

/*
 * How many of the addresses sent lie inside one of our own mappings;
 * prints the first few.  Mappings with no access at all are address-space
 * reservations (a sanitizer's shadow gap): nothing lies there to learn
 * about.  -errno if the maps cannot be read.
 */
static int vmm_addresses_sent(const struct vmm_vu *vu)
{
	char line[1024];
	unsigned hits = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s", &start, &end, perms) != 3 ||
		    !strncmp(perms, "---", 3))
			continue;
		for (unsigned i = 0; i < vu->n_addrs; i++) {
			uint64_t v = vu->addrs[i].value;

			if (v < start || v >= end)
				continue;
			if (hits++ < 3)
				printf("  %s carried 0x%llx, inside VMM mapping %.*s\n",
				       vmm_vu_request_name(
					       vu->addrs[i].request),
				       (unsigned long long)v,
				       (int)strcspn(line, "\n"), line);
		}
	}
	fclose(f);
	return (int)hits;
}

int vmm_isolation_proof(struct vmm_dev *dev)
{
	unsigned ram_maps = 0, region_maps = 0, mem_fds = 0, ram_fds = 0,
		 region_fds = 0, eventfds = 0, other_fds = 0;
	struct stat ram_st, region_st = {0};
	char path[64], line[1024];
	pid_t pid = dev->vu.peer_pid;
	bool have_region = false, pass, addr_pass;
	int addr_hits;
	FILE *f;

	if (fstat(dev->mem.fd, &ram_st) < 0)
		return -errno;
	if (dev->iso) {
		struct vuiso_region_info info;

		if (vuiso_dev_get_region(dev->iso, 0, &info) == 0 &&
		    fstat(info.fd, &region_st) == 0)
			have_region = true;
	}

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = pid > 0 ? fopen(path, "r") : NULL;
	if (!f) {
		printf("isolation proof: cannot read %s: %s\n", path,
		       strerror(errno));
		return -ENOENT;
	}
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "/memfd:" VMM_GUEST_RAM_NAME))
			ram_maps++;
		if (strstr(line, "/memfd:vuiso-isolated"))
			region_maps++;
	}
	fclose(f);

	for (unsigned i = 0; i < dev->vu.n_sent; i++) {
		const struct vmm_vu_sent_fd *s = &dev->vu.sent[i];

		if (s->request == VMM_VU_SET_MEM_TABLE ||
		    s->request == VMM_VU_ADD_MEM_REG) {
			mem_fds++;
			if (same_file(s, &ram_st))
				ram_fds++;
			else if (have_region && same_file(s, &region_st))
				region_fds++;
		} else if (!strcmp(s->kind, "anon_inode:[eventfd]")) {
			eventfds++;
		} else {
			other_fds++;
		}
	}

	printf("isolation proof (back-end pid %d, %s):\n", (int)pid, path);
	printf("  guest RAM memfd '%s' mappings in back-end: %u\n",
	       VMM_GUEST_RAM_NAME, ram_maps);
	printf("  isolated region memfd 'vuiso-isolated' mappings in "
	       "back-end: %u\n",
	       region_maps);
	printf("  fds sent: %u memory fd(s) [%u isolated region, %u guest "
	       "RAM, %u other], %u eventfd(s), %u other fd(s)\n",
	       mem_fds, region_fds, ram_fds, mem_fds - region_fds - ram_fds,
	       eventfds, other_fds);
	addr_hits = vmm_addresses_sent(&dev->vu);
	printf("  addresses sent in messages: %u (%u not recorded), %d inside VMM mappings\n",
	       dev->vu.n_addrs, dev->vu.addrs_lost, addr_hits);
	if (dev->opts->isolation) {
		pass = ram_maps == 0 && ram_fds == 0 && mem_fds > 0 &&
		       region_fds == mem_fds && other_fds == 0 &&
		       region_maps > 0;
		printf("  ISOLATION %s: %s\n", pass ? "PASS" : "FAIL",
		       pass ? "the back-end maps only the isolated region "
			      "and never received a guest RAM fd"
			    : "the back-end can see memory other than the "
			      "isolated region");
		addr_pass = addr_hits == 0 && !dev->vu.addrs_lost;
		printf("  ADDRESSES %s: %s\n", addr_pass ? "PASS" : "FAIL",
		       addr_pass
			       ? "no value sent to the back-end lies in a VMM mapping"
			       : "the back-end was sent a VMM address (or not every word was checked)");
		return pass && addr_pass ? 0 : -EPERM;
	}
	printf("  isolation off: guest RAM %s by the back-end (expected for "
	       "--isolation=off)\n",
	       ram_maps > 0 ? "IS MAPPED" : "is not mapped");
	printf("  isolation off: %d VMM address(es) sent (expected for --isolation=off: the memory table and rings carry host addresses)\n",
	       addr_hits);
	return 0;
}
