/* ksym variables: typeless (kallsyms) and typed (vmlinux BTF), strong and
 * weak; tests/test_ksyms.py compares libbpf's relocated ld_imm64s with
 * sigbpf.kernel.kallsyms.  -DSIGBPF_AMBIGUOUS=name adds a typeless ksym that
 * kallsyms lists at two addresses; -DSIGBPF_BAD_TYPE gives bpf_prog_active
 * a type the kernel's does not match. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef __weak
#define __weak __attribute__((weak))
#endif

char LICENSE[] SEC("license") = "GPL";

extern const void _stext __ksym;                       /* typeless, in kallsyms */
extern const void sigbpf_no_such_ksym __ksym __weak;   /* typeless, missing */
#ifdef SIGBPF_BAD_TYPE
extern const struct task_struct bpf_prog_active __ksym;
#else
extern const int bpf_prog_active __ksym;               /* typed, vmlinux VAR (per-CPU int) */
#endif
extern struct rq runqueues __ksym;                     /* typed, a struct */
extern const int sigbpf_no_such_var __ksym __weak;     /* typed, missing */
#ifdef SIGBPF_AMBIGUOUS
extern const void SIGBPF_AMBIGUOUS __ksym;
#endif

SEC("syscall")
int ksym_typeless(void *ctx)
{
	return (__u64)&_stext >> 32;	/* != 0 would fold: a strong symbol is never NULL */
}

SEC("syscall")
int ksym_weak_missing(void *ctx)
{
	return (long)&sigbpf_no_such_ksym != 0;
}

SEC("syscall")
int ksym_typed_int(void *ctx)
{
#ifdef SIGBPF_BAD_TYPE
	return bpf_this_cpu_ptr(&bpf_prog_active) != 0;
#else
	return *(int *)bpf_this_cpu_ptr(&bpf_prog_active);
#endif
}

SEC("syscall")
int ksym_typed_struct(void *ctx)
{
	struct rq *rq = bpf_this_cpu_ptr(&runqueues);

	return rq->cpu;
}

SEC("syscall")
int ksym_typed_weak(void *ctx)
{
	return (long)&sigbpf_no_such_var != 0;
}

#ifdef SIGBPF_AMBIGUOUS
SEC("syscall")
int ksym_ambiguous(void *ctx)
{
	return (__u64)&SIGBPF_AMBIGUOUS >> 32;
}
#endif
