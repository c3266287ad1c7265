#!/usr/bin/env bash
# CUDA graphs (--cuda-graph) on a GPU: do replayed iterations train like eager ones, and how much faster are
# they? Runs the two GPU tests, the step time of scratch and exact L2T-ww with and without graphs, and a
# timed paper-scale STL-10 L2T-ww run with graphs, stopped after SECONDS (its metrics give the whole run's time).
#   usage: benchmarks/gpu_graph.sh OUTDIR [SECONDS]      (L2T_DATA must hold stl10 and the source checkpoint)
default_secs=180
source "$(dirname "$0")/gpu_env.sh" "$@"
if python3 -c "import pytest" 2>/dev/null; then
  python3 -m pytest -q -p no:cacheprovider tests/test_cudagraph.py tests/test_trainer.py -k cuda_graph 2>&1 | tail -15 | tee "$out/graph_tests.txt"
else
  echo "pytest is not installed: GPU tests not run" | tee "$out/graph_tests.txt"
fi
for cfg in "scratch 2 exact 1 0 0" "scratch 2 exact 1 0 1" "l2t-ww 2 exact 1 0 0" "l2t-ww 2 exact 1 0 1"; do
  python3 benchmarks/step_time.py --one $cfg --device cuda --iters 20 --warmup 3 2>/dev/null | tail -1
done | tee "$out/graph_step_time.jsonl" | python3 -c "
import json, sys
for r in map(json.loads, sys.stdin):
    print(f\"{r['method']:8s} cuda_graph={r['cuda_graph']!s:5s} {1e3 * r['median_s']:7.1f} ms/iteration\")"
rm -rf runs/gpu-stl10-graph /tmp/gpu-stl10-graph
start=$(date +%s)
timeout "$secs" python3 -m l2t reproduce table1 --scale paper --column stl10 --methods l2t-ww --seeds 0 \
    --device cuda --cuda-graph --out /tmp/gpu-stl10-graph > "$out/stl10-graph.log" 2>&1
echo "stl10 --cuda-graph exit $? after $(( $(date +%s) - start )) s"
cp runs/gpu-stl10-graph/*/metrics.jsonl "$out/stl10-graph-metrics.jsonl" 2>/dev/null
tail -c 1500 "$out/stl10-graph.log"; echo; tail -2 "$out/stl10-graph-metrics.jsonl"
