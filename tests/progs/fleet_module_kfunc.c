/* A kfunc that Debian builds into a module (nf_conntrack's bpf_skb_ct_lookup), next to one
 * every kernel since 6.2 has in vmlinux: the fleet check reads modules' BTF from a
 * linux-modules package and says the module kfunc is missing from vmlinux but defined by
 * nf_conntrack ("module-only": PROG_BTF resolution searches vmlinux only). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern void *bpf_skb_ct_lookup(struct __sk_buff *skb, void *tuple, __u32 tuple_len,
			       void *opts, __u32 opts_len) __ksym;
extern void bpf_rcu_read_lock(void) __ksym;
extern void bpf_rcu_read_unlock(void) __ksym;

SEC("tc")
int ct_lookup(struct __sk_buff *skb)
{
	char tuple[12] = {};
	char opts[12] = {};

	bpf_rcu_read_lock();
	bpf_rcu_read_unlock();
	if (bpf_skb_ct_lookup(skb, tuple, sizeof(tuple), opts, sizeof(opts)))
		return 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
