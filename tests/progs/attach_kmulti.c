/* A kprobe.multi program on one function (passed to the kernel by name, as libbpf does). */
#include "attach_common.h"

SEC("kprobe.multi/do_sys_openat2")
int kpm_openat2(struct pt_regs *ctx)
{
	bump(2);
	return 0;
}
