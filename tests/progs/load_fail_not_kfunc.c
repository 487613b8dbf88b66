/* A kernel FUNC that is not a kfunc (vfs_read has no bpf_kfunc tag and is in
 * no kfunc set): sigbpf's check refuses it, and so does the kernel
 * ("calling kernel function vfs_read is not allowed", EACCES). */
#include "kfunc_common.h"

extern ssize_t vfs_read(struct file *file, char *buf, size_t count, loff_t *pos) __ksym;

SEC("syscall")
int not_kfunc(struct test_args *ctx)
{
	return vfs_read(NULL, NULL, 0, NULL);
}
