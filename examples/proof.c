/* SPDX-License-Identifier: MIT */
/*
 * The isolation proof: what the back-end maps (/proc/PID/maps) and every fd
 * the front-end ever passed it (vhost_user.c records each at send time),
 * checked against the guest RAM memfd and libvuiso's isolated region.  With
 * --isolation=off the same check reports guest RAM as mapped, so it is
 * shown to be able to fail.
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

int vmm_isolation_proof(struct vmm_dev *dev)
{
	unsigned ram_maps = 0, region_maps = 0, mem_fds = 0, ram_fds = 0,
		 region_fds = 0, eventfds = 0, other_fds = 0;
	struct stat ram_st, region_st = {0};
	char path[64], line[1024];
	pid_t pid = dev->vu.peer_pid;
	bool have_region = false, pass;
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
	if (dev->opts->isolation) {
		pass = ram_maps == 0 && ram_fds == 0 && mem_fds > 0 &&
		       region_fds == mem_fds && other_fds == 0 &&
		       region_maps > 0;
		printf("  ISOLATION %s: %s\n", pass ? "PASS" : "FAIL",
		       pass ? "the back-end maps only the isolated region "
			      "and never received a guest RAM fd"
			    : "the back-end can see memory other than the "
			      "isolated region");
		return pass ? 0 : -EPERM;
	}
	printf("  isolation off: guest RAM %s by the back-end (expected for "
	       "--isolation=off)\n",
	       ram_maps > 0 ? "IS MAPPED" : "is not mapped");
	return 0;
}
