#!/usr/bin/env bash
# The one-shot GPU check, first whenever a GPU is lent: CUDA tests, eager and graphed step times with peak
# memory, one timed epoch of each chapter's gpu scale; one JSON (default benchmarks/results/gpu_check.json).
#   usage: benchmarks/gpu_check.sh [OUT.json]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 540 python3 benchmarks/gpu_check.py --device cuda --out "${1:-benchmarks/results/gpu_check.json}"
