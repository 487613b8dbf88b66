/* Compiles against a vmlinux.h written by `sigbpf btf dump --format c`
 * (the header-acceptance test): kernel types with CO-RE field reads,
 * bitfields and nested anonymous members, and a kfunc call.  Built with
 * -DHAVE_BPF_CPUMASK for kernels that have struct bpf_cpumask (>= 6.3). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
#ifdef HAVE_BPF_CPUMASK
extern struct bpf_cpumask *bpf_cpumask_create(void) __ksym;
extern void bpf_cpumask_release(struct bpf_cpumask *cpumask) __ksym;
#endif

struct args {
	int pid;
};

SEC("syscall")
int use_header(struct args *ctx)
{
	struct task_struct *task = bpf_task_from_pid(ctx->pid);
	int ret = 0;

	if (!task)
		return -1;
	ret = task->pid + BPF_CORE_READ(task, real_parent, tgid);
	ret += task->comm[0] + (int)task->se.load.weight;
	ret += BPF_CORE_READ(task, mm, map_count);
	ret += sizeof(struct sk_buff) > 0;
	bpf_task_release(task);
#ifdef HAVE_BPF_CPUMASK
	{
		struct bpf_cpumask *mask = bpf_cpumask_create();

		if (mask)
			bpf_cpumask_release(mask);
	}
#endif
	return ret;
}

char LICENSE[] SEC("license") = "GPL";
