/* Shared by the attach_*.c test programs: one ARRAY map of counters the tests read
 * through sigbpf.kernel.maps.lookup_elem (key: u32 slot, value: u64 count). */
#ifndef ATTACH_COMMON_H
#define ATTACH_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void bump(__u32 slot)
{
	__u64 *value = bpf_map_lookup_elem(&counts, &slot);

	if (value)
		__sync_fetch_and_add(value, 1);
}

char LICENSE[] SEC("license") = "GPL";

#endif
