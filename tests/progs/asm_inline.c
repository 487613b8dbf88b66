// One of every instruction form LLVM 19 can assemble, forced with inline asm so
// that the disassembler sees all ALU/ALU64 ops (incl. sdiv/smod, movsx, bswap,
// le/be, neg), all loads/stores (incl. sign-extending and store-immediate),
// all atomics, every JMP/JMP32 condition, goto/gotol/may_goto, ld_imm64,
// LD_ABS/LD_IND, call and callx.  Compile with -mcpu=v4.
__attribute__((section("tc"), used)) int every_insn(void *ctx)
{
    asm volatile(
        "r1 = 1\n r1 += 2\n r1 -= r2\n r1 *= 3\n r1 /= r2\n r1 |= 4\n r1 &= r2\n"
        "r1 <<= 5\n r1 >>= r2\n r1 = -r1\n r1 %%= 6\n r1 ^= r2\n r1 = r2\n r1 s>>= 7\n"
        "w1 = 1\n w1 += 2\n w1 -= w2\n w1 *= 3\n w1 /= w2\n w1 |= 4\n w1 &= w2\n"
        "w1 <<= 5\n w1 >>= w2\n w1 = -w1\n w1 %%= 6\n w1 ^= w2\n w1 = w2\n w1 s>>= 7\n"
        "r1 = le16 r1\n r1 = le32 r1\n r1 = le64 r1\n r1 = be16 r1\n r1 = be32 r1\n r1 = be64 r1\n"
        "r1 = bswap16 r1\n r1 = bswap32 r1\n r1 = bswap64 r1\n"
        "r1 s/= r2\n r1 s%%= 3\n w1 s/= w2\n w1 s%%= 3\n"
        "r1 = (s8)r2\n r1 = (s16)r2\n r1 = (s32)r2\n w1 = (s8)w2\n w1 = (s16)w2\n"
        "r1 = *(u8 *)(r2 + 1)\n r1 = *(u16 *)(r2 - 2)\n r1 = *(u32 *)(r2 + 4)\n r1 = *(u64 *)(r2 + 8)\n"
        "w1 = *(u8 *)(r2 + 1)\n w1 = *(u16 *)(r2 + 2)\n w1 = *(u32 *)(r2 + 4)\n"
        "r1 = *(s8 *)(r2 + 1)\n r1 = *(s16 *)(r2 + 2)\n r1 = *(s32 *)(r2 + 4)\n"
        "*(u8 *)(r1 + 1) = r2\n *(u16 *)(r1 + 2) = r2\n *(u32 *)(r1 + 4) = r2\n *(u64 *)(r1 + 8) = r2\n"
        "*(u8 *)(r1 + 1) = w2\n *(u16 *)(r1 + 2) = w2\n *(u32 *)(r1 + 4) = w2\n"
        "*(u8 *)(r1 + 1) = 3\n *(u16 *)(r1 + 2) = 4\n *(u32 *)(r1 + 4) = 5\n *(u64 *)(r1 - 8) = -6\n"
        "lock *(u32 *)(r1 + 0) += w2\n lock *(u64 *)(r1 + 8) += r2\n"
        "lock *(u32 *)(r1 + 0) |= w2\n lock *(u32 *)(r1 + 0) &= w2\n lock *(u32 *)(r1 + 0) ^= w2\n"
        "lock *(u64 *)(r1 + 0) |= r2\n lock *(u64 *)(r1 + 0) &= r2\n lock *(u64 *)(r1 + 0) ^= r2\n"
        "w2 = atomic_fetch_add((u32 *)(r1 + 0), w2)\n w2 = atomic_fetch_or((u32 *)(r1 + 0), w2)\n"
        "w2 = atomic_fetch_and((u32 *)(r1 + 0), w2)\n w2 = atomic_fetch_xor((u32 *)(r1 + 0), w2)\n"
        "r2 = atomic_fetch_add((u64 *)(r1 + 0), r2)\n r2 = atomic_fetch_or((u64 *)(r1 + 0), r2)\n"
        "r2 = atomic_fetch_and((u64 *)(r1 + 0), r2)\n r2 = atomic_fetch_xor((u64 *)(r1 + 0), r2)\n"
        "r2 = xchg_64(r1 + 0, r2)\n w2 = xchg32_32(r1 + 0, w2)\n"
        "r0 = cmpxchg_64(r1 + 0, r0, r2)\n w0 = cmpxchg32_32(r1 + 0, w0, w2)\n"
        "if r1 == 1 goto +1\n if r1 != r2 goto +1\n if r1 > 1 goto +1\n if r1 >= r2 goto +1\n"
        "if r1 < 1 goto +1\n if r1 <= r2 goto +1\n if r1 s> 1 goto +1\n if r1 s>= r2 goto +1\n"
        "if r1 s< -1 goto +1\n if r1 s<= r2 goto +1\n if r1 & 1 goto +1\n if r1 & r2 goto -1\n"
        "if w1 == 1 goto +1\n if w1 != w2 goto +1\n if w1 > 1 goto +1\n if w1 >= w2 goto +1\n"
        "if w1 < 1 goto +1\n if w1 <= w2 goto +1\n if w1 s> 1 goto +1\n if w1 s>= w2 goto +1\n"
        "if w1 s< -1 goto +1\n if w1 s<= w2 goto +1\n if w1 & 1 goto +1\n if w1 & w2 goto -3\n"
        "goto +1\n gotol +2\n may_goto +1\n gotol -4\n"
        "r0 = 0x123456789 ll\n r1 = -1 ll\n r2 = 0x8000000000000000 ll\n"
        "r0 = *(u8 *)skb[1]\n r0 = *(u16 *)skb[2]\n r0 = *(u32 *)skb[4]\n"
        "r0 = *(u8 *)skb[r1]\n r0 = *(u16 *)skb[r1]\n r0 = *(u32 *)skb[r1]\n"
        "call 1\n call -1\n callx r1\n"
        "r1 = addr_space_cast(r2, 0, 1)\n"
        ::: "r0", "r1", "r2", "memory");
    return 0;
}

char LICENSE[] __attribute__((section("license"), used)) = "GPL";
