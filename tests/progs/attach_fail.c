/* Two programs for the all-or-nothing tests: a tracepoint that attaches, then a uprobe on
 * a function libc does not have, which fails after the tracepoint is attached. */
#include "attach_common.h"

SEC("tp/syscalls/sys_enter_getppid")
int fail_tp(void *ctx)
{
	bump(0);
	return 0;
}

SEC("uprobe/libc.so.6:sigbpf_no_such_function")
int fail_uprobe(struct pt_regs *ctx)
{
	bump(1);
	return 0;
}
