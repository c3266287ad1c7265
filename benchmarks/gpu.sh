#!/usr/bin/env bash
# The GPU checks in one go: CUDA correctness (cuda_check.py), the step-time table on CUDA (step_time.py),
# and a timed paper-scale STL-10 L2T-ww run (Table 1's recipe, seed 0), stopped after SECONDS if unfinished;
# its per-epoch metrics (with elapsed wall time) give the whole run's time.
#   usage: benchmarks/gpu.sh OUTDIR [SECONDS]        (L2T_DATA must hold stl10 and the source checkpoint)
default_secs=300
source "$(dirname "$0")/gpu_env.sh" "$@"
python3 benchmarks/cuda_check.py --batch 64 --out "$out/cuda_check.json" 2>&1 | grep -v Warning | tail -40
python3 benchmarks/step_time.py --device cuda --iters 10 --warmup 3 --out "$out/step_time-cuda.json" 2>&1 | tail -20
rm -rf runs/gpu-stl10 /tmp/gpu-stl10
start=$(date +%s)
timeout "$secs" python3 -m l2t reproduce table1 --scale paper --column stl10 --methods l2t-ww --seeds 0 \
    --device cuda --out /tmp/gpu-stl10 > "$out/stl10.log" 2>&1
echo "stl10 exit $? after $(( $(date +%s) - start )) s"
cp runs/gpu-stl10/*/metrics.jsonl "$out/stl10-metrics.jsonl" 2>/dev/null
cp runs/gpu-stl10/*/config.json "$out/stl10-config.json" 2>/dev/null
cp /tmp/gpu-stl10/*.json "$out/stl10-result.json" 2>/dev/null   # only when the whole run finished
tail -c 2000 "$out/stl10.log"; echo; tail -3 "$out/stl10-metrics.jsonl"
