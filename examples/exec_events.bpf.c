/* A second bundled example: a real tracing program with everything that is
 * the running kernel's, recorded by name in the artifact and bound at load time.
 *
 * On every exec (tp_btf/sched_process_exec, attach target btf_trace_sched_process_exec)
 * it sends {pid, comm, hz} through a ring buffer and counts execs in a hash map
 * keyed by uid.  CONFIG_HZ comes from the kernel's config (.kconfig), the ring
 * buffer's size is rounded to the page size at load time.
 *
 * Built once with:
 *   bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux.h
 *   clang-19 -target bpf -g -O2 -D__TARGET_ARCH_x86 -I. -c exec_events.bpf.c -o exec_events.bpf.o
 *   llvm-strip-19 --strip-debug exec_events.bpf.o
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

extern int CONFIG_HZ __kconfig __weak;

struct event {
	__u32 pid;
	__u32 hz;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 10000);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} execs_by_uid SEC(".maps");

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 uid = (__u32)bpf_get_current_uid_gid();
	__u64 one = 1, *count;
	struct event *e;

	count = bpf_map_lookup_elem(&execs_by_uid, &uid);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&execs_by_uid, &uid, &one, BPF_NOEXIST);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->hz = CONFIG_HZ;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
