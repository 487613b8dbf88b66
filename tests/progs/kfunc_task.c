/* Task lookup and release: bpf_task_from_pid() acquires, bpf_task_release()
 * releases.  Returns the pid of the task found (ctx->pid), -1 if none.
 * task->pid is read through a CO-RE relocation (vmlinux.h has
 * preserve_access_index), which the kernel applies from core_relos. */
#include "kfunc_common.h"

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

SEC("syscall")
int task_lookup(struct test_args *ctx)
{
	struct task_struct *task;
	int pid;

	task = bpf_task_from_pid(ctx->pid);
	if (!task)
		return -1;
	pid = task->pid;
	bpf_task_release(task);
	return pid;
}
