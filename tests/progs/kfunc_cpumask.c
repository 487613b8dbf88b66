/* cpumask kfuncs: create, set a CPU, test it, release.
 * Returns 1 when CPU 0 reads back as set, 0 otherwise, -1 on allocation failure. */
#include "kfunc_common.h"

extern struct bpf_cpumask *bpf_cpumask_create(void) __ksym;
extern void bpf_cpumask_release(struct bpf_cpumask *cpumask) __ksym;
extern void bpf_cpumask_set_cpu(u32 cpu, struct bpf_cpumask *cpumask) __ksym;
extern bool bpf_cpumask_test_cpu(u32 cpu, const struct cpumask *cpumask) __ksym;

SEC("syscall")
int cpumask_roundtrip(struct test_args *ctx)
{
	struct bpf_cpumask *mask;
	int ret;

	mask = bpf_cpumask_create();
	if (!mask)
		return -1;
	bpf_cpumask_set_cpu(0, mask);
	ret = bpf_cpumask_test_cpu(0, (const struct cpumask *)mask);
	bpf_cpumask_release(mask);
	return ret;
}
