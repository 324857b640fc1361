#!/usr/bin/env bash
# The GPU check, one command for a machine with an NVIDIA GPU (Node may be absent):
#   1. build    configure and build the C++ core, the CUDA backend (cuBLAS found), the
#               tests and gpu_bench with plain CMake (Ninja when present), for this GPU
#   2. tables   run every cross-backend op table (CPU reference vs CPU vs CUDA) and the
#               raw-entry-point test, plus the ptxas spill check
#   3. sanitize the same tests under compute-sanitizer memcheck and racecheck
#   4. node     with NODE=/path/to/node (an official Linux x64 build needs only glibc;
#               dist/ and node_modules/ carried prebuilt): build the addon with cmake-js
#               (same CUDA architecture and cuBLAS), point TESSERA_ADDON at it, then run
#               scripts/gpu-parity.js (CPU-vs-CUDA parity of a DiT and a VAE training
#               step), examples/train-tiny.js --device cuda, and the training-step
#               benchmark: benchmarks/gpu_train_step.js (ours) against
#               benchmarks/gpu_torch_step.py (PyTorch), a table appended to RESULTS.md
#   5. bench    benchmarks/gpu_bench (tessera) and benchmarks/gpu_torch.py (PyTorch:
#               flash SDPA, cuDNN conv3d channels_last_3d, torch.matmul) -> RESULTS.md
# Every step is reported as OK, FAIL, TIMEOUT, "no device" (no GPU here: nothing CUDA
# was checked), "not linked", "missing" or "skipped"; a CUDA part is never reported OK
# without a device. Exit status 1 if any step failed (on a machine without a GPU, the
# CUDA parts are "no device", which is not a failure, and never a pass).
# Results go to $OUT (or ./gpu-results): summary.txt, build.log, tables.log,
# sanitizer.log, node-build.log, node.log, bench.log, ours.json, torch.json,
# ours-train.json, torch-train.json, train-steps.md, RESULTS.md. Phases can be run
# separately (each run keeps the build directories):
#   scripts/gpu-check.sh                      # all phases
#   scripts/gpu-check.sh build tables         # then: scripts/gpu-check.sh sanitize; ... node; ... bench
#   (sanitize = memcheck + racecheck; each can also be run alone: ... memcheck)
# Environment: BUILD (default build-gpu), NODE_BUILD (default build-gpu-node), JOBS
# (default nproc), CUDA_ARCH (default: from nvidia-smi, 90 -> 90a), NODE (a node
# binary), BUDGET_S (seconds for the whole check, default 540: every step's timeout is
# cut to what is left, and a step with no time left is reported "not run" and fails).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/gpu-results}"
BUILD="${BUILD:-build-gpu}"
NODE_BUILD="${NODE_BUILD:-build-gpu-node}"
JOBS="${JOBS:-$(nproc)}"
BUDGET_S="${BUDGET_S:-540}"
NODE="${NODE:-}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
case "$NODE_BUILD" in /*) ;; *) NODE_BUILD="$ROOT/$NODE_BUILD" ;; esac
SUMMARY="$OUT/summary.txt"
phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(build tables sanitize node bench)
status=0
SECONDS=0

say() { echo "[gpu-check] $*" | tee -a "$SUMMARY"; }
failed() { say "$*"; status=1; }
has_phase() { local p; for p in "${phases[@]}"; do [ "$p" = "$1" ] && return 0; done; return 1; }

# Seconds a step may take: want, cut to the budget left (minus a margin); 0 = none left.
limit() {
  local want=$1 left=$((BUDGET_S - SECONDS - 5))
  [ "$left" -lt "$want" ] && want=$left
  [ "$want" -lt 0 ] && want=0
  echo "$want"
}
# run_limited SECONDS LOG CMD...: runs CMD with a timeout, output appended to LOG; its
# exit status, 124 when it timed out, 125 when no time was left to start it.
run_limited() {
  local s
  s="$(limit "$1")"
  local log=$2
  shift 2
  [ "$s" -le 0 ] && return 125
  timeout --kill-after=10 "$s" "$@" >>"$log" 2>&1
}
# The word for an exit status of run_limited.
verdict() {
  case "$1" in
    0) echo OK ;;
    124 | 137) echo "TIMEOUT" ;;
    125) echo "not run (the ${BUDGET_S}s budget is spent)" ;;
    *) echo "FAIL (exit $1)" ;;
  esac
}

say "$(date -u +%FT%TZ) phases: ${phases[*]}"
gpus=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  gpus="$(nvidia-smi -L | grep -c '^GPU')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader | sed 's/^/[gpu-check] gpu: /' | tee -a "$SUMMARY"
fi
if [ "$gpus" -gt 0 ]; then
  device="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
else
  device=""
  say "no GPU answered (nvidia-smi missing or found no device): every CUDA part is reported \"no device\""
fi
say "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

# The C++ tests the check runs: the core, every op table, and the raw CUDA entry points.
TESTS=(test_core)
for f in test/cpp/test_ops_*.cc; do TESTS+=("$(basename "$f" .cc)"); done
TESTS+=(test_cuda_raw)

# ---- CUDA architecture and cuBLAS (for the C++ build and the addon alike) --------------
arch="${CUDA_ARCH:-}"
if [ -z "$arch" ]; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
  case "$cap" in
    90) arch=90a ;;
    "") arch="80;90a" ;;
    *) arch="$cap" ;;
  esac
fi
cublas_root=""   # a shim root (include/, lib/) when cuBLAS comes from the nvidia-cublas wheel
cublas_found=0
if has_phase build || has_phase node; then
  nvcc_root="$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /nonexistent/bin/nvcc)")")"
  if ls "$nvcc_root"/lib64/libcublasLt.so* "$nvcc_root"/lib/libcublasLt.so* "$nvcc_root"/targets/*/lib/libcublasLt.so* >/dev/null 2>&1; then
    cublas_found=1
    say "cuBLAS: from the toolkit ($nvcc_root)"
  else
    # The wheel PyTorch depends on: its own package path, so header and library come
    # from one install (a search of site-packages could pair one version's header with
    # another's library).
    wheel="$(python3 -c 'import nvidia.cublas as c; print(list(c.__path__)[0])' 2>/dev/null || true)"
    if [ -n "$wheel" ] && [ -f "$wheel/include/cublasLt.h" ] && ls "$wheel"/lib/libcublasLt.so* >/dev/null 2>&1; then
      # Only cuBLAS's own headers go into the shim: the toolkit's (cuda_runtime.h,
      # library_types.h, ...) must not be shadowed by copies of another version.
      cublas_root="$BUILD/cublas-shim"
      rm -rf "$cublas_root"
      mkdir -p "$cublas_root/include" "$cublas_root/lib"
      ln -sf "$wheel"/include/cublas*.h "$cublas_root/include/"
      ln -sf "$wheel"/lib/libcublas*.so* "$cublas_root/lib/"
      export LD_LIBRARY_PATH="$wheel/lib:${LD_LIBRARY_PATH:-}"
      cublas_found=1
      say "cuBLAS: the nvidia-cublas wheel at $wheel"
    else
      say "cuBLAS: not found in the toolkit or as the nvidia-cublas wheel (python3 -c 'import nvidia.cublas')"
    fi
  fi
