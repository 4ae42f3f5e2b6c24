#!/usr/bin/env bash
# The kernels of one denoising step on a GPU, from Nsight Systems: profiles
# `healthgym bench` twice, timing 2 and 2 + N denoising steps with everything
# else the same, and prints the difference divided by N (kernel, launches per
# step, microseconds per step), so training and warm-up drop out.
#
#   scripts/gpu_profile.sh BIN OUTDIR [bench flags...]
#   scripts/gpu_profile.sh build-cuda/healthgym prof --precision bf16 --graph off
#
# Environment: N (20), NSYS (nsys).
set -euo pipefail
bin=$1 out=$2
shift 2
n=${N:-20}
nsys=${NSYS:-nsys}
command -v "$nsys" >/dev/null || {
  echo "gpu_profile: $nsys not found" >&2
  exit 2
}
mkdir -p "$out"
for steps in 2 $((2 + n)); do
  "$nsys" profile -t cuda --cuda-graph-trace=node --force-overwrite true -o "$out/s$steps" \
    "$bin" bench --device cuda --train-steps 1 --sample-steps "$steps" "$@" >"$out/s$steps.log" 2>&1
  "$nsys" stats -q -r cuda_gpu_kern_sum -f csv -o "$out/s$steps" "$out/s$steps.nsys-rep" \
    >/dev/null 2>&1
done
python3 - "$out/s2_cuda_gpu_kern_sum.csv" "$out/s$((2 + n))_cuda_gpu_kern_sum.csv" "$n" <<'EOF'
import csv, sys

def load(path):
    rows = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        col = lambda key: next(c for c in reader.fieldnames if key in c)
        name, inst, total = col("Name"), col("Instances"), col("Total Time")
        for r in reader:
            rows[r[name]] = (int(r[inst]), float(r[total]))
    return rows

a, b, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
diff = []
for name, (inst, ns) in b.items():
    i0, t0 = a.get(name, (0, 0.0))
    if inst - i0 > 0:
        diff.append(((ns - t0) / n / 1000, (inst - i0) / n, name))
diff.sort(reverse=True)
total_us = sum(d[0] for d in diff)
total_k = sum(d[1] for d in diff)
print(f"per denoising step: {total_k:.1f} kernels, {total_us:.1f} us of kernel time")
for us, k, name in diff[:40]:
    print(f"{us:9.1f} us {k:6.1f} x  {name[:150]}")
EOF
