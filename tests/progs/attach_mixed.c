/* Two programs for the all-or-nothing tests: a tracepoint (attaches anywhere) and an XDP
 * program (needs --iface, and CAP_NET_ADMIN). */
#include "attach_common.h"

SEC("tp/syscalls/sys_enter_getppid")
int mixed_tp(void *ctx)
{
	bump(0);
	return 0;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	bump(1);
	return XDP_PASS;
}
