/* Maps of every shape for MapView: hash and array maps with struct keys and
 * values (bitfields, an enum, a union, a pointer, char and struct arrays), a
 * per-CPU array, and global data in .data, .bss and .rodata.  The syscall
 * program (run with BPF_PROG_RUN) writes all of them, so Python reads what
 * the program wrote. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

enum color { RED = 1, GREEN = 2, BLUE = -3 };

struct point {
	__s32 x;
	__s32 y;
};

struct pkey {
	__u32 id;
	__u16 port;
	__u8 tag[2];
};

struct pval {
	__u64 count;
	__s16 delta;
	__u8 kind : 3, level : 5;
	__s8 small : 4;
	enum color color;
	union {
		__u32 u;
		__s32 s;
	} un;
	struct {
		__u16 lo;
		__u16 hi;
	};			/* anonymous: lo and hi are fields of pval */
	char name[6];
	struct point pts[2];
	void *ptr;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct pkey);
	__type(value, struct pval);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct pval);
} array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__uint(key_size, 4);
	__uint(value_size, 8);
} nobtf SEC(".maps");

__u64 counter = 5;			/* .data */
__s32 neg = -7;				/* .data */
char label[8] = "abc";			/* .data */
struct point origin = { 1, -2 };	/* .data */
const volatile __u32 limit = 99;	/* .rodata */
__u64 hits;				/* .bss */
struct point last;			/* .bss */

SEC("syscall")
int fill_maps(void *ctx)
{
	struct pkey k = { .id = 7, .port = 8080, .tag = { 'x', 'y' } };
	struct pval v = {};
	__u32 idx = 1, zero = 0;
	__u64 *c;

	v.count = 1000 + limit;
	v.delta = -5;
	v.kind = 5;
	v.level = 17;
	v.small = -3;
	v.color = BLUE;
	v.un.s = -1;
	v.lo = 0x1234;
	v.hi = 0xabcd;
	__builtin_memcpy(v.name, "hello", 6);
	v.pts[0].x = 1;
	v.pts[0].y = 2;
	v.pts[1].x = -3;
	v.pts[1].y = -4;
	v.ptr = 0;
	bpf_map_update_elem(&hash, &k, &v, BPF_ANY);
	bpf_map_update_elem(&array, &idx, &v, BPF_ANY);
	c = bpf_map_lookup_elem(&pcpu, &zero);
	if (c)
		*c += 1;
	counter += 1;
	neg -= 1;
	hits = counter * 2;
	last = origin;
	return 0;
}
