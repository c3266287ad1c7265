# The common head of the GPU scripts (gpu.sh, gpu_graph.sh), sourced with their arguments "OUTDIR [SECONDS]":
# sets $out and $secs (default $default_secs), runs Python unbuffered on this checkout, and records the machine.
set -u
out=${1:?usage: $0 OUTDIR [SECONDS]}
secs=${2:-$default_secs}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
  nproc; date -u; } | tee "$out/machine.txt"
