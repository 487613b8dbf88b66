/* A strong (non-weak) kfunc this kernel does not have: loading must fail with
 * the seed's "not found in vmlinux BTF" (ENOENT), before the kernel is asked. */
#include "kfunc_common.h"

extern void bpf_sigbpf_no_such_kfunc(void) __ksym;

SEC("syscall")
int missing_kfunc(struct test_args *ctx)
{
	bpf_sigbpf_no_such_kfunc();
	return 0;
}
