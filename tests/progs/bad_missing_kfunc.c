/* Calls a (strong) kfunc no kernel has: resolution must fail with ENOENT,
 * "kfunc call insn N: bpf_sigbpf_no_such_kfunc not found in vmlinux BTF". */
#include "kfunc_common.h"

extern int bpf_sigbpf_no_such_kfunc(int x) __ksym;

SEC("syscall")
int missing_kfunc(struct test_args *ctx)
{
	return bpf_sigbpf_no_such_kfunc(ctx->n);
}
