/* The number iterator (open-coded iterator kfuncs), called from a
 * bpf-to-bpf subprogram: sums 0..ctx->n-1 (45 for n = 10). */
#include "kfunc_common.h"

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

static __noinline int sum_below(int n)
{
	struct bpf_iter_num it;
	int *v, sum = 0;

	bpf_iter_num_new(&it, 0, n);
	while ((v = bpf_iter_num_next(&it)))
		sum += *v;
	bpf_iter_num_destroy(&it);
	return sum;
}

SEC("syscall")
int iter_sum(struct test_args *ctx)
{
	int n = ctx->n;

	if (n < 0 || n > 1000)
		return -1;
	return sum_below(n);
}
