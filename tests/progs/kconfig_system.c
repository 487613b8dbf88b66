/* .kconfig externs of every kcfg type, read from the running kernel's config
 * and libbpf's virtual LINUX_* externs; tests/test_kconfig.py compares the
 * .kconfig map libbpf fills with sigbpf.kernel.kconfig's bytes. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef __weak
#define __weak __attribute__((weak))
#endif

char LICENSE[] SEC("license") = "GPL";

extern int CONFIG_HZ __kconfig;                                 /* INT, signed, 4 */
extern unsigned short CONFIG_NR_CPUS __kconfig;                 /* INT, unsigned, 2 */
extern unsigned long long CONFIG_ILLEGAL_POINTER_VALUE __kconfig __weak; /* INT, 8, hex */
extern unsigned char CONFIG_LOG_BUF_SHIFT __kconfig __weak;     /* CHAR, unsigned, number */
extern char CONFIG_BPF_JIT __kconfig __weak;                    /* CHAR: the letter 'y' */
extern bool CONFIG_BPF __kconfig;                               /* BOOL */
extern enum libbpf_tristate CONFIG_BPF_SYSCALL __kconfig;       /* TRISTATE */
extern char CONFIG_LOCALVERSION[32] __kconfig __weak;           /* CHAR_ARR */
extern char CONFIG_DEFAULT_HOSTNAME[4] __kconfig __weak;        /* CHAR_ARR, truncated */
extern bool CONFIG_SIGBPF_NOT_SET_ANYWHERE __kconfig __weak;    /* missing: zero */
extern enum libbpf_tristate CONFIG_KPROBES __kconfig __weak;    /* maybe "is not set": zero */
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool LINUX_HAS_SYSCALL_WRAPPER __kconfig;
extern int LINUX_SIGBPF_UNKNOWN __kconfig __weak;               /* weak unknown LINUX_: zero */

SEC("syscall")
int kconfig_system(void *ctx)
{
	__u64 sum = 0;

	sum += CONFIG_HZ + CONFIG_NR_CPUS + CONFIG_ILLEGAL_POINTER_VALUE;
	sum += CONFIG_LOG_BUF_SHIFT + CONFIG_BPF_JIT + CONFIG_BPF + CONFIG_BPF_SYSCALL;
	sum += CONFIG_LOCALVERSION[0] + CONFIG_DEFAULT_HOSTNAME[1];
	sum += CONFIG_SIGBPF_NOT_SET_ANYWHERE + CONFIG_KPROBES;
	sum += LINUX_KERNEL_VERSION + LINUX_HAS_BPF_COOKIE + LINUX_HAS_SYSCALL_WRAPPER;
	sum += LINUX_SIGBPF_UNKNOWN;
	return sum;
}
