/* Declarations shared by the kfunc test programs (what libbpf >= 1.2's
 * bpf_helpers.h / bpf_experimental.h provide; the installed libbpf is 1.1). */
#ifndef KFUNC_COMMON_H
#define KFUNC_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#ifndef __weak
#define __weak __attribute__((weak))
#endif

/* True when the kernel has the (weak) kfunc: the loader turns the address
 * into a constant the verifier uses to drop the dead branch. */
#define bpf_ksym_exists(sym) ({ _Static_assert(!__builtin_constant_p(!!sym), #sym " should be marked as __weak"); !!sym; })

/* The context every test program reads: what `sigbpf load --ctx HEX` passes. */
struct test_args {
	int pid;
	int n;
};

char LICENSE[] SEC("license") = "GPL";

#endif
