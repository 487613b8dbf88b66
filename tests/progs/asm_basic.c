// Instruction kinds clang emits for everyday BPF C (default -mcpu, i.e. v3 on clang 19):
// map lookups (ld_imm64 + relocation), helpers, bpf-to-bpf calls, callbacks
// (ld_imm64 of a function), kfuncs and weak kfuncs, global data, loops, 32-bit
// compares, legacy LD_ABS/LD_IND (via the llvm.bpf.load.* intrinsics), atomics.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, u32);
    __type(value, u64);
} counts SEC(".maps");

int global_var = 3;
const volatile int limit = 7;
u64 total;
char buf[64] SEC(".data.buf");

extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern int bpf_not_a_real_kfunc(void) __ksym __weak;

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

static __noinline int scale(int x)
{
    return x * 3 + global_var;
}

static __noinline long mix(u64 a, u32 b, s64 c, s32 d)
{
    if ((s32)b < d)
        return a / (b | 1) + (u64)c % 7;
    if (a > (u64)c && b != 5)
        return (a << (b & 31)) ^ (c >> 3) ^ ((s64)c >> 2);
    return -c & 0xffff;
}

static long count_cb(u32 index, void *ctx)
{
    *(u64 *)ctx += index;
    return index > 5;
}

SEC("tc")
int classifier(struct __sk_buff *skb)
{
    u32 key = skb->len;
    u64 *value = bpf_map_lookup_elem(&counts, &key);
    u64 acc = 0;

    if (value) {
        __sync_fetch_and_add(value, 1);
    } else {
        u64 one = 1;
        bpf_map_update_elem(&counts, &key, &one, BPF_ANY);
    }
    for (int i = 0; i < limit; i++)
        total += scale(i);
    bpf_loop(10, count_cb, &acc, 0);
    buf[key & 63] = (char)acc;
    return mix(total, key, acc, skb->mark) > 10;
}

SEC("socket")
int legacy_loads(struct __sk_buff *skb)
{
    u64 a = load_byte(skb, 12);
    u64 b = load_half(skb, 14);
    u64 c = load_word(skb, skb->len & 7);
    return a + b + c;
}

SEC("tp_btf/task_newtask")
int kfuncs(u64 *ctx)
{
    struct task_struct *t = bpf_get_current_task_btf();

    t = bpf_task_acquire(t);
    if (t)
        bpf_task_release(t);
    if (bpf_not_a_real_kfunc)
        bpf_not_a_real_kfunc();
    return scale(2);
}

char LICENSE[] SEC("license") = "GPL";
