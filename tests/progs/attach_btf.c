/* BTF-typed tracing programs (BPF_LINK_CREATE with the expected attach type):
 * slot 0: tp_btf/sys_enter, counting getppid
 * slot 1: fentry on __x64_sys_getpgid
 * slot 2: fexit on __x64_sys_getpgid */
#include "attach_common.h"

SEC("tp_btf/sys_enter")
int BPF_PROG(btf_sys_enter, struct pt_regs *regs, long id)
{
	if (id == 110) /* __NR_getppid */
		bump(0);
	return 0;
}

SEC("fentry/__x64_sys_getpgid")
int BPF_PROG(fentry_getpgid, const struct pt_regs *regs)
{
	bump(1);
	return 0;
}

SEC("fexit/__x64_sys_getpgid")
int BPF_PROG(fexit_getpgid, const struct pt_regs *regs, long ret)
{
	bump(2);
	return 0;
}
