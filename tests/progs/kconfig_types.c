/* Synthetic .kconfig externs of every kcfg type, all weak: with the system
 * config they are zero; tests/test_kconfig.py gives libbpf (and sigbpf)
 * extra config text (bpf_object_open_opts.kconfig) to exercise each value
 * form and refusal.  -DSIGBPF_BAD_<case> adds one extern libbpf refuses. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#ifndef __weak
#define __weak __attribute__((weak))
#endif

char LICENSE[] SEC("license") = "GPL";

extern bool CONFIG_SIGBPF_BOOL __kconfig __weak;
extern enum libbpf_tristate CONFIG_SIGBPF_TRI __kconfig __weak;
extern char CONFIG_SIGBPF_CHAR __kconfig __weak;
extern unsigned char CONFIG_SIGBPF_U8 __kconfig __weak;
extern short CONFIG_SIGBPF_S16 __kconfig __weak;
extern unsigned short CONFIG_SIGBPF_U16 __kconfig __weak;
extern int CONFIG_SIGBPF_S32 __kconfig __weak;
extern unsigned int CONFIG_SIGBPF_U32 __kconfig __weak;
extern long long CONFIG_SIGBPF_S64 __kconfig __weak;
extern unsigned long long CONFIG_SIGBPF_U64 __kconfig __weak;
extern char CONFIG_SIGBPF_STR[8] __kconfig __weak;
extern char CONFIG_SIGBPF_STR1[1] __kconfig __weak;

#if defined(SIGBPF_BAD_STRONG)
extern int CONFIG_SIGBPF_STRONG __kconfig;
#define BAD CONFIG_SIGBPF_STRONG
#elif defined(SIGBPF_BAD_VIRTUAL)
extern int LINUX_SIGBPF_STRONG __kconfig;
#define BAD LINUX_SIGBPF_STRONG
#elif defined(SIGBPF_BAD_NO_PREFIX)
extern int SIGBPF_NO_PREFIX __kconfig __weak;
#define BAD SIGBPF_NO_PREFIX
#elif defined(SIGBPF_BAD_VERSION_CHAR)
extern char LINUX_KERNEL_VERSION __kconfig;
#define BAD LINUX_KERNEL_VERSION
#elif defined(SIGBPF_BAD_COOKIE_TRI)
extern enum libbpf_tristate LINUX_HAS_BPF_COOKIE __kconfig;
#define BAD LINUX_HAS_BPF_COOKIE
#else
#define BAD 0
#endif

SEC("syscall")
int kconfig_types(void *ctx)
{
	__s64 sum = 0;

	sum += CONFIG_SIGBPF_BOOL + CONFIG_SIGBPF_TRI + CONFIG_SIGBPF_CHAR + CONFIG_SIGBPF_U8;
	sum += CONFIG_SIGBPF_S16 + CONFIG_SIGBPF_U16 + CONFIG_SIGBPF_S32 + CONFIG_SIGBPF_U32;
	sum += CONFIG_SIGBPF_S64 + CONFIG_SIGBPF_U64;
	sum += CONFIG_SIGBPF_STR[0] + CONFIG_SIGBPF_STR[7] + CONFIG_SIGBPF_STR1[0];
	sum += BAD;
	return sum;
}
