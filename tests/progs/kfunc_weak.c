/* Weak kfuncs: one this kernel lacks (its call must vanish as dead code),
 * one it has.  Returns 10 * (missing kfunc present) + (rcu kfunc present): 1 here. */
#include "kfunc_common.h"

extern void bpf_sigbpf_no_such_kfunc(void) __ksym __weak;
extern void bpf_rcu_read_lock(void) __ksym __weak;
extern void bpf_rcu_read_unlock(void) __ksym __weak;

SEC("syscall")
int weak_kfuncs(struct test_args *ctx)
{
	int ret = 0;

	if (bpf_ksym_exists(bpf_sigbpf_no_such_kfunc)) {
		bpf_sigbpf_no_such_kfunc();
		ret += 10;
	}
	if (bpf_ksym_exists(bpf_rcu_read_lock)) {
		bpf_rcu_read_lock();
		bpf_rcu_read_unlock();
		ret += 1;
	}
	return ret;
}
