/* A static function in a program section: libbpf refuses to open it
 * ("sec 'xdp': program 'static_prog' is static and not supported"), and so
 * does sigbpf's object reader, with the same words. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

static __attribute__((used)) int static_prog(struct xdp_md *ctx) __attribute__((section("xdp")));
static __attribute__((used)) int static_prog(struct xdp_md *ctx)
{
	return XDP_PASS;
}
