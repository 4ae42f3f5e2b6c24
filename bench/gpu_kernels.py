#!/usr/bin/env python3
"""Where a denoising step's time goes on a GPU, measured with PyTorch on the
operations the U-Net is made of, at the reference sampling shapes (batch 100,
width 256, length 100 and its halves), each replayed as a CUDA graph:

    python3 bench/gpu_kernels.py [--batch 100] [--dtype bf16]

Prints microseconds per call: the k3 convolution as Conv1d (N, C, L), as
Conv2d in channels-last, as three matrix products over a padded buffer and as
one over its three taps side by side (--convs gemm); the pooling (k4, stride
2) and the upsampling (k3 to 2C) as cuDNN's and over taps; GroupNorm, SiLU, and the whole reference U-Net
(bench/seed_reference.py's) forward in a graph, under autocast and with its
weights cast to the precision.
"""
import argparse, importlib.util, os, sys

import torch
import torch.nn.functional as F


def timed(fn, reps=200):
    """Microseconds per call of fn, replayed from one CUDA graph of `reps` calls."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(reps):
            fn()
    g.replay()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(5):
        g.replay()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) * 1000 / (5 * reps)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    a = p.parse_args()
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    torch.backends.cudnn.benchmark = True
    dev = "cuda"
    b, c = a.batch, a.hidden
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {a.dtype}, batch {b}, "
          f"width {c}")
    w = torch.randn(c, c, 3, device=dev, dtype=dt) * 0.02
    bias = torch.zeros(c, device=dev, dtype=dt)
    w4 = w.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    gw = torch.ones(b * c, device=dev, dtype=dt)
    for length in (a.length, a.length // 2, a.length // 4, a.length // 8):
        x = torch.randn(b, c, length, device=dev, dtype=dt)
        x4 = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        flops = 2 * 3 * c * c * length * b
        t1 = timed(lambda: F.conv1d(x, w, bias, padding=1))
        t2 = timed(lambda: F.conv2d(x4, w4, bias, padding=(0, 1)))
        xg = x.view(1, b * c, length)
        t3 = timed(lambda: F.group_norm(xg, b * 8, gw, gw, 1e-5))
        t4 = timed(lambda: F.silu(x))
        t5 = timed(lambda: F.group_norm(x4, 8, gw[:c], gw[:c], 1e-5))
        # The k3 convolution as three matrix products over a zero-padded
        # channels-last buffer [B, L + 2, C] seen as rows: output row r sums
        # rows r, r + 1 and r + 2 times the kernel's taps (rows that straddle two
        # samples are computed and not used).
        xp = torch.zeros(b, length + 2, c, device=dev, dtype=dt)
        xp[:, 1:-1] = x.transpose(1, 2)
        rows = xp.view(-1, c)
        m = rows.size(0) - 2
        taps = [w[:, :, k].t().contiguous() for k in range(3)]
        acc = torch.empty(m, c, device=dev, dtype=dt)

        def gemm3():
            torch.addmm(bias, rows[0:m], taps[0], out=acc)
            acc.addmm_(rows[1:m + 1], taps[1])
            acc.addmm_(rows[2:m + 2], taps[2])

        t6 = timed(gemm3)
        want = F.conv1d(x, w, bias, padding=1).transpose(1, 2)
        got = torch.cat([acc, acc[:2]]).view(b, length + 2, c)[:, :length]
        err = ((got.float() - want.float()).abs().max() / want.float().abs().max()).item()
        # As healthgym's --convs gemm: the normalisation writes the taps
        # [B, L, 3C] (row l: x[l - 1], x[l], x[l + 1]) and the convolution is one
        # matrix product with the kernel as [3C, C].
        taps3 = torch.cat([xp[:, 0:length], xp[:, 1:length + 1], xp[:, 2:length + 2]], 2)
        taps3 = taps3.reshape(b * length, 3 * c)
        w3 = w.permute(2, 1, 0).reshape(3 * c, c).contiguous()
        out1 = torch.empty(b * length, c, device=dev, dtype=dt)
        t7 = timed(lambda: torch.mm(taps3, w3, out=out1))
        err1 = ((out1.view(b, length, c).float() - want.float()).abs().max() /
                want.float().abs().max()).item()
        # The pooling (kernel 4, stride 2, padding 1) and the upsampling (k3 to
        # 2C) likewise: cuDNN channels-last against healthgym's products over
        # taps (the pooling's as [B * L / 2, 6C] x [6C, C], two taps rows at once).
        wp = torch.randn(c, c, 4, device=dev, dtype=dt) * 0.02
        wp4 = wp.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        tp_conv = timed(lambda: F.conv2d(x4, wp4, None, stride=(1, 2), padding=(0, 1)))
        z = torch.zeros_like(wp[:, :, 0])
        wp6 = torch.stack([wp[:, :, 0], wp[:, :, 1], wp[:, :, 2], z, z, wp[:, :, 3]], 2)
        wp6 = wp6.permute(2, 1, 0).reshape(6 * c, c).contiguous()
        outp = torch.empty(b * length // 2, c, device=dev, dtype=dt)
        # (At an odd length healthgym pools with cuDNN: no product to time.)
        tp_gemm, errp = float("nan"), float("nan")
        if length % 2 == 0:
            tp_gemm = timed(lambda: torch.mm(taps3.view(b * length // 2, 6 * c), wp6, out=outp))
            wantp = F.conv1d(x, wp, stride=2, padding=1).transpose(1, 2)
            errp = ((outp.view(b, length // 2, c).float() - wantp.float()).abs().max() /
                    wantp.float().abs().max()).item()
        wu = torch.randn(2 * c, c, 3, device=dev, dtype=dt) * 0.02
        wu4 = wu.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        tu_conv = timed(lambda: F.conv2d(x4, wu4, None, padding=(0, 1)))
        wu3 = wu.permute(2, 1, 0).reshape(3 * c, 2 * c).contiguous()
        outu = torch.empty(b * length, 2 * c, device=dev, dtype=dt)
        tu_gemm = timed(lambda: torch.mm(taps3, wu3, out=outu))
        wantu = F.conv1d(x, wu, padding=1).transpose(1, 2)
        erru = ((outu.view(b, length, 2 * c).float() - wantu.float()).abs().max() /
                wantu.float().abs().max()).item()
        print(f"L {length:4d}: conv1d {t1:6.1f} us ({flops / t1 / 1e6:5.0f} TFLOP/s), "
              f"conv2d channels-last {t2:6.1f} us ({flops / t2 / 1e6:5.0f}), "
              f"3 GEMMs {t6:6.1f} us ({flops / t6 / 1e6:5.0f}, rel err {err:.1e}), "
              f"1 GEMM over taps {t7:6.1f} us ({flops / t7 / 1e6:5.0f}, rel err {err1:.1e}), "
              f"group_norm per-sample {t3:5.1f}, channels-last {t5:5.1f}, silu {t4:5.1f}; "
              f"pooling: cuDNN {tp_conv:5.1f}, over taps {tp_gemm:5.1f} us (rel err {errp:.1e}); "
              f"upsampling: cuDNN {tu_conv:5.1f}, over taps {tu_gemm:5.1f} us (rel err {erru:.1e})")
    spec = importlib.util.spec_from_file_location(
        "ref", os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_reference.py"))
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    net = ref.UNet(c, 500, 22).to(dev).eval()
    x = torch.randn(b, 1, 22, a.length, device=dev)
    t = torch.full((b,), 10, device=dev, dtype=torch.long)
    with torch.no_grad():
        with torch.autocast("cuda", dtype=dt, enabled=dt != torch.float32):
            tf = timed(lambda: net(x, t), reps=20)
        netc = net.to(dt)
        xc = x.to(dt)
        tc = timed(lambda: netc(xc, t), reps=20)
    print(f"reference U-Net forward in a CUDA graph: autocast {tf:.0f} us, weights in "
          f"{a.dtype} {tc:.0f} us")


if __name__ == "__main__":
    sys.exit(main())
