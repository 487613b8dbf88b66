/* cgroup programs: slot 0 counts sockets created in the cgroup, slot 1 IPv4 connects. */
#include "attach_common.h"

SEC("cgroup/sock_create")
int sock_create(struct bpf_sock *sk)
{
	bump(0);
	return 1;
}

SEC("cgroup/connect4")
int connect4(struct bpf_sock_addr *ctx)
{
	bump(1);
	return 1;
}
