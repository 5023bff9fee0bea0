// SPDX-License-Identifier: MIT
/*
 * Layout-neutral pieces of the ring layer that stay out of line.
 */
#include <stdarg.h>
#include <stdio.h>

#include "vring.h"

int vring_bad(char *why, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, VUISO_ERRMSG_MAX, fmt, ap);
	va_end(ap);
	return err;
}
