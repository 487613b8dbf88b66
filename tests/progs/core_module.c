/* CO-RE relocations of types only a module has (xfs), next to a vmlinux one
 * (tests/test_core_relo.py: vmlinux is searched first, modules only for types
 * vmlinux lacks). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

__u64 out[8];

struct xfs_inode___local {
	void *i_mount;
	__u64 i_ino;
} __attribute__((preserve_access_index));

enum xfs_dinode_fmt___local { XFS_DINODE_FMT_BTREE___local = 3 };

SEC("syscall")
int module_types(void *ctx)
{
	out[0] = bpf_core_field_offset(struct xfs_inode___local, i_ino);
	out[1] = bpf_core_type_exists(struct xfs_inode___local);
	out[2] = bpf_core_type_id_kernel(struct xfs_inode___local);
	out[3] = bpf_core_enum_value(enum xfs_dinode_fmt___local, XFS_DINODE_FMT_BTREE___local);
	out[4] = bpf_core_field_offset(struct task_struct, pid);
	return 0;
}
