// SPDX-License-Identifier: MIT
/*
 * Guest memory map: an immutable sorted table of guest RAM ranges.
 *
 * The device publishes a new table with RCU whenever the VMM replaces the
 * map (see dev.c); data-path calls look ranges up lock-free inside one read
 * side critical section.  Lookups go through a per-call hint because
 * consecutive buffers of a request almost always lie in the same range.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int cmp_gpa(const void *a, const void *b)
{
	const struct vuiso_mem_region *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

int vuiso_memmap_new(const struct vuiso_mem_region *regions, size_t n,
		     struct vuiso_memmap **out)
{
	struct vuiso_memmap *m;

	if (n > VUISO_MAX_MEM_REGIONS || (n && !regions))
		return -EINVAL;
	/* r[0] always exists, an empty range when n is 0, so that the
	 * inline lookup can read the hinted range without a bound check. */
	m = calloc(1, sizeof(*m) + (n ? n : 1) * sizeof(m->r[0]));
	if (!m)
		return -ENOMEM;
	m->n = n;
	if (n)
		memcpy(m->r, regions, n * sizeof(m->r[0]));
	qsort(m->r, n, sizeof(m->r[0]), cmp_gpa);
	for (size_t i = 0; i < n; i++) {
		const struct vuiso_mem_region *r = &m->r[i];

		if (!r->size || !r->hva || r->size - 1 > UINT64_MAX - r->gpa ||
		    r->size - 1 > UINTPTR_MAX - (uintptr_t)r->hva)
			goto bad;
		if (i && m->r[i - 1].gpa + (m->r[i - 1].size - 1) >= r->gpa)
			goto bad;
	}
	*out = m;
	return 0;
bad:
	free(m);
	return -EINVAL;
}

const struct vuiso_mem_region *vuiso_memmap_find(const struct vuiso_memmap *m,
						 uint64_t gpa, size_t *hint)
{
	size_t lo = 0, hi = m->n;

	if (likely(*hint < m->n)) {
		const struct vuiso_mem_region *r = &m->r[*hint];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct vuiso_mem_region *r = &m->r[mid];

		if (gpa < r->gpa) {
			hi = mid;
		} else if (gpa - r->gpa >= r->size) {
			lo = mid + 1;
		} else {
			*hint = mid;
			return r;
		}
	}
	return NULL;
}

void *vuiso_memmap_contig(const struct vuiso_memmap *m, uint64_t gpa,
			  uint64_t len, size_t *hint)
{
	const struct vuiso_mem_region *r = vuiso_memmap_find(m, gpa, hint);
	uint64_t off;

	if (!r)
		return NULL;
	off = gpa - r->gpa;
	if (len > r->size - off)
		return NULL;
	return (uint8_t *)r->hva + off;
}

enum memmap_op { MEMMAP_CHECK, MEMMAP_READ, MEMMAP_WRITE };

/*
 * The one walker behind check, read and write: visits [@gpa, @gpa + @len)
 * range by range, so a buffer that spans two adjacent RAM ranges (whose host
 * mappings need not be adjacent) is handled piece by piece.
 */
static int memmap_walk(const struct vuiso_memmap *m, uint64_t gpa, uint8_t *buf,
		       uint64_t len, size_t *hint, enum memmap_op op)
{
	uint64_t done = 0;

	if (len && len - 1 > UINT64_MAX - gpa)
		return -EFAULT;
	while (done < len) {
		const struct vuiso_mem_region *r =
			vuiso_memmap_find(m, gpa + done, hint);
		uint64_t off, n;
		uint8_t *host;

		if (!r)
			return -EFAULT;
		off = gpa + done - r->gpa;
		n = r->size - off;
		if (n > len - done)
			n = len - done;
		host = (uint8_t *)r->hva + off;
		if (op == MEMMAP_READ)
			memcpy(buf + done, host, n);
		else if (op == MEMMAP_WRITE)
			memcpy(host, buf + done, n);
		done += n;
	}
	return 0;
}

int vuiso_memmap_check(const struct vuiso_memmap *m, uint64_t gpa, uint64_t len,
		       size_t *hint)
{
	return memmap_walk(m, gpa, NULL, len, hint, MEMMAP_CHECK);
}

int vuiso_memmap_read(const struct vuiso_memmap *m, uint64_t gpa, void *dst,
		      uint64_t len, size_t *hint)
{
	return memmap_walk(m, gpa, dst, len, hint, MEMMAP_READ);
}

int vuiso_memmap_write(const struct vuiso_memmap *m, uint64_t gpa,
		       const void *src, uint64_t len, size_t *hint)
{
	/* The walker only reads through @buf for a write. */
	return memmap_walk(m, gpa, (uint8_t *)(uintptr_t)src, len, hint,
			   MEMMAP_WRITE);
}
