#!/usr/bin/env bash
# CMake compiler launcher for the CUDA objects: runs the nvcc command it is given and
# keeps a copy of its diagnostics (the -Xptxas=-v resource report) in LOGDIR/<file>.log,
# so scripts/check-ptxas.sh can check the kernels for register spills without a second
# compilation. Usage (CMake): CUDA_COMPILER_LAUNCHER "scripts/ptxas-log.sh;LOGDIR".
logdir="$1"
shift
src=""
for a in "$@"; do
  case "$a" in *.cu) src="$a" ;; esac
done
mkdir -p "$logdir"
tmp="$(mktemp)"
"$@" 2>"$tmp"
rc=$?
cat "$tmp" >&2
if [ -n "$src" ]; then cat "$tmp" >"$logdir/$(basename "$src").log"; fi
rm -f "$tmp"
exit $rc