fi
# Without cuBLAS the backend is still linked (matmul then "not supported"), so its
# registration and the "no device" paths are checked; on a GPU machine that is a failure.
link_without=OFF
[ "$cublas_found" = 0 ] && link_without=ON
cmake_defs=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" -DTESSERA_CUDA_LINK_WITHOUT_CUBLAS="$link_without")
[ -n "$cublas_root" ] && cmake_defs+=(-DTESSERA_CUBLAS_ROOT="$cublas_root")

# How a configure log says the backend was linked: "linked", "without-cublas", "not-linked".
linkage() {
  if grep -q "CUDA backend linked (cuBLAS found)" "$1"; then echo linked
  elif grep -q "CUDA backend linked without cuBLAS" "$1"; then echo without-cublas
  else echo not-linked
  fi
}
# Reports a build's linkage; returns 1 when it is a failure (a GPU machine needs cuBLAS).
report_linkage() {
  local what=$1 how=$2
  case "$how" in
    linked)
      if [ "$gpus" -gt 0 ]; then say "$what: OK (CUDA backend linked with cuBLAS)"
      else say "$what: compiled (CUDA backend linked with cuBLAS; no device to run it)"; fi ;;
    without-cublas)
      if [ "$gpus" -gt 0 ]; then failed "$what: FAIL (CUDA backend linked without cuBLAS: matmul not supported; cuBLAS not found)"; return 1
      else say "$what: compiled (CUDA backend linked without cuBLAS, not linked to cuBLAS: matmul not supported; no device)"; fi ;;
    *)
      if [ "$gpus" -gt 0 ]; then failed "$what: FAIL (CUDA backend not linked; see the log)"; return 1
      else say "$what: compiled (CUDA backend not linked; no device)"; fi ;;
  esac
  return 0
}

