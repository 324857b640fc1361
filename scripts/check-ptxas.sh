#!/usr/bin/env bash
# Register-spill check for the CUDA kernels that must not spill: attention, conv3d and
# patchify (every kernel in those files, for every architecture compiled). Reads the
# ptxas resource reports (-Xptxas=-v) that the CMake build keeps in BUILD/ptxas/
# (scripts/ptxas-log.sh); when they are missing it compiles the three files itself
# with nvcc for sm_80 and sm_90a. Prints registers / stack / spills per kernel and
# exits 1 if any kernel reports spill stores or spill loads > 0 (or a report is
# missing), 0 otherwise. Needs no GPU.
#   scripts/check-ptxas.sh [LOGDIR]        (default: build/ptxas)
set -uo pipefail
cd "$(dirname "$0")/.."
logdir="${1:-build/ptxas}"
files=(attention conv3d patchify)

missing=0
for f in "${files[@]}"; do [ -s "$logdir/$f.cu.log" ] || missing=1; done
if [ "$missing" = 1 ]; then
  nvcc_bin="$(command -v nvcc || true)"
  if [ -z "$nvcc_bin" ]; then
    echo "check-ptxas: no reports in $logdir and no nvcc to make them" >&2
    exit 1
  fi
  mkdir -p "$logdir"
  for f in "${files[@]}"; do
    echo "check-ptxas: compiling cuda/$f.cu (sm_80, sm_90a)"
    "$nvcc_bin" -std=c++17 --expt-relaxed-constexpr -O3 -Xptxas=-v -Inative \
      -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90a,code=sm_90a \
      -c "cuda/$f.cu" -o /dev/null 2>"$logdir/$f.cu.log" || { cat "$logdir/$f.cu.log"; exit 1; }
  done
fi

demangle() { if command -v c++filt >/dev/null; then c++filt; else cat; fi; }
status=0
for f in "${files[@]}"; do
  log="$logdir/$f.cu.log"
  if [ ! -s "$log" ]; then
    echo "check-ptxas: FAIL: no ptxas report for cuda/$f.cu ($log)"
    status=1
    continue
  fi
  # one line per (kernel, arch): arch regs stack spill_stores spill_loads name
  table="$(awk '
    /Compiling entry function/ {
      match($0, /function .*'"'"' for/); name = substr($0, RSTART + 10, RLENGTH - 15)
      match($0, /for '"'"'sm_[0-9a-z]+'"'"'/); arch = substr($0, RSTART + 5, RLENGTH - 6)
      next
    }
    /bytes stack frame/ && name != "" {
      stack = $1; stores = $5; loads = $9
    }
    /Used [0-9]+ registers/ && name != "" {
      match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15)
      printf "%s %s %s %s %s %s\n", arch, regs, stack, stores, loads, name
      name = ""
    }' "$log")"
  if [ -z "$table" ]; then
    echo "check-ptxas: FAIL: cuda/$f.cu: the report lists no kernels (was it built with -Xptxas=-v?)"
    status=1
    continue
  fi
  echo "cuda/$f.cu:"
  printf "  %-7s %5s %6s %7s %7s  %s\n" arch regs stack spill_st spill_ld kernel
  while read -r arch regs stack st ld name; do
    pretty="$(echo "$name" | demangle | sed 's/ts::cuda::(anonymous namespace):://g' | cut -c1-90)"
    flag=""
    if [ "$st" != "0" ] || [ "$ld" != "0" ]; then flag="  <-- SPILLS"; status=1; fi
    printf "  %-7s %5s %6s %7s %7s  %s%s\n" "$arch" "$regs" "$stack" "$st" "$ld" "$pretty" "$flag"
  done <<<"$table"
done
if [ "$status" = 0 ]; then echo "check-ptxas: OK (no register spills in attention, conv3d, patchify)"; else echo "check-ptxas: FAIL"; fi
exit $status
