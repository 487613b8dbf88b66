/* Maps whose final form is the running machine's (libbpf's load-time fix-ups),
 * initial slots, and attach targets bound by name: a perf event array without
 * max_entries (one entry per possible CPU), a ring buffer whose size is not a
 * power-of-2 multiple of the page size, a map-in-map with an inner prototype
 * and an initial slot, a prog array whose slot 0 is a program, a tp_btf
 * program (attach target btf_trace_sched_switch, a TYPEDEF) and an fentry
 * program on a function no kernel has (for --skip-missing). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 5000);
} rb SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inner1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = { .values = { [1] = &inner1 } };

__u64 switches;
__s32 last_next_pid;

SEC("tp_btf/sched_switch")
int BPF_PROG(tail_target, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jmp SEC(".maps") = { .values = { [0] = (void *)&tail_target } };

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__sync_fetch_and_add(&switches, 1);
	last_next_pid = next->pid;
	bpf_tail_call(ctx, &jmp, 0);
	return 0;
}

#ifndef SIGBPF_NO_MISSING_TARGET
SEC("fentry/sigbpf_no_such_function")
int BPF_PROG(on_missing)
{
	return 0;
}
#endif

char LICENSE[] SEC("license") = "GPL";
