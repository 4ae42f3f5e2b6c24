#!/usr/bin/env bash
# The GPU checks, in one run on a machine with an NVIDIA GPU and PyTorch (its
# LibTorch with CUDA is found through python3's torch): build against it, run
# the CUDA tests, compare `healthgym bench` with the PyTorch reference on the GPU,
# train and sample on the GPU, then run the whole suite. Every stage logs under
# GPU_CHECK_OUT (default build-cuda/gpu_check) and has a time limit, so a stage that fails
# or hangs still leaves the others' results.
#   scripts/gpu_check.sh            PYTHON=/path/to/python3 scripts/gpu_check.sh
#   STAGES="tests bench" scripts/gpu_check.sh    # the build, then only those stages
#   BENCH=quick: the main variants only, no sample-batch sweep (a short check)
#   BENCH=pairs: only the reference and the main bf16 runs (with and without
#     --convs gemm), ROUNDS times: more pairs after a quick run
#   ROUNDS=N: N alternating reference/healthgym rounds of the main pair (default
#     2), numbered from FIRST_ROUND (default 1) so that a later call adds logs
#   PROFILE=1: the kernel-by-kernel profile (scripts/gpu_profile.sh, Nsight
#     Systems) with BENCH=quick or pairs too (BENCH=full always runs it)
# Stages (STAGES, default all): tests (the CUDA tests), bench (against the
# reference), product (train and sample on the GPU), suite (ctest, evaluate).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${GPU_CHECK_OUT:-build-cuda/gpu_check}
mkdir -p "$out"
py=${PYTHON:-python3}
jobs=$(nproc)
STAGES=${STAGES:-"tests bench product suite"}
want() { [[ " $STAGES " == *" $1 "* ]]; }
log() { echo "[gpu_check $(date +%T)] $*" | tee -a "$out/summary.log"; }
stage() {  # stage NAME SECONDS CMD...: runs CMD with a limit, output to OUT/NAME.log
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  log "$name: exit $rc in $((SECONDS - t0)) s"
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
prefix=$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)')
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/gpu.txt"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
# healthgym's CUDA kernels need nvcc; CMake looks on PATH and in CUDACXX.
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi

# Build with healthgym's CUDA kernels; if it fails, retry without them, then
# without NCCL, then without the CUDA graph code, so that whatever does build is
# still measured (the summary says which).
built=""
for extra in "-DHEALTHGYM_CUDA_KERNELS=ON" "-DHEALTHGYM_CUDA_KERNELS=OFF" \
  "-DHEALTHGYM_CUDA_KERNELS=OFF -DHEALTHGYM_DISTRIBUTED=OFF" \
  "-DHEALTHGYM_DISTRIBUTED=OFF -DHEALTHGYM_CUDA_GRAPHS=OFF"; do
  # shellcheck disable=SC2086
  if stage configure 120 cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" $extra &&
    stage build 420 cmake --build build-cuda -j"$jobs" -- -k 0; then
    built="ok $extra"
    break
  fi
  cp "$out/build.log" "$out/build_failed${extra// /_}.log"
  grep -m 40 -A6 "error" "$out/build.log" | head -120
  # The CLI built (a test file failed): measure what there is rather than rebuild.
  if [ -x build-cuda/healthgym ]; then
    built="partial $extra"
    break
  fi
done
log "build: ${built:-FAILED}"
[ -n "$built" ] || exit 1
bin=build-cuda/healthgym

# CUDA tests first (they are what only this machine can run).
if want tests; then
  stage cuda_tests 120 build-cuda/tests/healthgym_tests \
    --gtest_filter='FastPaths*:FastPathsCuda*:PreparedUNet*:GroupNormSilu*:AddAligned*:DistNccl*:DistConfig*'
  tail -n 25 "$out/cuda_tests.log"
fi

# Bench against the reference at its shapes, alternating; the main pair ROUNDS times.
# A variant is "precision graph prepared [layout [streams [convs]]]"; its
# log is hg_PRECISION_GRAPH[_module][_cf][_sN][_gemm]_ROUND.
if want bench; then
  first=${FIRST_ROUND:-1}
  for round in $(seq "$first" $((first + ${ROUNDS:-2} - 1))); do
    stage "ref_$round" 120 "$py" bench/seed_reference.py --device cuda --train-steps 50
    tail -n 1 "$out/ref_$round.log"
    variants=("bf16 auto on" "bf16 auto on auto 1 gemm")
    [ "$round" = 1 ] && [ "${BENCH:-full}" != pairs ] &&
      variants+=("bf16 auto on channels-first" "fp32 auto on")
    [ "$round" = 1 ] && [ "${BENCH:-full}" = full ] && variants+=("bf16 auto on auto 2"
      "bf16 auto off" "fp16 auto on" "fp16 off off" "bf16 off off")
    for v in "${variants[@]}"; do
      # shellcheck disable=SC2086 # a variant is words
      set -- $v
      layout=${4:-auto} streams=${5:-1} convs=${6:-library}
      name="hg_${1}_${2}"
      [ "$3" = off ] && [ "$2" != off ] && name+="_module"
      [ "$layout" = channels-first ] && name+="_cf"
      [ "$streams" != 1 ] && name+="_s$streams"
      [ "$convs" = gemm ] && name+="_gemm"
      stage "${name}_$round" 120 "$bin" bench --device cuda --train-steps 50 \
        --precision "$1" --graph "$2" --prepared "$3" --layout "$layout" --streams "$streams" \
        --convs "$convs"
      tail -n 1 "$out/${name}_$round.log"
    done
  done
