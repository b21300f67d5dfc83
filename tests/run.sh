#!/usr/bin/env bash
# The whole test suite, in three pytest processes:
#  1. the main suite (everything but tests/cuda): the backend parity suite runs its numpy and
#     cpu cases here (and its cuda cases when a GPU is present);
#  2. the cuda cases of the parity suite and the cuda-only tests in numba's CUDA simulator,
#     which must be switched on before numba is imported and so needs a process of its own (on
#     a machine with a GPU, step 1 already ran them on the real device);
#  3. the CUDA kernels compiled to PTX for compute capabilities 8.0 and 9.0 (simulator off).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest --ignore=tests/cuda "$@"
NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_backend_parity.py tests/cuda/test_cuda_sim.py -m cudasim "$@"
python -m pytest tests/cuda/test_cuda_ptx.py "$@"
