/* Calls vfs_read, a FUNC in vmlinux BTF that is not a kfunc: the seed's
 * name lookup resolves it; the verifier later refuses it with EACCES
 * "calling kernel function vfs_read is not allowed"; sigbpf reports it first. */
#include "kfunc_common.h"

extern ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos) __ksym;

SEC("syscall")
int not_kfunc(struct test_args *ctx)
{
	return vfs_read((void *)0, (void *)0, 0, (void *)0);
}
