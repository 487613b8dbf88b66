/* XDP: counts every packet received on the interface (slot 0), IPv4 UDP ones in slot 1. */
#include "attach_common.h"

#define ETH_P_IP 0x0800

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);

	bump(0);
	if ((void *)(ip + 1) <= end && eth->h_proto == __builtin_bswap16(ETH_P_IP) &&
	    ip->protocol == 17 /* IPPROTO_UDP */)
		bump(1);
	return XDP_PASS;
}
