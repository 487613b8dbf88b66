/* bpf_obj_new_impl() with a program-local type: the type id argument is a
 * CO-RE relocation of kind TYPE_ID_LOCAL, i.e. an id in the program's own BTF.
 * Returns the sum stored in the object (7 + 35 = 42). */
#include "kfunc_common.h"

extern void *bpf_obj_new_impl(__u64 local_type_id, void *meta) __ksym;
extern void bpf_obj_drop_impl(void *kptr, void *meta) __ksym;

#define bpf_obj_new(type) ((type *)bpf_obj_new_impl(bpf_core_type_id_local(type), NULL))
#define bpf_obj_drop(kptr) bpf_obj_drop_impl(kptr, NULL)

struct local_pair {
	long a;
	long b;
};

SEC("syscall")
int obj_new_local(struct test_args *ctx)
{
	struct local_pair *p;
	long sum;

	p = bpf_obj_new(struct local_pair);
	if (!p)
		return -1;
	p->a = 7;
	p->b = 35;
	sum = p->a + p->b;
	bpf_obj_drop(p);
	return sum;
}
