/* The bundled example: a BPF_PROG_TYPE_SYSCALL program that calls kfuncs.
 *
 * It looks a task up by pid (bpf_task_from_pid / bpf_task_release, reading
 * task->pid through a CO-RE relocation) and sums 0..n-1 with the number
 * iterator (bpf_iter_num_*).  Run with ctx = {pid, n}; returns pid + sum,
 * or -1 when no such task.
 *
 * Built once with:
 *   bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
 *   clang-19 -target bpf -g -O2 -D__TARGET_ARCH_x86 -I. -c task_iter.bpf.c -o task_iter.bpf.o
 *   llvm-strip-19 --strip-debug task_iter.bpf.o   (DWARF is not needed: BTF stays)
 * The object is bundled so that the example needs no compiler; CO-RE and
 * sigbpf's PROG_BTF kfunc calls make it loadable on other kernels.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

struct args {
	int pid;
	int n;
};

char LICENSE[] SEC("license") = "GPL";

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
int task_iter(struct args *ctx)
{
	struct task_struct *task;
	int pid, n = ctx->n;

	if (n < 0 || n > 1000)
		return -1;
	task = bpf_task_from_pid(ctx->pid);
	if (!task)
		return -1;
	pid = task->pid;
	bpf_task_release(task);
	return pid + sum_below(n);
}
