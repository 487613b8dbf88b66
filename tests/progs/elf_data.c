/* BTF-defined maps (hash, array with explicit sizes and pinning, map-in-map
 * with an inner map and an initial slot, a prog array with an initial slot,
 * ring buffer, bloom filter with map_extra) and every kind of global data:
 * .data, .rodata, .bss, custom .data.* and .rodata.* sections, plus a
 * "version" section.  Read by sigbpf's object reader; never loaded. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";
__u32 KVERSION SEC("version") = 0x60c00;

struct key_pair {
	__u32 a;
	__u64 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 128);
	__type(key, struct key_pair);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__uint(key_size, 4);
	__uint(value_size, 16);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sized_array SEC(".maps");

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_map);
} outer_map SEC(".maps") = {
	.values = { [1] = &inner_a },
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__uint(max_entries, 16);
	__type(value, __u32);
	__uint(map_extra, 3);
} bloom SEC(".maps");

int tail_target(struct __sk_buff *skb);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__array(values, int (struct __sk_buff *));
} jmp_table SEC(".maps") = {
	.values = { [2] = (void *)&tail_target },
};

__u64 data_counter = 5;
__u32 data_array[4] = { 1, 2, 3, 4 };
const volatile __u32 rodata_limit = 99;
const char rodata_msg[] = "hello";
__u64 bss_total;
static __u32 bss_static_hidden;
__u32 custom_data SEC(".data.custom") = 0x11223344;
const volatile __u64 custom_ro SEC(".rodata.custom") = 7;

SEC("syscall")
int data_user(void *ctx)
{
	__u32 k = 0, *inner;
	struct key_pair kp = { .a = 1, .b = 2 };
	__u64 *v;
	void *m;

	v = bpf_map_lookup_elem(&hash_map, &kp);
	if (v)
		bss_total += *v;
	bpf_map_lookup_elem(&sized_array, &k);
	m = bpf_map_lookup_elem(&outer_map, &k);
	if (m) {
		inner = bpf_map_lookup_elem(m, &k);
		if (inner)
			bss_total += *inner;
	}
	bpf_map_push_elem(&bloom, &k, 0);
	bss_static_hidden++;
	data_counter += data_array[2] + custom_data + custom_ro;
	bss_total += rodata_limit + rodata_msg[1];
	return 0;
}

SEC("tc")
int tail_target(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jmp_table, 0);
	return 0;
}
