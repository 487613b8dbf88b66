/* An LSM program on file_open: counts opens of the inode in lsm_config[0] (slot 0) and,
 * when lsm_config[1] is non-zero, denies them with -EPERM (slot 1 counts denials). */
#include "attach_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} lsm_config SEC(".maps");

SEC("lsm/file_open")
int BPF_PROG(deny_open, struct file *file)
{
	__u32 key = 0;
	__u64 *ino = bpf_map_lookup_elem(&lsm_config, &key);
	__u64 *deny;

	if (!ino || !*ino || file->f_inode->i_ino != *ino)
		return 0;
	bump(0);
	key = 1;
	deny = bpf_map_lookup_elem(&lsm_config, &key);
	if (deny && *deny) {
		bump(1);
		return -1; /* -EPERM */
	}
	return 0;
}
