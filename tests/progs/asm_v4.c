// Instructions of cpu v4 (compile with -mcpu=v4): signed div/mod, movsx, bswap,
// sign-extending loads, store-immediate, gotol and may_goto (inline asm), plus
// JMP32 compares and 32-bit ALU from ordinary C.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

s64 sv[8];
s32 s32v[8];
u64 uv[8];

static __always_inline void spin_until(int n)
{
    for (int i = 0; i < n; i++) {
        asm volatile goto("may_goto %l[out]" :::: out);
        sv[i & 7] += i;
    }
out:
    return;
}

SEC("syscall")
int v4(void *ctx)
{
    s64 a = sv[0], b = sv[1] | 1;
    s32 c = s32v[0], d = s32v[1] | 1;
    s8 *p8 = (s8 *)&sv[2];
    s16 *p16 = (s16 *)&sv[3];

    sv[4] = a / b + a % b;
    s32v[2] = c / d + c % d;
    sv[5] = (s64)(s8)a + (s64)(s16)b + (s64)(s32)c;
    s32v[3] = (s32)(s8)c + (s32)(s16)d;
    uv[0] = __builtin_bswap16(uv[1]) + __builtin_bswap32(uv[2]) + __builtin_bswap64(uv[3]);
    sv[6] = *p8 + *p16 + s32v[4];
    uv[4] = 0x12345678;
    s32v[5] = -3;
    if ((u32)c > 10 && (s32)d < -3)
        uv[5] = 1;
    spin_until(c);
    asm volatile("gotol +1; r0 = 0; r0 = 1" ::: "r0");
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
