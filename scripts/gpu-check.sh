#!/usr/bin/env bash
# The GPU check, one command for a machine with an NVIDIA GPU (Node may be absent):
#   1. build   configure and build the C++ core, the CUDA backend (cuBLAS found) and the
#              tests with plain CMake, for this GPU's architecture
#   2. tables  run every cross-backend op table (CPU reference vs CPU vs CUDA) plainly,
#              plus the ptxas spill check
#   3. sanitize the same tables under compute-sanitizer memcheck and racecheck
#   4. bench   benchmarks/gpu_bench (tessera) and benchmarks/gpu_torch.py (PyTorch:
#              flash SDPA, cuDNN conv3d channels_last_3d, torch.matmul) -> RESULTS.md
# Results go to $OUT (or ./gpu-results): summary.txt, build.log, tables.log,
# sanitizer.log, bench.log, ours.json, torch.json, RESULTS.md. Exit status 1 if any
# step failed. Phases can be run separately (each run keeps the build directory):
#   scripts/gpu-check.sh                     # all phases
#   scripts/gpu-check.sh build tables        # then: scripts/gpu-check.sh sanitize; ... bench
#   (sanitize = memcheck + racecheck; each can also be run alone: ... memcheck)
# Environment: BUILD (build dir, default build-gpu), JOBS (default nproc),
# CUDA_ARCH (default: from nvidia-smi, 90 -> 90a).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/gpu-results}"
BUILD="${BUILD:-build-gpu}"
JOBS="${JOBS:-$(nproc)}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(build tables sanitize bench)
status=0

