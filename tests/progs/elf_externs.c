/* Externs of every kind: kconfig (LINUX_KERNEL_VERSION, a bool, a tristate),
 * a typed ksym variable, a typeless ksym, strong and weak kfuncs (one only
 * tested with bpf_ksym_exists), and CO-RE relocations of several kinds. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef __weak
#define __weak __attribute__((weak))
#endif
#define bpf_ksym_exists(sym) ({ _Static_assert(!__builtin_constant_p(!!sym), #sym " should be marked as __weak"); !!sym; })

char LICENSE[] SEC("license") = "GPL";

extern int LINUX_KERNEL_VERSION __kconfig;
extern bool CONFIG_BPF_SYSCALL __kconfig __weak;
extern enum libbpf_tristate CONFIG_SIGBPF_MISSING __kconfig __weak;
extern const int bpf_prog_active __ksym;
extern const void bpf_link_fops __ksym __weak;
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void bpf_rcu_read_lock(void) __ksym __weak;
extern void bpf_rcu_read_unlock(void) __ksym __weak;
extern void bpf_sigbpf_absent(void) __ksym __weak;

struct task_struct___local {
	int pid;
	int sigbpf_no_such_field;
} __attribute__((preserve_access_index));

static __noinline int sub_with_kfunc(int pid)
{
	struct task_struct *t = bpf_task_from_pid(pid);
	int r;

	if (!t)
		return -1;
	r = BPF_CORE_READ(t, tgid);
	bpf_task_release(t);
	return r;
}

SEC("syscall")
int externs_user(void *ctx)
{
	struct task_struct___local *me = (void *)bpf_get_current_task_btf();
	int ret = LINUX_KERNEL_VERSION > 0;

	if (CONFIG_BPF_SYSCALL)
		ret += 2;
	if (CONFIG_SIGBPF_MISSING == TRI_YES)
		ret += 4;
	ret += *(int *)bpf_this_cpu_ptr(&bpf_prog_active);
	if (&bpf_link_fops)
		ret += 8;
	if (bpf_ksym_exists(bpf_rcu_read_lock)) {
		bpf_rcu_read_lock();
		bpf_rcu_read_unlock();
	}
	if (bpf_ksym_exists(bpf_sigbpf_absent))
		bpf_sigbpf_absent();
	if (bpf_core_field_exists(me->sigbpf_no_such_field))
		ret += 16;
	ret += bpf_core_field_size(me->pid);
	ret += bpf_core_type_exists(struct task_struct___local);
	ret += bpf_core_type_size(struct task_struct);
	ret += bpf_core_enum_value_exists(enum bpf_map_type, BPF_MAP_TYPE_ARENA);
	return ret + sub_with_kfunc(BPF_CORE_READ(me, pid));
}

SEC("tc")
int externs_tc(struct __sk_buff *skb)
{
	return sub_with_kfunc(skb->mark);
}
