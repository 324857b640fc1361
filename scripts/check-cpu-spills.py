#!/usr/bin/env python3
"""Fails when a CPU register-blocked kernel stores a vector register to the stack inside
a loop: the sign that the compiler spilled its accumulators. The AVX2 GEMM micro-kernel
once did (an accumulator array kept on the stack and stored every k step) and ran at a
third of the FMA peak; nothing else showed it but a profile.

  check-cpu-spills.py OBJECT...   (objects of native/cpu, e.g. build/CMakeFiles/...)

Checked functions: names with ukernel, row_kernel or block_gemm (the micro-kernels of
gemm.cc, conv3d.cc and attention.cc). A loop is the span between a backward jump and its
target that holds an FMA; a spill is a vmovaps/vmovups/vmovdqa/vmovdqu of an xmm/ymm/zmm register to an
(%rsp)/(%rbp) address inside it. Stores after the loop (a tile written out) are fine."""
import re
import subprocess
import sys

KERNEL = re.compile(r"ukernel|row_kernel|block_gemm")
FUNC = re.compile(r"^([0-9a-f]+) <(.+)>:$")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
JUMP = re.compile(r"^j[a-z]+$")
SPILL = re.compile(r"^v(movaps|movups|movdqa|movdqu|movdqa64|movdqu64|movdqa32|movdqu32)$")
STORE_TO_STACK = re.compile(r"%[xyz]mm\d+,.*\(%r[sb]p\)")


def functions(obj):
    out = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", obj], capture_output=True, text=True, check=True).stdout
    name, insns = None, []
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            if name:
                yield name, insns
            name, insns = m.group(2), []
            continue
        m = INSN.match(line)
        if m and name:
            insns.append((int(m.group(1), 16), m.group(2), m.group(3)))
    if name:
        yield name, insns


def spills(insns):
    # Loops: a backward jump and its target, counted only when an FMA lies between them
    # (the compute loops; a backward jump to shared tail code is no loop of interest).
    fmas = [addr for addr, op, _ in insns if op.startswith("vfmadd")]
    loops = []
    for addr, op, args in insns:
        if JUMP.match(op):
            t = re.match(r"([0-9a-f]+)", args)
            if t and int(t.group(1), 16) < addr:
                lo = int(t.group(1), 16)
                if any(lo <= f <= addr for f in fmas):
                    loops.append((lo, addr))
    found = []
    for addr, op, args in insns:
        if SPILL.match(op) and STORE_TO_STACK.search(args) and any(lo <= addr <= hi for lo, hi in loops):
            found.append(f"{addr:x}: {op} {args}")
    return found


def main(objs):
    if not objs:
        print(__doc__)
        return 2
    checked, bad = 0, 0
    for obj in objs:
        for name, insns in functions(obj):
            if not KERNEL.search(name):
                continue
            checked += 1
            s = spills(insns)
            if s:
                bad += 1
                print(f"SPILL in a loop of {name} ({obj}):")
                for line in s[:6]:
                    print(f"  {line}")
    print(f"check-cpu-spills: {checked} kernel functions checked, {bad} with vector stores to the stack inside a loop")
    if checked == 0:
        print("check-cpu-spills: no kernel functions found (wrong objects?)")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
