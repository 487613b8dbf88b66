/* Declares bpf_task_from_pid(u64) where the kernel has (s32): compatible by
 * libbpf's rules (ints match any int) but a strict-mode warning (size and
 * signedness differ).  Loads and runs like kfunc_task. */
#include "kfunc_common.h"

extern struct task_struct *bpf_task_from_pid(u64 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

SEC("syscall")
int strict_proto(struct test_args *ctx)
{
	struct task_struct *task = bpf_task_from_pid(ctx->pid);

	if (!task)
		return -1;
	bpf_task_release(task);
	return 1;
}