# ---- 1. build ------------------------------------------------------------------------
if has_phase build; then
  : >"$OUT/build.log"
  gen=()
  if [ ! -f "$BUILD/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
  say "configure: CUDA architectures $arch, JOBS $JOBS${cublas_root:+, cuBLAS shim $cublas_root}, link without cuBLAS $link_without"
  if run_limited 120 "$OUT/build.log" cmake -S . -B "$BUILD" "${gen[@]}" "${cmake_defs[@]}"; then
    how="$(linkage "$OUT/build.log")"
    targets=("${TESTS[@]}")
    [ "$how" != not-linked ] && targets+=(gpu_bench)
    run_limited 360 "$OUT/build.log" cmake --build "$BUILD" -j"$JOBS" --target "${targets[@]}"
    rc=$?
    if [ $rc = 0 ]; then
      report_linkage build "$how"
    else
      failed "build: $(verdict $rc) (see build.log)"
      tail -30 "$OUT/build.log"
    fi
  else
    failed "build: configure failed (see build.log)"
    tail -30 "$OUT/build.log"
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
    if [ ! -x "$BUILD/$t" ]; then failed "tables: $t missing (not built)"; continue; fi
    one="$(mktemp)"
    run_limited 120 "$one" "$BUILD/$t"
    rc=$?
    { echo "=== $t"; cat "$one"; } >>"$OUT/tables.log"
    line="$(grep -E '^(op table|raw entry points):' "$one" | tail -1)"
    rm -f "$one"
    r="$(verdict $rc)"
    [ $rc != 0 ] && status=1
    if [ "$gpus" -gt 0 ]; then say "tables: $t $r ${line:+($line)}"
    else say "tables: $t: cpu rows $r, cuda rows no device"; fi
  done
  count() { grep -c "cuda: $1" "$OUT/tables.log" || true; }
  cuda_ok="$(count OK)" cuda_fail="$(count FAIL)" unsupported="$(count 'not supported')" skipped="$(count skipped)"
  if [ "$gpus" -gt 0 ]; then
    say "tables: cuda cases OK $cuda_ok, FAIL $cuda_fail, not supported $unsupported, skipped $skipped"
    [ "$skipped" != 0 ] && failed "tables: FAIL: $skipped cuda cases were skipped on a GPU machine"
    # Every op in the tables has CUDA kernels: a backend that does not claim one (or a
    # build without cuBLAS) leaves part of the check undone.
    [ "$unsupported" != 0 ] && failed "tables: FAIL: $unsupported cuda cases not supported (every op here has CUDA kernels)"
  else
    say "tables: cuda: no device ($skipped cuda cases skipped, $unsupported not supported, $cuda_ok run)"
    [ "$cuda_ok" != 0 ] && failed "tables: FAIL: $cuda_ok cuda cases reported OK on a machine without a GPU"
  fi
  if [ -d "$BUILD/ptxas" ]; then
    if scripts/check-ptxas.sh "$BUILD/ptxas" >>"$OUT/tables.log" 2>&1; then say "ptxas: OK (no spills; a compile-time check)"
    else failed "ptxas: FAIL (spills, see tables.log)"; fi
  else
    say "ptxas: no ptxas reports (CUDA sources not compiled)"
  fi
fi

# ---- 3. compute-sanitizer --------------------------------------------------------------
tools=()
if has_phase sanitize; then tools=(memcheck racecheck); fi
if has_phase memcheck; then tools+=(memcheck); fi
if has_phase racecheck; then tools+=(racecheck); fi
if [ ${#tools[@]} -gt 0 ]; then
  : >"$OUT/sanitizer.log"
  if [ "$gpus" = 0 ]; then
    say "sanitize: no device (${tools[*]} not run)"
  elif ! command -v compute-sanitizer >/dev/null; then
    failed "sanitize: FAIL: compute-sanitizer not found"
  else
    for tool in "${tools[@]}"; do
      for t in "${TESTS[@]}"; do
        [ -x "$BUILD/$t" ] || continue
        one="$(mktemp)"
        run_limited 150 "$one" compute-sanitizer --tool "$tool" --error-exitcode 99 "$BUILD/$t"
        rc=$?
        { echo "=== $tool $t"; cat "$one"; } >>"$OUT/sanitizer.log"
        summary_line="$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$one" | tail -1)"
        rm -f "$one"
        [ $rc != 0 ] && status=1
        say "sanitize: $tool $t $(verdict $rc) ${summary_line:+($summary_line)}"
      done
    done
  fi
fi

# ---- 4. node -------------------------------------------------------------------------------
# Ours and PyTorch's training steps as one markdown table (to stdout). Cases are matched
# by (model, precision); ratio = PyTorch ms / tessera ms (above 1: tessera is faster).
train_table() {
  python3 - "$1" "$2" "$device" <<'EOF'
import json, sys
def cases(path):
    d = json.load(open(path))
    rows = d if isinstance(d, list) else d.get("cases", d.get("results", []))
    return {(r.get("model"), r.get("precision")): r for r in rows if isinstance(r, dict)}
ours, torch_ = cases(sys.argv[1]), cases(sys.argv[2])
# the issue's targets: DiT step >= 0.8x PyTorch eager in bf16, VAE step >= 0.5x
target = {("dit", "bf16"): 0.8, ("vae", "bf16"): 0.5, ("vae", "fp32"): 0.5}
print(f"\n## Training steps on {sys.argv[3]}: tessera vs PyTorch eager\n")
print("| step | precision | tessera ms | PyTorch ms | PyTorch / tessera | target |")
print("|---|---|---|---|---|---|")
for key in sorted(set(ours) | set(torch_), key=lambda k: (str(k[0]), str(k[1]))):
    o, t = ours.get(key, {}), torch_.get(key, {})
    om, tm = o.get("ms"), t.get("ms")
    ratio = f"{tm / om:.2f}x" if om and tm else "-"
    fmt = lambda r, m: f"{m:.1f}" if m else r.get("error", "missing")
    name = t.get("name") or o.get("name") or key[0]
    goal = target.get(key)
    met = "" if not (goal and om and tm) else (" (met)" if tm / om >= goal else " (not met)")
    print(f"| {name} | {key[1]} | {fmt(o, om)} | {fmt(t, tm)} | {ratio} | {f'>= {goal}x' if goal else '-'}{met} |")
EOF
}

if has_phase node; then
  : >"$OUT/node.log"
  missing=()
  [ -n "$NODE" ] && [ -x "$NODE" ] || missing+=("a node binary (NODE=${NODE:-unset})")
  [ -f dist/index.js ] || missing+=("dist/ (npm run build:ts, carried prebuilt)")
  [ -d node_modules/node-addon-api ] && [ -f node_modules/cmake-js/bin/cmake-js ] || missing+=("node_modules/ (npm install, carried prebuilt)")
  if [ ${#missing[@]} -gt 0 ]; then
    say "node: skipped (no node): missing ${missing[*]}"
    [ "$gpus" -gt 0 ] && status=1
  else
    # CMakeLists.txt asks `node` for node-addon-api's include directory.
    export PATH="$(dirname "$NODE"):$PATH"
    say "node: $("$NODE" --version), addon build in $NODE_BUILD"
    : >"$OUT/node-build.log"
    # cmake-js compile configures only a directory without a cache: dropping the cache
    # makes it configure every time (the objects stay, so the build is incremental), and
    # the configure output says how the backend was linked.
    rm -f "$NODE_BUILD/CMakeCache.txt"
    cd_args=(--CDCMAKE_CUDA_ARCHITECTURES="$arch" --CDTESSERA_TESTS=OFF --CDTESSERA_CUDA_LINK_WITHOUT_CUBLAS="$link_without")
    [ -n "$cublas_root" ] && cd_args+=(--CDTESSERA_CUBLAS_ROOT="$cublas_root")
    run_limited 360 "$OUT/node-build.log" "$NODE" node_modules/cmake-js/bin/cmake-js compile --out "$NODE_BUILD" \
      --target tessera --parallel "$JOBS" "${cd_args[@]}"
    rc=$?
    addon="$(find "$NODE_BUILD" -name tessera.node -type f 2>/dev/null | head -1)"
    if [ $rc != 0 ] || [ -z "$addon" ]; then
      failed "node: addon build $(verdict $rc) (see node-build.log)"
      tail -20 "$OUT/node-build.log"
    elif report_linkage "node: addon build" "$(linkage "$OUT/node-build.log")"; then
      export TESSERA_ADDON="$addon"
      say "node: TESSERA_ADDON=$addon"
      # a) CPU-vs-CUDA parity of a DiT and a VAE training step: 0 pass, 1 fail, 3 no device
      if [ -f scripts/gpu-parity.js ]; then
        echo "=== gpu-parity" >>"$OUT/node.log"
        run_limited 180 "$OUT/node.log" "$NODE" scripts/gpu-parity.js
        rc=$?
        case $rc in
          3) if [ "$gpus" -gt 0 ]; then failed "node: parity FAIL (no CUDA device answered on a GPU machine)"
             else say "node: parity no device"; fi ;;
          0) if [ "$gpus" -gt 0 ]; then say "node: parity OK"
             else failed "node: parity FAIL (reported a pass without a device)"; fi ;;
          *) failed "node: parity $(verdict $rc) (see node.log)" ;;
        esac
      else
        say "node: parity missing (scripts/gpu-parity.js)"
        [ "$gpus" -gt 0 ] && status=1
      fi
      # b) the tiny training example on CUDA
      if [ ! -f examples/train-tiny.js ]; then
        say "node: train-tiny missing (examples/train-tiny.js: compile examples/ and carry it)"
        [ "$gpus" -gt 0 ] && status=1
      elif [ "$gpus" = 0 ]; then
        say "node: train-tiny no device (not run)"
      else
        echo "=== train-tiny" >>"$OUT/node.log"
        run_limited 180 "$OUT/node.log" "$NODE" examples/train-tiny.js "$OUT/train-tiny" --device cuda
        rc=$?
        [ $rc != 0 ] && status=1
        say "node: train-tiny $(verdict $rc)"
      fi
      # c) training-step throughput, ours and the PyTorch twins, as one table
      ours_ok=0 torch_ok=0
      if [ ! -f benchmarks/gpu_train_step.js ]; then
        say "node: train-step bench (ours) missing (benchmarks/gpu_train_step.js)"
        [ "$gpus" -gt 0 ] && status=1
      elif [ "$gpus" = 0 ]; then
        say "node: train-step bench (ours) no device (not run)"
      else
        : >"$OUT/ours-train.json"
        s="$(limit 240)"
        if [ "$s" -le 0 ]; then rc=125
        else timeout --kill-after=10 "$s" "$NODE" benchmarks/gpu_train_step.js >"$OUT/ours-train.json" 2>>"$OUT/node.log"; rc=$?; fi
        [ $rc = 0 ] && ours_ok=1 || status=1
        say "node: train-step bench (ours) $(verdict $rc)"
      fi
      if ! python3 -c 'import torch' 2>/dev/null; then
        say "node: train-step bench (PyTorch) skipped (no PyTorch)"
      else
        : >"$OUT/torch-train.json"
        s="$(limit 300)"
        if [ "$s" -le 0 ]; then rc=125
        else timeout --kill-after=10 "$s" python3 benchmarks/gpu_torch_step.py >"$OUT/torch-train.json" 2>>"$OUT/node.log"; rc=$?; fi
        if grep -q '"error": "no CUDA device"' "$OUT/torch-train.json"; then
          if [ "$gpus" -gt 0 ]; then failed "node: train-step bench (PyTorch) FAIL (PyTorch sees no CUDA device)"
          else say "node: train-step bench (PyTorch) no device"; fi
        else
          [ $rc = 0 ] && torch_ok=1 || status=1
          say "node: train-step bench (PyTorch) $(verdict $rc)"
        fi
      fi
      if [ $ours_ok = 1 ] && [ $torch_ok = 1 ]; then
        if train_table "$OUT/ours-train.json" "$OUT/torch-train.json" >"$OUT/train-steps.md" 2>>"$OUT/node.log"; then
          cat "$OUT/train-steps.md" >>"$OUT/RESULTS.md"
          grep -E '^\|' "$OUT/train-steps.md" | tee -a "$SUMMARY" >/dev/null
          say "node: training-step table appended to RESULTS.md"
        else
          failed "node: FAIL: the training-step table could not be made (see node.log)"
        fi
      fi
    fi
  fi
fi

# ---- 5. benchmarks -----------------------------------------------------------------------
if has_phase bench; then
  : >"$OUT/bench.log"
  if [ "$gpus" = 0 ]; then
    say "bench: no device (gpu_bench and gpu_torch.py not run)"
  else
    if [ -x "$BUILD/gpu_bench" ]; then
      run_limited 180 "$OUT/bench.log" "$BUILD/gpu_bench" "$OUT/ours.json"
      rc=$?
      [ $rc != 0 ] && status=1
      say "bench: gpu_bench $(verdict $rc)"
    else
      failed "bench: FAIL: $BUILD/gpu_bench missing"
    fi
    if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
      run_limited 240 "$OUT/bench.log" python3 benchmarks/gpu_torch.py "$OUT/ours.json" "$OUT"
      rc=$?
      if [ $rc = 0 ]; then
        say "bench: gpu_torch OK (RESULTS.md written)"
        grep -E '^\|' "$OUT/RESULTS.md" | tee -a "$SUMMARY" >/dev/null
        # gpu_torch.py rewrites RESULTS.md: the training-step table goes back at its end.
        [ -s "$OUT/train-steps.md" ] && cat "$OUT/train-steps.md" >>"$OUT/RESULTS.md"
      else
        failed "bench: gpu_torch $(verdict $rc)"
      fi
    else
      say "bench: PyTorch with CUDA not available: no comparison"
    fi
  fi
fi

say "done in ${SECONDS}s: $([ $status = 0 ] && echo OK || echo FAIL)"
exit $status
