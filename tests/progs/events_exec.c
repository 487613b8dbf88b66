/* Events out of a tracepoint: on every exec (sched/sched_process_exec) one
 * record through a ring buffer (after a reserved and discarded one, which the
 * consumer must skip) and one through a perf event array.  The perf event
 * array is declared the way real tools declare it, WITHOUT max_entries (the
 * loader sets it to the number of possible CPUs, as libbpf does); compiled
 * with -DPERF_MAX_ENTRIES=N it has max_entries N. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define EVENT_MAGIC 0x5349474250460001ULL /* "SIGBPF" 0001 */

struct event {
	__u64 magic;
	__u32 pid;	/* thread id */
	__u32 tgid;	/* process id */
	__u32 cpu;
	__u32 seq;
	char comm[16];
	char filename[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
#ifdef PERF_MAX_ENTRIES
	__uint(max_entries, PERF_MAX_ENTRIES);
#endif
} perf_events SEC(".maps");

__u32 seq;		/* .bss: events seen */
__u64 perf_errors;	/* .bss: bpf_perf_event_output failures */

static void fill(struct event *e, struct trace_event_raw_sched_process_exec *ctx, __u32 n)
{
	__u64 id = bpf_get_current_pid_tgid();
	unsigned short off = ctx->__data_loc_filename & 0xFFFF;

	e->magic = EVENT_MAGIC;
	e->pid = (__u32)id;
	e->tgid = id >> 32;
	e->cpu = bpf_get_smp_processor_id();
	e->seq = n;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + off);
}

SEC("tp/sched/sched_process_exec")
int on_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct event *e, *skip;
	struct event local = {};
	__u32 n = seq;

	__sync_fetch_and_add(&seq, 1);

	skip = bpf_ringbuf_reserve(&rb, 24, 0);
	if (skip)
		bpf_ringbuf_discard(skip, 0);
	e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
	if (e) {
		fill(e, ctx, n);
		bpf_ringbuf_submit(e, 0);
	}
	fill(&local, ctx, n);
	if (bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &local, sizeof(local)))
		__sync_fetch_and_add(&perf_errors, 1);
	return 0;
}
