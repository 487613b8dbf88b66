/* Linking like libbpf: two entry programs share .text subprograms (a call
 * chain, a global subprogram, a hidden global one), one subprogram is
 * reached only through a bpf_loop() callback address, and subprograms use
 * global data.  With ctx->n = 10: link_a returns 45 + (1 + 7) * 3 = 69,
 * link_b returns (10 + 7) * 3 + 7 + 2 = 60. */
#include "kfunc_common.h"

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

__u64 scale = 3;
const volatile int bias = 7;

struct loop_ctx {
	int sum;
};

static __noinline int add_bias(int x)
{
	return x + bias;
}

static __noinline int triple(int x)
{
	return add_bias(x) * (int)scale;
}

static long loop_cb(__u64 i, void *data)
{
	struct loop_ctx *c = data;

	c->sum += i;
	return 0;
}

__noinline int global_sum(int n)
{
	struct loop_ctx c = { .sum = 0 };

	bpf_loop(n, loop_cb, &c, 0);
	return c.sum;
}

__attribute__((visibility("hidden"))) __noinline int hidden_twice(int x)
{
	return 2 * x;
}

SEC("syscall")
int link_a(struct test_args *ctx)
{
	int n = ctx->n;

	if (n < 0 || n > 100)
		return -1;
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return global_sum(n) + triple(1);
}

SEC("syscall")
int link_b(struct test_args *ctx)
{
	return triple(ctx->n) + add_bias(0) + hidden_twice(1);
}
