/* A TCP congestion control in struct_ops: three programs, each implementing one
 * member of the kernel's struct tcp_congestion_ops, named through the
 * .struct_ops variable's function pointers (libbpf's st_ops relocations). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("struct_ops/sigbpf_ssthresh")
__u32 BPF_PROG(sigbpf_ssthresh, struct sock *sk)
{
	return 2;
}

SEC("struct_ops/sigbpf_undo_cwnd")
__u32 BPF_PROG(sigbpf_undo_cwnd, struct sock *sk)
{
	return 2;
}

SEC("struct_ops/sigbpf_cong_avoid")
void BPF_PROG(sigbpf_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
}

SEC(".struct_ops")
struct tcp_congestion_ops sigbpf_cc = {
	.ssthresh = (void *)sigbpf_ssthresh,
	.undo_cwnd = (void *)sigbpf_undo_cwnd,
	.cong_avoid = (void *)sigbpf_cong_avoid,
	.name = "sigbpf_cc",
};

char LICENSE[] SEC("license") = "GPL";
