#!/usr/bin/env bash
# One device call: GPU tests of the kernels, then the kernel benchmark; everything lands under $OUT.
# Usage on the GPU machine, from the repo root: bash benchmarks/gpu_run.sh [budget_s [benchmarks.kernels args]]
set -o pipefail
export PYTHONUNBUFFERED=1 JAX_PLATFORMS=cuda XLA_PYTHON_CLIENT_PREALLOCATE=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || export PYTHONPATH=$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.total --format=csv 2>&1 | tee "$OUT/nvidia_smi.txt"
python3 -c "import jax, triton; print('jax', jax.__version__, 'triton', triton.__version__, jax.devices())" 2>&1 | tee "$OUT/versions.txt"
python3 -c "import jax_triton; print('jax_triton', jax_triton.__version__)" 2>&1 | tail -1 | tee -a "$OUT/versions.txt"
timeout "${GPU_TEST_TIMEOUT_S:-150}" python3 -m pytest ${GPU_TESTS:-tests/pallas_kernels} -m gpu -q -p no:cacheprovider -x 2>&1 | tail -25 | tee "$OUT/gpu_tests.log"
python3 -m benchmarks.kernels --json "$OUT/kernels.json" --budget-s "${1:-330}" "${@:2}" 2>&1 | tee "$OUT/bench.log" | grep -v "^  sweep\|^  structured\|^  backward" | tail -60
