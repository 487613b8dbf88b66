/* Two programs, a BTF-defined map and global data, for the signing tests:
 * a signature per program, and metadata that binds the maps and the BTF. */
#include "kfunc_common.h"

extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sign_map SEC(".maps");

__u64 sign_data = 5;
const volatile __u32 sign_rodata = 3;

SEC("syscall")
int first(struct test_args *ctx)
{
	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	return sign_data + sign_rodata;
}

SEC("syscall")
int second(struct test_args *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&sign_map, &key);

	return v ? *v + 1 : 1;
}
