/* Declares a real kfunc with an incompatible prototype (two parameters
 * where the kernel's bpf_task_from_pid takes one): name-only resolution
 * would accept it; sigbpf's prototype check must not. */
#include "kfunc_common.h"

extern struct task_struct *bpf_task_from_pid(s32 pid, s32 extra) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

SEC("syscall")
int bad_proto(struct test_args *ctx)
{
	struct task_struct *task = bpf_task_from_pid(ctx->pid, 0);

	if (!task)
		return -1;
	bpf_task_release(task);
	return 0;
}
