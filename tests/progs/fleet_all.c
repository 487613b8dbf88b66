/* The fleet check's test artifact: one of everything a kernel must answer for.
 *
 * kfuncs bpf_task_from_pid / bpf_task_release (6.2+), a typed ksym (bpf_prog_active),
 * attach targets fentry/do_unlinkat and tp_btf/sched_process_exec (btf_trace_*),
 * a ring buffer map (BPF_MAP_TYPE_RINGBUF), helpers, and CO-RE relocations: a field
 * offset (task_struct.pid), a field existence check and an enum value (PIDTYPE_TGID).
 * tests/fleet_kernels.py derives kernels that refuse or warn about each of them. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern const int bpf_prog_active __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("fentry/do_unlinkat")
int BPF_PROG(on_unlink, int dfd, struct filename *name)
{
	struct task_struct *task;
	__u64 out[3] = {};
	const int *active;

	task = bpf_task_from_pid(bpf_get_current_pid_tgid() >> 32);
	if (!task)
		return 0;
	out[0] = BPF_CORE_READ(task, pid);
	out[1] = bpf_core_field_exists(task->tgid);
	out[2] = bpf_core_enum_value(enum pid_type, PIDTYPE_TGID);
	bpf_task_release(task);
	active = bpf_this_cpu_ptr(&bpf_prog_active);
	if (*active > 1)
		return 0;
	bpf_ringbuf_output(&events, out, sizeof(out), 0);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 pid = bpf_get_current_pid_tgid();

	bpf_ringbuf_output(&events, &pid, sizeof(pid), 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
