/* Every CO-RE relocation kind against kernel types (tests/test_core_relo.py).
 *
 * The "syscall" programs store relocated constants into `out` (ALU and
 * ld_imm64 relocations); the tp_btf program reads fields of kernel structs
 * directly (LDX relocations, and a load the relocation must shrink).  Local
 * types with flavors (`___v2`) and types the kernel lacks are included; every
 * relocation here succeeds against the kernel the object was compiled for,
 * only existence checks may answer 0. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

__u64 out[64];

/* task_struct under a flavor: candidates are found by essential name. */
struct task_struct___v2 {
	int pid;
	int tgid;
	char comm[16];
	unsigned int flags;
	int no_such_field___in_any_kernel;
} __attribute__((preserve_access_index));

/* A type no kernel has. */
struct sigbpf_not_in_kernel {
	int a;
} __attribute__((preserve_access_index));

/* Local view of an enum with 32-bit enumerators only. */
enum pid_type___local { PIDTYPE_TGID___local = 1, PIDTYPE_NOT_THERE___local = 99 };

SEC("syscall")
int fields(void *ctx)
{
	struct task_struct *t = 0;
	struct task_struct___v2 *v2 = 0;

	out[0] = bpf_core_field_offset(struct task_struct, pid);
	out[1] = bpf_core_field_size(struct task_struct, pid);
	out[2] = bpf_core_field_exists(struct task_struct, pid);
	out[3] = __builtin_preserve_field_info(t->pid, BPF_FIELD_SIGNED);
	out[4] = bpf_core_field_offset(struct task_struct___v2, tgid);
	out[5] = bpf_core_field_exists(struct task_struct___v2, no_such_field___in_any_kernel);
	out[6] = bpf_core_field_offset(struct task_struct, comm[3]);
	out[7] = bpf_core_field_size(struct task_struct, comm);
	out[8] = __builtin_preserve_field_info(v2->flags, BPF_FIELD_SIGNED);
	out[9] = bpf_core_field_offset(struct task_struct, se.load.weight);
	out[10] = bpf_core_field_offset(struct task_struct, thread_info.flags);
	return 0;
}

SEC("syscall")
int bitfields(void *ctx)
{
	struct task_struct *t = 0;

	out[0] = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_BYTE_OFFSET);
	out[1] = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_BYTE_SIZE);
	out[2] = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_LSHIFT_U64);
	out[3] = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_RSHIFT_U64);
	out[4] = __builtin_preserve_field_info(t->in_execve, BPF_FIELD_SIGNED);
	out[5] = __builtin_preserve_field_info(t->sched_reset_on_fork, BPF_FIELD_LSHIFT_U64);
	out[6] = __builtin_preserve_field_info(t->sched_reset_on_fork, BPF_FIELD_BYTE_OFFSET);
	return 0;
}

SEC("syscall")
int types(void *ctx)
{
	out[0] = bpf_core_type_exists(struct task_struct);
	out[1] = bpf_core_type_size(struct task_struct);
	out[2] = bpf_core_type_id_kernel(struct task_struct);
	out[3] = bpf_core_type_id_local(struct task_struct);
	out[4] = bpf_core_type_exists(struct sigbpf_not_in_kernel);
	out[5] = bpf_core_type_size(struct sigbpf_not_in_kernel);
	out[6] = bpf_core_type_matches(struct task_struct___v2);
	out[7] = bpf_core_type_matches(struct list_head);
	out[8] = bpf_core_type_exists(u32);
	out[9] = bpf_core_type_size(pid_t);
	out[10] = bpf_core_type_id_kernel(struct task_struct___v2);
	return 0;
}

SEC("syscall")
int enums(void *ctx)
{
	out[0] = bpf_core_enum_value_exists(enum pid_type, PIDTYPE_TGID);
	out[1] = bpf_core_enum_value(enum pid_type, PIDTYPE_TGID);
	out[2] = bpf_core_enum_value_exists(enum pid_type___local, PIDTYPE_TGID___local);
	out[3] = bpf_core_enum_value(enum pid_type___local, PIDTYPE_TGID___local);
	out[4] = bpf_core_enum_value_exists(enum pid_type___local, PIDTYPE_NOT_THERE___local);
	/* ENUM64: values above 32 bits come in an ld_imm64 */
	out[5] = bpf_core_enum_value(enum perf_callchain_context, PERF_CONTEXT_HV);
	out[6] = bpf_core_enum_value_exists(enum perf_callchain_context, PERF_CONTEXT_MAX);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(loads, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct task_struct___v2 *v2 = (void *)next;

	out[0] = prev->pid;          /* LDX, offset relocated */
	out[1] = v2->tgid;           /* LDX through a flavor */
	out[2] = next->comm[1];      /* LDX of an array element */
	out[3] = v2->flags;          /* LDX: u32 in the kernel, u32 here */
	out[4] = next->se.load.weight;
	return 0;
}
