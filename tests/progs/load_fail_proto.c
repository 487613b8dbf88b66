/* A real kfunc declared with the wrong prototype (the kernel's is
 * `struct task_struct *bpf_task_from_pid(s32 pid)`; here it takes a pointer).
 * Resolution by name alone would accept it; sigbpf's prototype check refuses it. */
#include "kfunc_common.h"

extern struct task_struct *bpf_task_from_pid(struct test_args *args) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

SEC("syscall")
int bad_proto(struct test_args *ctx)
{
	struct task_struct *task = bpf_task_from_pid(ctx);

	if (task)
		bpf_task_release(task);
	return 0;
}
