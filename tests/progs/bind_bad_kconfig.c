/* A strong kconfig extern no kernel has: the loader must refuse it by name (libbpf's
 * "extern 'CONFIG_SIGBPF_NO_SUCH_OPTION' (strong): not resolved"), before any program loads. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

extern int CONFIG_SIGBPF_NO_SUCH_OPTION __kconfig;
int out;

SEC("syscall")
int bad_kconfig(void *ctx)
{
	out = CONFIG_SIGBPF_NO_SUCH_OPTION;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
