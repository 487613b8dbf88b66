# Layouts llvm-objdump handles specially, for tests/test_asm_llvm.py:
# a code section without a symbol at offset 0 (labelled with the section
# name), several symbols at one address (one label is shown), a data symbol
# inside code (dumped as bytes), runs of zero bytes ("..."), jumps whose
# targets are annotated with the nearest label, and an empty code section.
	.section "nosym","ax"
	r0 = 1
	exit

	.section "mid","ax"
	goto +0
	goto -2
	.globl g1
	.type g1,@function
g1:
	r0 = 2
lab:
	goto -3
	.globl g2
	.type g2,@function
g2:
	.globl g3
g3:
	.type obj,@object
obj:
	r0 = 4
	exit

	.section "data_in_code","ax"
	.globl f
	.type f,@function
f:
	r0 = 1
	.type table,@object
table:
	.quad 0x4142434445464748
	.byte 1,2,3,4,5,6,7,8
	.type tail,@function
tail:
	exit

	.section "empty","ax"

	.section "zeros","ax"
	.globl z
	.type z,@function
z:
	r0 = 1
	.quad 0
	.quad 0
	.globl z2
	.type z2,@function
z2:
	.quad 0
	r0 = 1
	.quad 0
	.quad 0
	.byte 0,0,0,0,1,0,0,0
	exit

	.section "far","ax"
	.globl far_jumps
	.type far_jumps,@function
far_jumps:
	goto -0x8000
	.byte 0x06,0,0,0,0xff,0xff,0xff,0x7f	# gotol +0x7fffffff
	.byte 0x06,0,0,0,0,0,0,0x80		# gotol -0x80000000
	if r1 == 0 goto +0x7fff
	may_goto -1
	exit
