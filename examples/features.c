/* SPDX-License-Identifier: MIT */
/*
 * Names of virtio feature bits, for the harness's messages and for
 * --require-features (VIRTIO 1.2, 6 and 5.2.3 / 5.11.3).
 */
#include "vmm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct feature_name {
	unsigned bit;
	const char *name;
};

static const struct feature_name common_features[] = {
	{24, "notify-on-empty"},
	{27, "any-layout"},
	{28, "indirect-desc"},
	{29, "event-idx"},
	{30, "protocol-features"},
	{32, "version-1"},
	{33, "access-platform"},
	{34, "ring-packed"},
	{35, "in-order"},
	{36, "order-platform"},
	{37, "sr-iov"},
	{38, "notification-data"},
	{40, "ring-reset"},
};

static const struct feature_name blk_features[] = {
	{1, "size-max"},  {2, "seg-max"},       {4, "geometry"},
	{5, "ro"},        {6, "blk-size"},      {9, "flush"},
	{10, "topology"}, {11, "config-wce"},   {12, "mq"},
	{13, "discard"},  {14, "write-zeroes"},
};

static const struct feature_name fs_features[] = {
	{0, "notification"},
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct feature_name *dev_features(enum vmm_device_type type,
					       size_t *n)
{
	if (type == VMM_DEV_BLK) {
		*n = ARRAY_SIZE(blk_features);
		return blk_features;
	}
	*n = ARRAY_SIZE(fs_features);
	return fs_features;
}

const char *vmm_feature_name(enum vmm_device_type type, unsigned bit)
{
	const struct feature_name *t;
	size_t n;

	t = dev_features(type, &n);
	for (size_t i = 0; i < n; i++)
		if (t[i].bit == bit)
			return t[i].name;
	for (size_t i = 0; i < ARRAY_SIZE(common_features); i++)
		if (common_features[i].bit == bit)
			return common_features[i].name;
	return "unnamed";
}

int vmm_feature_parse(enum vmm_device_type type, const char *name)
{
	const struct feature_name *t;
	char *end;
	size_t n;
	long v;

	t = dev_features(type, &n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(t[i].name, name))
			return (int)t[i].bit;
	for (size_t i = 0; i < ARRAY_SIZE(common_features); i++)
		if (!strcmp(common_features[i].name, name))
			return (int)common_features[i].bit;
	v = strtol(name, &end, 0);
	if (*name && !*end && v >= 0 && v < 64)
		return (int)v;
	return -EINVAL;
}
