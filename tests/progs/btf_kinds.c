/* Every BTF kind with values the BTF tests check field by field (sigbpf.btf):
 * bitfields (kind_flag), signed enum, ENUM64, union, FWD, TYPE_TAG, DECL_TAG,
 * CONST/VOLATILE/RESTRICT, FLOAT, multi-dimensional arrays, a variadic
 * function pointer, VARs in .data/.bss/custom sections, an extern kfunc
 * (a FUNC with extern linkage in the .ksyms DATASEC) and a typeless extern
 * ksym (a GLOBAL_EXTERN VAR of const void).  Self-contained. */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
#include <bpf/bpf_helpers.h>

#define __tag(x) __attribute__((btf_type_tag(x)))
#define __decl(x) __attribute__((btf_decl_tag(x)))

struct kinds_bits {
	unsigned int a : 3;
	int b : 5;
	char c;
};

enum kinds_small { KINDS_NEG = -1, KINDS_ONE = 1 };
enum kinds_big { KINDS_HUGE = 0xffffffffffULL };

union kinds_union {
	int i;
	float f;
};

struct kinds_fwd;

struct kinds_all {
	struct kinds_bits bits;
	enum kinds_small small;
	enum kinds_big big;
	union kinds_union u;
	struct kinds_fwd *fwd;
	int __tag("kinds_user") *tagged;
	const volatile int cv;
	char *restrict r;
	double d;
	long arr[3][2];
	int (*fp)(int, ...);
	__u32 plain;
} __decl("kinds_shape");

struct kinds_all kinds_global;
int kinds_counter SEC(".data.kinds") = 1;
static volatile int kinds_zero;

extern int bpf_kinds_kfunc(int x) __ksym;
extern const void kinds_typeless __ksym __weak;

__attribute__((noinline)) int kinds_sub(int x __decl("kinds_arg"))
{
	return x + kinds_zero;
}

SEC("syscall")
int kinds_prog(void *ctx)
{
	if (&kinds_typeless)
		return 1;
	return kinds_sub(kinds_counter) + bpf_kinds_kfunc(kinds_global.small);
}

char LICENSE[] SEC("license") = "GPL";
