/* A loader that fails late: its maps (a hash map, global data) are created
 * first, then its second program calls a (strong) kfunc no kernel has, so
 * the loader's lookup fails with -ENOENT and its cleanup must close every
 * fd it opened (tests/test_loader_own_kfuncs.py). */
#include "kfunc_common.h"

extern int bpf_sigbpf_no_such_kfunc(int x) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, int);
	__type(value, long);
} seen SEC(".maps");

long total = 1;

SEC("syscall")
int count(struct test_args *ctx)
{
	int pid = ctx->pid;
	long one = 1;

	bpf_map_update_elem(&seen, &pid, &one, BPF_ANY);
	return total;
}

SEC("syscall")
int missing_kfunc(struct test_args *ctx)
{
	return bpf_sigbpf_no_such_kfunc(ctx->n);
}