fi
if want bench && [ "${BENCH:-full}" != pairs ]; then
  stage hg_bf16_ddim25 120 "$bin" bench --device cuda --train-steps 50 --precision bf16 \
    --sampler ddim --ddim-steps 25
  tail -n 1 "$out/hg_bf16_ddim25.log"
  # What the step is made of: its operations one by one, and the reference network
  # itself replayed as a CUDA graph.
  stage kernels_bf16 90 "$py" bench/gpu_kernels.py
  cat "$out/kernels_bf16.log"
fi
# Where the step's time goes, kernel by kernel, when Nsight Systems is there
# (BENCH=full, or PROFILE=1 with any BENCH).
if want bench && { [ "${BENCH:-full}" = full ] || [ "${PROFILE:-0}" = 1 ]; }; then
  nsys=$(command -v nsys || ls /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys \
    2>/dev/null | head -n 1)
  if [ -n "$nsys" ]; then
    for convs in library gemm; do
      NSYS=$nsys stage "profile_bf16_$convs" 180 scripts/gpu_profile.sh "$bin" \
        "$out/profile_$convs" --precision bf16 --convs "$convs"
      head -n 30 "$out/profile_bf16_$convs.log"
    done
  else
    log "profile: no nsys on this machine, skipped"
  fi
fi
if want bench && [ "${BENCH:-full}" = full ]; then
  stage kernels_fp32 90 "$py" bench/gpu_kernels.py --dtype fp32
  # Throughput against the sample batch (the reference's too), whole DDPM chain.
  for sb in 400 1600; do
    stage "ref_sb$sb" 120 "$py" bench/seed_reference.py --device cuda --train-steps 5 \
      --sample-batch "$sb"
    tail -n 1 "$out/ref_sb$sb.log"
    stage "hg_bf16_sb$sb" 120 "$bin" bench --device cuda --train-steps 5 --precision bf16 \
      --sample-batch "$sb"
    tail -n 1 "$out/hg_bf16_sb$sb.log"
  done
fi

data=data/physionet2012_set_a.csv
if want product; then
  # The product on the GPU: train (the fused step as a CUDA graph, then the plain
  # step for comparison) and sample with DDIM (the default) and DDPM.
  stage train_graph 120 "$bin" train --data "$data" --id stay_id --time hour --device cuda \
    --precision bf16 --epochs 1000 --time-limit 30 --out build-cuda/gpu.hg
  tail -n 4 "$out/train_graph.log"
  cp build-cuda/gpu.hg.log.csv "$out/train_graph_loss.csv" 2>/dev/null
  stage train_plain 60 "$bin" train --data "$data" --id stay_id --time hour --device cuda \
    --precision bf16 --epochs 1000 --time-limit 10 --fused-step off --out build-cuda/plain.hg
  tail -n 4 "$out/train_plain.log"
  cp build-cuda/plain.hg.log.csv "$out/train_plain_loss.csv" 2>/dev/null
  stage sample_ddim 120 "$bin" sample --model build-cuda/gpu.hg --n 4000 --device cuda \
    --out build-cuda/syn_ddim.csv
  tail -n 4 "$out/sample_ddim.log"
  stage sample_ddpm 150 "$bin" sample --model build-cuda/gpu.hg --n 4000 --device cuda \
    --sampler ddpm --out build-cuda/syn_ddpm.csv
  tail -n 4 "$out/sample_ddpm.log"
fi

# The whole suite, last, with what time is left.
if want suite; then
  stage ctest 240 ctest --test-dir build-cuda -j8 --timeout 200 --output-on-failure
  tail -n 30 "$out/ctest.log"
  stage evaluate 150 "$bin" evaluate --real "$data" --synthetic build-cuda/syn_ddim.csv \
    --id stay_id --time hour --out build-cuda/eval_ddim
  cp build-cuda/eval_ddim/report.json "$out/eval_ddim_report.json" 2>/dev/null
fi
log "done"
