/* kprobes: slot 0 kprobe, slot 1 kretprobe (perf events of the kprobe PMU), slot 2 a
 * kprobe.multi link.  This kernel may lack kprobes (CONFIG_KPROBES off): the tests then
 * check the one-line error. */
#include "attach_common.h"

SEC("kprobe/do_sys_openat2")
int kp_openat2(struct pt_regs *ctx)
{
	bump(0);
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int kret_openat2(struct pt_regs *ctx)
{
	bump(1);
	return 0;
}
