/* Tracing programs attached through perf events and raw tracepoints:
 * slot 0: tracepoint syscalls/sys_enter_getppid (a perf link)
 * slot 1: raw tracepoint sys_enter, counting only getppid (BPF_RAW_TRACEPOINT_OPEN)
 * slot 2: uprobe on libc's getpid (the uprobe PMU at the symbol's file offset)
 * slot 3: uretprobe on libc's getpid
 * slot 4: uprobe.multi on libc's getpp* (a uprobe_multi link) */
#include "attach_common.h"

SEC("tp/syscalls/sys_enter_getppid")
int tp_getppid(void *ctx)
{
	bump(0);
	return 0;
}

SEC("raw_tp/sys_enter")
int raw_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] == 110) /* __NR_getppid on x86-64 */
		bump(1);
	return 0;
}

SEC("uprobe/libc.so.6:getpid")
int up_getpid(struct pt_regs *ctx)
{
	bump(2);
	return 0;
}

SEC("uretprobe/libc.so.6:getpid")
int uret_getpid(struct pt_regs *ctx)
{
	bump(3);
	return 0;
}

SEC("uprobe.multi/libc.so.6:getpp*")
int upm_getppid(struct pt_regs *ctx)
{
	bump(4);
	return 0;
}
