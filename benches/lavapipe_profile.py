#!/usr/bin/env python3
"""Where a lavapipe run spends its time, by kind of machine code: the report half of
benches/lavapipe_profile.sh (which samples the run and dumps its JIT code; read it first).

Lavapipe (Mesa's Vulkan on the CPU) compiles every kernel to x86 code at run time, so no profiler
knows its functions. What this can tell is what the hot code *does*. It splits the dumped code
into basic blocks and sorts each sampled block into one of these kinds:

  storage load, lane by lane   Mesa 22.3's llvmpipe compiles a load from a storage buffer (or
                               workgroup memory) into a loop over the 8 SIMD lanes (`inc`,
                               `cmp $0x8`): test the lane's bit of the execution mask (`testb $0x1,
                               …(%rsp, …)`), read the lane's address from its stack slot and check
                               it against the buffer's size, load one 32-bit value into that lane
                               (`vpbroadcastd (…), %ymm{%k}` where the CPU has AVX-512VL, `vpinsrd`
                               where it has only AVX2), once per component.
  other work, lane by lane     any other block that reads one lane's slot of a spilled vector
                               (`(%rsp, %reg, 4)`): scalar work done one lane at a time.
  arithmetic                   vector floating point (mul, add, fma, max, div, sqrt) is at least a
                               quarter of the block.
  lane insert/extract          `vpextrd`/`vpinsrd`/`vmovd` work: a private array indexed at run
                               time, or a value moved between lanes one at a time.
  shuffles                     register permutes (`vpermps`, …): subgroupShuffle with an index
                               that is the same in every lane.
  stack moves                  spills and reloads (`vmov…` to or from `%rsp`).
  other                        loop control and address arithmetic.

A sample is charged to the block its instruction pointer lies in. The rules were written against
Mesa 22.3.6 with LLVM 15 on an AMD EPYC (Zen 4); on another Mesa or CPU, read a few hot blocks
(`--show 3`) before trusting the split.

Usage: lavapipe_profile.py WORKDIR [--show N]   (WORKDIR: what lavapipe_profile.sh wrote)
"""

import bisect
import collections
import re
import sys
from pathlib import Path

FLOAT_OPS = re.compile(r"^v(mul|add|sub|fmadd\d+|fmsub\d+|fnmadd\d+|div|max|min|sqrt|rcp|rsqrt)ps$")
JUMP = re.compile(r"^j[a-z]+$")
# One lane's 32-bit slot of a vector spilled to the stack: how a lane-by-lane loop reads the
# lane's own address or value (`0x75e0(%rsp,%rcx,4)`).
LANE_SLOT = re.compile(r"\(%rsp,%r[a-z0-9]+,4\)")
# objdump: "  address:\tbytes\tmnemonic operands"; a long instruction's last bytes come on a line of
# their own, with no mnemonic, which this skips.
LINE = re.compile(r"^\s*([0-9a-f]+):\t[0-9a-f ]+\t(\S+)\s*(.*)$")


def read_code(workdir):
    """Every instruction of the dumped JIT code, sorted: (address, mnemonic, operands)."""
    code = []
    for path in sorted(workdir.glob("jit.*.s")):
        for line in path.read_text().splitlines():
            m = LINE.match(line)
            if m:
                code.append((int(m.group(1), 16), m.group(2), m.group(3)))
    code.sort()
    return code


def block_starts(code):
    """Indices where a basic block starts: after a jump or return, and at every jump's target."""
    index_of = {address: i for i, (address, _, _) in enumerate(code)}
    starts = {0}
    for i, (_, mnemonic, operands) in enumerate(code):
        if JUMP.match(mnemonic) or mnemonic.startswith("ret"):
            starts.add(i + 1)
            target = re.match(r"^(0x[0-9a-f]+)", operands)
            if target and int(target.group(1), 16) in index_of:
                starts.add(index_of[int(target.group(1), 16)])
    return sorted(s for s in starts if s < len(code))


def kind_of(block):
    """What a basic block does, by the rules in this file's docstring."""
    mnemonics = [m for _, m, _ in block]
    lane_load = any(m in ("vpbroadcastd", "vpinsrd", "vpbroadcastq") and "(" in ops and "{%k" in ops for _, m, ops in block)
    lane_test = any(m == "testb" and "%rsp" in ops for _, m, ops in block)
    lane_insert = any(m == "vpinsrd" and "(" in ops for _, m, ops in block)
    lane_counter = any(m == "cmp" and ops.startswith("$0x8,") for _, m, ops in block) and "inc" in mnemonics
    lane_address = any(m == "mov" and LANE_SLOT.search(ops) for _, m, ops in block) and any(m == "cmp" for m in mnemonics)
    if lane_load or lane_test or lane_insert or lane_counter or lane_address:
        return "storage load, lane by lane"
    if any(LANE_SLOT.search(ops) for _, _, ops in block):
        return "other work, lane by lane"
    n = len(block)
    if sum(1 for m in mnemonics if FLOAT_OPS.match(m)) * 4 >= n:
        return "arithmetic"
    if sum(1 for m in mnemonics if m in ("vpextrd", "vpinsrd", "vmovd", "vextracti128", "vinserti128")) * 4 >= n:
        return "lane insert/extract"
    if sum(1 for m in mnemonics if m in ("vpermps", "vpermd", "vpermilps", "vshufps", "vpermt2ps")) * 4 >= n:
        return "shuffles"
    if sum(1 for _, m, ops in block if m.startswith("vmov") and "%rsp" in ops) * 2 >= n:
        return "stack moves"
    return "other"


def main():
    workdir = Path(sys.argv[1])
    show = int(sys.argv[sys.argv.index("--show") + 1]) if "--show" in sys.argv else 0
    code = read_code(workdir)
    if not code:
        sys.exit(f"{workdir}: no disassembled JIT code (jit.*.s); run benches/lavapipe_profile.sh first")
    starts = block_starts(code)
    addresses = [a for a, _, _ in code]
    samples = collections.Counter()
    for line in (workdir / "samples.txt").read_text().splitlines():
        count, ip = line.split()
        samples[int(ip, 16)] += int(count)
    total = sum(samples.values())
    if total == 0:
        sys.exit(f"{workdir}/samples.txt: no samples; was the command still running while perf sampled?")
    by_kind = collections.Counter()
    by_block = collections.Counter()
    for ip, count in samples.items():
        i = bisect.bisect_right(addresses, ip) - 1
        if i < 0 or addresses[i] != ip:
            by_kind["outside the JIT code (driver, wgpu, the host)"] += count
            continue
        start = starts[bisect.bisect_right(starts, i) - 1]
        by_block[start] += count
    for start, count in by_block.items():
        end = starts[bisect.bisect_right(starts, start)] if bisect.bisect_right(starts, start) < len(starts) else len(code)
        by_kind[kind_of(code[start:end])] += count
    print(f"{total} samples")
    for kind, count in by_kind.most_common():
        print(f"{100 * count / total:6.1f}%  {kind}")
    for start, count in by_block.most_common(show):
        end = starts[bisect.bisect_right(starts, start)] if bisect.bisect_right(starts, start) < len(starts) else len(code)
        print(f"\n{100 * count / total:.1f}% in the block at {code[start][0]:#x} ({kind_of(code[start:end])}):")
        for address, mnemonic, operands in code[start:end][:40]:
            print(f"  {address:#x}  {mnemonic} {operands}")


if __name__ == "__main__":
    main()
