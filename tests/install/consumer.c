// SPDX-License-Identifier: MIT
/* A program outside the tree, built with `pkg-config --cflags --libs vuiso`. */
#include <stdio.h>

#include <vuiso/vuiso.h>

int main(void)
{
	static const struct vuiso_ops ops = {.version = VUISO_OPS_VERSION};
	struct vuiso_dev_config cfg = {
		.version = VUISO_DEV_CONFIG_VERSION,
		.num_queues = 1,
		.region_fd = -1,
		.ops = &ops,
	};
	struct vuiso_region_info ri;
	struct vuiso_dev *dev;
	int ret = vuiso_dev_new(&cfg, &dev);

	if (ret) {
		fprintf(stderr, "vuiso_dev_new: %d\n", ret);
		return 1;
	}
	vuiso_dev_get_region(dev, 0, &ri);
	printf("libvuiso %06x: region of %llu bytes at back-end address "
	       "0x%llx\n",
	       vuiso_version(), (unsigned long long)ri.size,
	       (unsigned long long)ri.backend_addr);
	vuiso_dev_free(dev);
	return 0;
}
