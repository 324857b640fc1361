#!/usr/bin/env python3
"""PyTorch side of the GPU benchmark, and the comparison table.

Runs the cases of benchmarks/gpu_bench.cu in PyTorch on the same GPU:
  attention  F.scaled_dot_product_attention with the flash backend only, bf16,
             [B, H, N, D] = [2, 16, N, D], forward and backward, causal and not
  conv3d     cuDNN (torch.backends.cudnn.benchmark = True), bf16, channels_last_3d,
             3x3x3, padding 1, [1, C, 17, 64, 64]; forward, input grad, weight grad
  patchify   the reshape/permute/contiguous of tessera's patchify, and a device copy
  gemm       torch.matmul bf16 8192^3, float32 4096^3 with TF32 off
Timing: CUDA events, median of 10 after 3 warm-ups (as gpu_bench).

Usage: python3 benchmarks/gpu_torch.py OURS.json OUT_DIR
Writes OUT_DIR/torch.json and OUT_DIR/RESULTS.md (ours vs PyTorch against the targets
of the CUDA issue) and prints the table.
"""
import json
import os
import statistics
import sys

import torch
import torch.nn.functional as F


def time_ms(fn, warm=3, reps=10):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


rows = {}


def report(name, ms, flops=0.0, nbytes=0.0):
    tf = flops / ms / 1e9 if flops else 0.0
    gb = nbytes / ms / 1e6 if nbytes else 0.0
    rows[name] = {"name": name, "ms": ms, "tflops": tf, "gbps": gb}
    extra = (f" {tf:9.1f} TFLOP/s" if flops else "") + (f" {gb:9.1f} GB/s" if nbytes else "")
    print(f"{name:58s} {ms:10.3f} ms{extra}", flush=True)


def bench_attention():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    for n in (4096, 16384):
        for d in (64, 128):
            for causal in (False, True):
                b, h = 2, 16
                q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                           for _ in range(3))
                flops = 4.0 * b * h * n * n * d * (0.5 if causal else 1.0)
                tag = f"B=2 H=16 N={n} D={d}" + (" causal" if causal else "")
                with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                    fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    with torch.no_grad():
                        report(f"attention fwd {tag}", time_ms(fwd), flops)
                    out = fwd()
                    g = torch.randn_like(out)

                    def bwd():
                        torch.autograd.grad(out, (q, k, v), g, retain_graph=True)

                    report(f"attention bwd {tag}", time_ms(bwd), 2.5 * flops)
                del q, k, v, out, g
                torch.cuda.empty_cache()


def bench_conv3d():
    torch.backends.cudnn.benchmark = True
    for c in (128, 256):
        x = torch.randn(1, c, 17, 64, 64, device="cuda", dtype=torch.bfloat16)
        x = x.to(memory_format=torch.channels_last_3d).requires_grad_(True)
        conv = torch.nn.Conv3d(c, c, 3, padding=1).to("cuda", torch.bfloat16).to(memory_format=torch.channels_last_3d)
        flops = 2.0 * 17 * 64 * 64 * c * c * 27
        with torch.no_grad():
            report(f"conv3d fwd 3x3x3 C={c} 17x64x64", time_ms(lambda: conv(x)), flops)
        y = conv(x)
        g = torch.randn_like(y).contiguous(memory_format=torch.channels_last_3d)
        report(f"conv3d dinp 3x3x3 C={c} 17x64x64",
               time_ms(lambda: torch.autograd.grad(y, (x,), g, retain_graph=True)), flops)
        report(f"conv3d dweight 3x3x3 C={c} 17x64x64",
               time_ms(lambda: torch.autograd.grad(y, (conv.weight,), g, retain_graph=True)), flops)
        del x, conv, y, g
        torch.cuda.empty_cache()


