/* A struct_ops program: sigbpf refuses to attach it. */
#include "attach_common.h"

SEC("struct_ops/test_1")
int BPF_PROG(ops_test_1)
{
	return 0;
}
