// Every atomic operation, 32- and 64-bit, with and without fetch; compile with
// -mcpu=v3 (fetch variants, xchg and cmpxchg need it).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

u64 v64;
u32 v32;
u64 out64[16];
u32 out32[16];

SEC("syscall")
int atomics(void *ctx)
{
    u64 x = (u64)ctx;

    __sync_fetch_and_add(&v64, x);
    __sync_fetch_and_add(&v32, (u32)x);
    __sync_fetch_and_or(&v64, x);
    __sync_fetch_and_and(&v64, x);
    __sync_fetch_and_xor(&v64, x);
    __sync_fetch_and_or(&v32, (u32)x);
    __sync_fetch_and_and(&v32, (u32)x);
    __sync_fetch_and_xor(&v32, (u32)x);
    out64[0] = __sync_fetch_and_add(&v64, 3);
    out64[1] = __sync_fetch_and_or(&v64, x);
    out64[2] = __sync_fetch_and_and(&v64, x);
    out64[3] = __sync_fetch_and_xor(&v64, x);
    out64[4] = __sync_fetch_and_sub(&v64, x);
    out32[0] = __sync_fetch_and_add(&v32, 3);
    out32[1] = __sync_fetch_and_or(&v32, (u32)x);
    out32[2] = __sync_fetch_and_and(&v32, (u32)x);
    out32[3] = __sync_fetch_and_xor(&v32, (u32)x);
    out64[5] = __atomic_exchange_n(&v64, x, __ATOMIC_SEQ_CST);
    out32[4] = __atomic_exchange_n(&v32, (u32)x, __ATOMIC_SEQ_CST);
    out64[6] = __sync_val_compare_and_swap(&v64, x, 7);
    out32[5] = __sync_val_compare_and_swap(&v32, (u32)x, 7);
    out64[7] = __atomic_fetch_add(&v64, 9, __ATOMIC_RELAXED);
    out32[6] = __atomic_fetch_xor(&v32, 9, __ATOMIC_RELAXED);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
