/* Empties the kernel's CO-RE candidate cache (tests/test_core_relo.py).
 *
 * kernel/bpf/btf.c keeps the candidates of the last 31 essential names it
 * searched, one per slot (jhash(name) % 31), and a slot answers for its name
 * whatever the kind asked (struct, enum, enum64, ...).  Loading this program
 * searches 31 names that fill the 31 slots, so that the next load searches
 * afresh.  The names were chosen with the test's jhash; the test checks the
 * slots against the kernel's own log (log_level 2 prints the cache). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

#define FLUSH(n) struct sigbpf_core_flush_##n { int a; } __attribute__((preserve_access_index));
#define EXISTS(n) bpf_core_type_exists(struct sigbpf_core_flush_##n)

FLUSH(9)
FLUSH(81)
FLUSH(38)
FLUSH(40)
FLUSH(6)
FLUSH(22)
FLUSH(107)
FLUSH(21)
FLUSH(10)
FLUSH(8)
FLUSH(48)
FLUSH(52)
FLUSH(11)
FLUSH(20)
FLUSH(152)
FLUSH(43)
FLUSH(0)
FLUSH(12)
FLUSH(7)
FLUSH(34)
FLUSH(39)
FLUSH(115)
FLUSH(15)
FLUSH(16)
FLUSH(5)
FLUSH(2)
FLUSH(1)
FLUSH(3)
FLUSH(110)
FLUSH(139)
FLUSH(4)

SEC("syscall")
int flush(void *ctx)
{
	return EXISTS(9) + \
	EXISTS(81) + \
	EXISTS(38) + \
	EXISTS(40) + \
	EXISTS(6) + \
	EXISTS(22) + \
	EXISTS(107) + \
	EXISTS(21) + \
	EXISTS(10) + \
	EXISTS(8) + \
	EXISTS(48) + \
	EXISTS(52) + \
	EXISTS(11) + \
	EXISTS(20) + \
	EXISTS(152) + \
	EXISTS(43) + \
	EXISTS(0) + \
	EXISTS(12) + \
	EXISTS(7) + \
	EXISTS(34) + \
	EXISTS(39) + \
	EXISTS(115) + \
	EXISTS(15) + \
	EXISTS(16) + \
	EXISTS(5) + \
	EXISTS(2) + \
	EXISTS(1) + \
	EXISTS(3) + \
	EXISTS(110) + \
	EXISTS(139) + \
	EXISTS(4) + 0;
}
