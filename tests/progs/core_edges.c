/* CO-RE relocations that fail, are ambiguous, or where libbpf and the kernel
 * differ (tests/test_core_relo.py); one program per case, so that each loads
 * (or is refused) on its own. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

__u64 out[16];

struct task_struct___old {
	int pid;
	int gone___in_every_kernel;
} __attribute__((preserve_access_index));

/* pid as a signed 64-bit field: the 4-byte signed kernel field cannot be loaded with a
 * resized load (the relocation poisons the instruction). */
struct task_struct___wide {
	long long pid;
} __attribute__((preserve_access_index));

/* flags as a u64: the kernel's is an unsigned int, so the load shrinks to 4 bytes. */
struct task_struct___u64 {
	__u64 flags;
} __attribute__((preserve_access_index));

/* Local views of kernel structs that exist several times under one name. */
struct workspace___any {
	void *mem;
	struct list_head list;
} __attribute__((preserve_access_index));

struct syscall_tp_t___any {
	unsigned long ret;
	unsigned long args[6];
} __attribute__((preserve_access_index));

/* A 32-bit local enum whose kernel namesake is an ENUM64. */
enum perf_callchain_context___small { PERF_CONTEXT_MAX___small = 1 };

/* Never reached: the field does not exist, the guard is a constant 0. */
SEC("syscall")
int poison_dead(void *ctx)
{
	struct task_struct___old *t = 0;

	if (bpf_core_field_exists(t->gone___in_every_kernel))
		out[0] = bpf_core_field_offset(struct task_struct___old, gone___in_every_kernel);
	out[1] = bpf_core_field_offset(struct task_struct___old, pid);
	return 0;
}

/* Reached: the verifier meets `call 0xbad2310`. */
SEC("syscall")
int poison_reached(void *ctx)
{
	out[0] = bpf_core_field_offset(struct task_struct___old, pid);
	out[1] = bpf_core_field_offset(struct task_struct___old, gone___in_every_kernel);
	return 0;
}

/* Several kernel structs are called `workspace`; `list` is at a different offset in each. */
SEC("syscall")
int ambiguous_offset(void *ctx)
{
	out[0] = bpf_core_field_offset(struct workspace___any, mem);
	out[1] = bpf_core_field_offset(struct workspace___any, list);
	return 0;
}

/* Same structs: every candidate is compatible, their sizes differ. */
SEC("syscall")
int ambiguous_size(void *ctx)
{
	out[0] = bpf_core_type_exists(struct workspace___any);
	out[1] = bpf_core_type_size(struct workspace___any);
	return 0;
}

/* Two kernel structs are called `syscall_tp_t`; `ret` is only in one, `args` only in
 * the other.  libbpf keeps, for the object's later relocations of the type, only the
 * candidates that matched `ret`; the kernel searches afresh for each relocation. */
SEC("syscall")
int pruned_candidates(void *ctx)
{
	out[0] = bpf_core_field_offset(struct syscall_tp_t___any, ret);
	out[1] = bpf_core_field_exists(struct syscall_tp_t___any, args);
	return 0;
}

/* libbpf takes an ENUM64 candidate for a local ENUM; the kernel only the same kind. */
SEC("syscall")
int enum_vs_enum64(void *ctx)
{
	out[0] = bpf_core_enum_value_exists(enum perf_callchain_context___small,
					    PERF_CONTEXT_MAX___small);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(load_resized, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct___u64 *t = (void *)next;

	out[0] = t->flags;
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(load_poisoned, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct___wide *t = (void *)next;

	out[0] = t->pid;
	return 0;
}
