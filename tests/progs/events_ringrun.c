/* A ring buffer fed by a syscall program, for the consumer's corner cases:
 * each BPF_PROG_RUN writes one record of the size the context asks for
 * (bpf_ringbuf_output), or reserves one and discards it; records of varying
 * sizes in a one-page ring wrap around its end. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct args {
	__u32 seq;
	__u32 size;	/* bytes to write, 8..255 */
	__u32 discard;	/* reserve 16 bytes and discard them instead */
	__u32 flags;	/* bpf_ringbuf_output flags (BPF_RB_NO_WAKEUP, ...) */
};

struct record {
	__u32 seq;
	__u32 size;
	__u8 fill[248];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} small_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct record);
} scratch SEC(".maps");

SEC("syscall")
int emit(struct args *a)
{
	__u32 zero = 0, size = a->size, i;
	struct record *r;
	void *d;

	if (a->discard) {
		d = bpf_ringbuf_reserve(&small_rb, 16, 0);
		if (!d)
			return -1;
		bpf_ringbuf_discard(d, 0);
		return 0;
	}
	r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		return -2;
	r->seq = a->seq;
	r->size = size;
	for (i = 0; i < sizeof(r->fill); i++)
		r->fill[i] = (__u8)(a->seq + i);
	if (size < 8 || size > 255)
		return -3;
	return bpf_ringbuf_output(&small_rb, r, size & 0xff, a->flags);
}
