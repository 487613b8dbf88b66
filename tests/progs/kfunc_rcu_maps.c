/* RCU lock/unlock around map and global data use: exercises a BTF-defined
 * map, .data, .rodata (frozen), .bss and a custom .data.* section beside
 * kfunc calls.  Returns 42 + 100 * (rodata_val == 7) + the map's value. */
#include "kfunc_common.h"

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

__u64 data_val = 40;
const volatile __u32 rodata_val = 7;
__u64 bss_val;
__u32 custom_val SEC(".data.custom") = 2;

SEC("syscall")
int rcu_maps(struct test_args *ctx)
{
	__u32 key = 1;
	__u64 *value, init = 1000;

	bpf_map_update_elem(&counters, &key, &init, BPF_ANY);
	bpf_rcu_read_lock();
	value = bpf_map_lookup_elem(&counters, &key);
	bss_val = value ? *value : 0;
	bpf_rcu_read_unlock();
	return data_val + custom_val + (rodata_val == 7 ? 100 : 0) + bss_val;
}