say() { echo "[gpu-check] $*" | tee -a "$SUMMARY"; }
has_phase() { local p; for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

say "$(date -u +%FT%TZ) phases: ${phases[*]}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | sed 's/^/[gpu-check] gpu: /' | tee -a "$SUMMARY"
else
  say "nvidia-smi not found"
fi
say "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

TESTS=(test_core test_ops_basic test_ops_nn test_ops_attention test_ops_conv test_ops_optim test_ops_tensorcore)

# ---- 1. build ------------------------------------------------------------------------
if has_phase build; then
  arch="${CUDA_ARCH:-}"
  if [ -z "$arch" ]; then
    cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
    case "$cap" in
      90) arch=90a ;;
      "") arch="80;90a" ;;
      *) arch="$cap" ;;
    esac
  fi
  cublas_args=()
  nvcc_root="$(dirname "$(dirname "$(command -v nvcc)")")"
  if ! ls "$nvcc_root"/lib64/libcublasLt.so* "$nvcc_root"/lib/libcublasLt.so* "$nvcc_root"/targets/*/lib/libcublasLt.so* >/dev/null 2>&1; then
    # No cuBLAS in the toolkit: use the nvidia cuBLAS wheel next to PyTorch, if any.
    # Its header and library are linked into a shim root (include/, lib/) for CMake.
    site="$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)"
    lib="$(find $site -name 'libcublasLt.so*' 2>/dev/null | head -1)"
    hdr="$(find $site "$nvcc_root" /usr/include /usr/local/include -name cublasLt.h 2>/dev/null | head -1)"
    if [ -n "$lib" ] && [ -n "$hdr" ]; then
      shim="$ROOT/$BUILD/cublas-shim"
      mkdir -p "$shim/include" "$shim/lib"
      ln -sf "$(dirname "$hdr")"/*.h "$shim/include/"
      ln -sf "$(dirname "$lib")"/lib*.so* "$shim/lib/"
      cublas_args=(-DTESSERA_CUBLAS_ROOT="$shim")
      export LD_LIBRARY_PATH="$(dirname "$lib"):${LD_LIBRARY_PATH:-}"
      say "cuBLAS from $(dirname "$lib") (headers $(dirname "$hdr"))"
    else
      say "no cuBLAS found in the toolkit or next to PyTorch: the backend will not be linked"
    fi
  fi
  say "configure: CUDA architectures $arch ${cublas_args[*]}"
  if cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" "${cublas_args[@]}" >"$OUT/build.log" 2>&1 &&
     cmake --build "$BUILD" -j"$JOBS" >>"$OUT/build.log" 2>&1; then
    if grep -q "CUDA backend linked" "$OUT/build.log"; then
      say "build: OK (CUDA backend linked)"
    else
      say "build: FAIL: the CUDA backend was not linked (cuBLAS not found?)"
      status=1
    fi
  else
    say "build: FAIL (see build.log)"
    tail -30 "$OUT/build.log"
    status=1
  fi
fi
# the cuBLAS wheel's libraries at run time, when the build used them (shim links)
if root="$(grep -o 'TESSERA_CUBLAS_ROOT:PATH=.*' "$BUILD/CMakeCache.txt" 2>/dev/null | cut -d= -f2)" && [ -n "$root" ]; then
  real="$(readlink -f "$(ls "$root"/lib/libcublasLt.so* 2>/dev/null | head -1)" 2>/dev/null || true)"
  export LD_LIBRARY_PATH="$root/lib${real:+:$(dirname "$real")}:${LD_LIBRARY_PATH:-}"
fi

# ---- 2. tables -----------------------------------------------------------------------
if has_phase tables; then
  : >"$OUT/tables.log"
  for t in "${TESTS[@]}"; do
    if [ ! -x "$BUILD/$t" ]; then say "tables: $t missing"; status=1; continue; fi
    echo "=== $t" >>"$OUT/tables.log"
    one="$(mktemp)"
    if "$BUILD/$t" >"$one" 2>&1; then r=OK; else r=FAIL; status=1; fi
    cat "$one" >>"$OUT/tables.log"
    line="$(grep -E '^op table:' "$one" | tail -1)"
    rm -f "$one"
    say "tables: $t $r ${line:+($line)}"
  done
  skipped="$(grep -c 'cuda: skipped' "$OUT/tables.log" || true)"
  unsupported="$(grep -c 'cuda: not supported' "$OUT/tables.log" || true)"
  cuda_ok="$(grep -c 'cuda: OK' "$OUT/tables.log" || true)"
  cuda_fail="$(grep -c 'cuda: FAIL' "$OUT/tables.log" || true)"
  say "tables: cuda cases OK $cuda_ok, FAIL $cuda_fail, not supported $unsupported, skipped $skipped"
  [ "$skipped" != "0" ] && { say "tables: FAIL: cases were skipped on a GPU machine"; status=1; }
  if scripts/check-ptxas.sh "$BUILD/ptxas" >>"$OUT/summary.txt" 2>&1; then say "ptxas: OK (no spills)"; else say "ptxas: FAIL (spills, see above)"; status=1; fi
fi

# ---- 3. compute-sanitizer --------------------------------------------------------------
tools=()
if has_phase sanitize; then tools=(memcheck racecheck); fi
if has_phase memcheck; then tools+=(memcheck); fi
if has_phase racecheck; then tools+=(racecheck); fi
if [ ${#tools[@]} -gt 0 ]; then
  : >"$OUT/sanitizer.log"
  if ! command -v compute-sanitizer >/dev/null; then
    say "sanitize: FAIL: compute-sanitizer not found"
    status=1
  else
    for tool in "${tools[@]}"; do
      for t in "${TESTS[@]}"; do
        [ -x "$BUILD/$t" ] || continue
        echo "=== $tool $t" >>"$OUT/sanitizer.log"
        if compute-sanitizer --tool "$tool" --error-exitcode 99 "$BUILD/$t" >>"$OUT/sanitizer.log" 2>&1; then
          r=OK
        else
          r=FAIL
          status=1
        fi
        summary_line="$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer.log" | tail -1)"
        say "sanitize: $tool $t $r ${summary_line:+($summary_line)}"
      done
    done
  fi
fi

# ---- 4. benchmarks -----------------------------------------------------------------------
if has_phase bench; then
  : >"$OUT/bench.log"
  if [ -x "$BUILD/gpu_bench" ]; then
    if "$BUILD/gpu_bench" "$OUT/ours.json" >>"$OUT/bench.log" 2>&1; then say "bench: gpu_bench OK"; else say "bench: gpu_bench FAIL"; status=1; fi
  else
    say "bench: FAIL: $BUILD/gpu_bench missing"
    status=1
  fi
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    if python3 benchmarks/gpu_torch.py "$OUT/ours.json" "$OUT" >>"$OUT/bench.log" 2>&1; then
      say "bench: gpu_torch OK (RESULTS.md written)"
      grep -E '^\|' "$OUT/RESULTS.md" | tee -a "$SUMMARY" >/dev/null
    else
      say "bench: gpu_torch FAIL"
      status=1
    fi
  else
    say "bench: PyTorch with CUDA not available: no comparison"
  fi
fi

say "done: $([ $status = 0 ] && echo OK || echo FAIL)"
exit $status