def bench_patchify():
    b, c, t, h, w = 4, 16, 32, 128, 128
    x = torch.randn(b, c, t, h, w, device="cuda")
    nbytes = 2.0 * x.numel() * 4
    y = torch.empty_like(x)
    report("d2d copy (cudaMemcpyAsync) 4x16x32x128x128 f32", time_ms(lambda: y.copy_(x)), 0, nbytes)
    for pt, ph, pw in ((1, 2, 2), (2, 2, 2)):
        def patchify():
            return (x.reshape(b, c, t // pt, pt, h // ph, ph, w // pw, pw)
                    .permute(0, 2, 4, 6, 1, 3, 5, 7).reshape(b, -1, c * pt * ph * pw).contiguous())
        report(f"patchify [{pt},{ph},{pw}] 4x16x32x128x128 f32", time_ms(patchify), 0, nbytes)


def bench_gemm():
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    bm = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    report("gemm bf16 8192x8192x8192", time_ms(lambda: torch.matmul(a, bm)), 2.0 * n ** 3)
    torch.backends.cuda.matmul.allow_tf32 = False
    n = 4096
    a = torch.randn(n, n, device="cuda")
    bm = torch.randn(n, n, device="cuda")
    report("gemm f32 (FP32, no TF32) 4096x4096x4096", time_ms(lambda: torch.matmul(a, bm)), 2.0 * n ** 3)


# (case prefix, how ours / torch is compared, target)
TARGETS = [
    ("attention fwd", "speed", 1.0),
    ("attention bwd", "speed", 0.9),
    ("conv3d fwd", "speed", 0.7),
    ("conv3d bwd", "speed", 0.5),  # dinp + dweight together
    ("patchify", "copy", 0.8),    # our patchify bandwidth / our device copy bandwidth
    ("gemm", "speed", 0.95),
]


def table(ours, theirs, device):
    lines = [f"# GPU benchmark results", "", f"Device: {device}", "",
             "Produced by scripts/gpu-check.sh (benchmarks/gpu_bench.cu vs benchmarks/gpu_torch.py); "
             "median of 10 timed runs after 3 warm-ups, CUDA events.", "",
             "| case | tessera ms | PyTorch ms | tessera / PyTorch speed | target | met |",
             "| --- | ---: | ---: | ---: | ---: | :---: |"]

    def target_for(name):
        for prefix, kind, tgt in TARGETS:
            if name.startswith(prefix):
                return kind, tgt
        return None, None

    copy_ours = next((r for n, r in ours.items() if n.startswith("d2d copy")), None)
    for name, r in ours.items():
        t = theirs.get(name)
        kind, tgt = target_for(name)
        if kind == "copy" and copy_ours:
            ratio = r["gbps"] / copy_ours["gbps"] if copy_ours["gbps"] else 0.0
            tms = f"{t['ms']:.3f}" if t else "-"
            met = "yes" if ratio >= tgt else "NO"
            lines.append(f"| {name} | {r['ms']:.3f} | {tms} | {ratio:.2f} of our copy bandwidth "
                         f"({r['gbps']:.0f} GB/s) | {tgt} | {met} |")
            continue
        if not t:
            lines.append(f"| {name} | {r['ms']:.3f} | - | - | - | - |")
            continue
        ratio = t["ms"] / r["ms"] if r["ms"] else 0.0
        tg = f"{tgt}" if tgt is not None and not name.startswith("conv3d d") else "-"
        met = ("yes" if ratio >= tgt else "NO") if tg != "-" else "-"
        lines.append(f"| {name} | {r['ms']:.3f} | {t['ms']:.3f} | {ratio:.2f}x | {tg} | {met} |")
    # conv3d backward = dinp + dweight
    for c in (128, 256):
        keys = [f"conv3d dinp 3x3x3 C={c} 17x64x64", f"conv3d dweight 3x3x3 C={c} 17x64x64"]
        if all(k in ours and k in theirs for k in keys):
            o = sum(ours[k]["ms"] for k in keys)
            p = sum(theirs[k]["ms"] for k in keys)
            ratio = p / o if o else 0.0
            lines.append(f"| conv3d bwd (dinp + dweight) C={c} | {o:.3f} | {p:.3f} | {ratio:.2f}x | 0.5 | "
                         f"{'yes' if ratio >= 0.5 else 'NO'} |")
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    ours_path, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    print(f"device: {device}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    for fn in (bench_attention, bench_conv3d, bench_patchify, bench_gemm):
        try:
            fn()
        except Exception as e:  # keep the other families' numbers
            print(f"{fn.__name__}: failed: {e}", flush=True)
    with open(os.path.join(out_dir, "torch.json"), "w") as f:
        json.dump({"device": device, "torch": torch.__version__, "cases": list(rows.values())}, f, indent=2)
    ours = {}
    if os.path.exists(ours_path):
        with open(ours_path) as f:
            ours = {c["name"]: c for c in json.load(f)["cases"]}
    md = table(ours, rows, device)
    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
