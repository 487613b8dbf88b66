/* Type shapes for the BTF dump tests (raw, JSON and C against bpftool):
 * bitfields, packed structs, padding, every kind of enum, nested anonymous
 * types, arrays, function pointers, qualifiers, type and decl tags, floats,
 * and global/static/extern variables and functions.
 * Self-contained (no vmlinux.h): the types are what matters, not the program. */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
#include <bpf/bpf_helpers.h>

#define __tag(x) __attribute__((btf_type_tag(x)))
#define __decl(x) __attribute__((btf_decl_tag(x)))

struct bits {
	unsigned int a: 3;
	unsigned int b: 5;
	int c: 7;
	unsigned long long d: 33;
	char e;
	unsigned short f: 1;
	long g;
	unsigned char h: 2;
};

struct __attribute__((packed)) packed_one {
	char c;
	int i;
	long l;
};

struct __attribute__((packed)) packed_but_aligned {
	int i;
	int j;
};

struct padded {
	char c;
	long l __attribute__((aligned(16)));
	short s;
	int tail[0];
};

struct __attribute__((aligned(32))) over_aligned {
	char c;
};

enum small_enum { SMALL_A, SMALL_B = 3 } __attribute__((packed));
enum signed_enum { NEG_ONE = -1, NEG_BIG = -2147483647 - 1, POS = 7 };
enum big_unsigned { BIG_HI = 0xfffffffffffffff0ULL, BIG_LO = 1 };
enum big_signed { BIG_NEG = -5000000000LL, BIG_POS = 5000000000LL };
enum high_u32 { HIGH_U32 = 0x80000000U, HIGH_MAX = 0xffffffffU };

typedef struct {
	int x, y;
} point_t;

typedef union {
	__u32 word;
	__u8 bytes[4];
} word_t;

typedef enum { ANON_ZERO, ANON_ONE } anon_enum_t;

enum { TOP_LEVEL_CONST = 42 };

struct node;
typedef int (*visit_fn)(struct node *n, void *ctx, ...);
typedef void (*(*signal_like)(int, void (*)(int)))(int);

struct node {
	struct node *next, *prev;
	visit_fn visit;
	int (*ops[3])(const char *restrict, volatile int *);
	const volatile unsigned long *cv;
	char *const const_ptr;
	int matrix[2][3];
	int (*row)[4];
	union {
		struct {
			int inner_a;
			short inner_b;
		};
		long both;
		struct {
			char deep[5];
		} named_inner;
	};
	enum { IN_A, IN_B } inline_enum;
	anon_enum_t typed_enum;
	point_t pt;
	word_t w;
	signal_like sig;
	int __tag("user") *user_ptr;
	int __tag("rcu") __tag("percpu") *two_tags;
	struct empty {} empty;
	float f;
	double dbl;
	_Bool flag;
	__int128 wide;
	unsigned __int128 uwide;
	struct bits bits;
	struct packed_one p1;
	struct packed_but_aligned p2;
	struct padded pad;
	struct over_aligned oa;
	enum small_enum se;
	enum signed_enum sge;
	enum big_unsigned bu;
	enum big_signed bs;
	enum high_u32 hu;
	struct opaque *opaque;
	union opaque_u *opaque_u;
	int tagged_member __decl("member_tag");
};

struct node g_node __decl("var_tag");
static volatile int g_static_counter;
const volatile int g_rodata = 3;
int g_data = 5;
struct node *g_ptrs[2] SEC(".data.custom");

extern int bpf_extern_func(int x, struct node *n) __ksym;
extern int g_extern_var __ksym;

static __noinline int local_fn(struct node *n) __decl("func_tag")
{
	return n ? n->matrix[1][2] : 0;
}

__noinline int global_fn(int a __decl("param_tag"), struct node *n)
{
	return a + local_fn(n);
}

SEC("syscall")
int shapes(void *ctx)
{
	g_static_counter++;
	return global_fn(g_data + g_rodata, &g_node) +
	       (g_ptrs[0] != 0) + bpf_extern_func(1, &g_node) + g_extern_var;
}

char LICENSE[] SEC("license") = "GPL";
