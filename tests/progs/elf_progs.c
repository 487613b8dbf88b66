/* Programs in many sections, static and global subprograms in .text, a
 * call from two sections into the same subprogram, a callback passed by
 * address (ld_imm64 with BPF_PSEUDO_FUNC) and a static program-local
 * helper chain.  Read by sigbpf's object reader; never loaded. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __noinline int static_leaf(int x)
{
	return x * 3 + 1;
}

static __noinline int static_mid(int x)
{
	return static_leaf(x) + static_leaf(x + 1);
}

__noinline int global_sub(int x)
{
	return static_mid(x) - 2;
}

static int loop_cb(__u64 index, void *ctx)
{
	int *sum = ctx;

	*sum += index;
	return 0;
}

SEC("syscall")
int prog_syscall(void *ctx)
{
	int sum = 0;

	bpf_loop(10, loop_cb, &sum, 0);
	return global_sub(sum);
}

SEC("tc")
int prog_tc(struct __sk_buff *skb)
{
	return global_sub(skb->len) > 0 ? 0 : 2;
}

SEC("xdp")
int prog_xdp(struct xdp_md *ctx)
{
	return static_mid(ctx->data_end - ctx->data) & 1 ? XDP_PASS : XDP_DROP;
}

SEC("kprobe/do_unlinkat")
int prog_kprobe(struct pt_regs *ctx)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int prog_tracepoint(void *ctx)
{
	return static_leaf(1);
}

SEC("raw_tp/sched_switch")
int prog_raw_tp(void *ctx)
{
	return 0;
}

SEC("fentry/do_unlinkat")
int BPF_PROG(prog_fentry, int dfd)
{
	return 0;
}

SEC("fexit.s/do_unlinkat")
int BPF_PROG(prog_fexit_s, int dfd, struct filename *name, long ret)
{
	return 0;
}

SEC("socket")
int prog_socket(struct __sk_buff *skb)
{
	return 0;
}

SEC("cgroup_skb/ingress")
int prog_cgroup_skb(struct __sk_buff *skb)
{
	return 1;
}

SEC("lsm/file_open")
int BPF_PROG(prog_lsm, struct file *file)
{
	return 0;
}

SEC("?xdp.frags")
int prog_xdp_frags(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* Two programs in one section. */
SEC("tc")
int prog_tc_second(struct __sk_buff *skb)
{
	return static_leaf(skb->mark);
}
