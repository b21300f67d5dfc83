#!/usr/bin/env bash
# Cold-cache compile time of the cpu backend, this checkout against an earlier commit, paired:
# the two alternate for N rounds, each process with an empty NUMBA_CACHE_DIR; each line is the
# wall and CPU time from start to the seed model's first training step (28x28x1) done.
#   usage: benchmarks/compile_paired.sh [REV] [N]     (default: c69d5d1, the last commit
#          before issue 12's kernels, and 3 rounds); run it from the project's virtualenv.
set -euo pipefail
rev="${1:-c69d5d1}"
rounds="${2:-3}"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'git -C "$here" worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$here" worktree add --detach "$work/old" "$rev" >/dev/null 2>&1
ln -s ../kernels "$work/old/tinycnn/kernels"   # the package-dir mapping, without installing it
cat > "$work/first_step.py" <<PY
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, "$here/benchmarks")
import tinycnn
import seedmodel as sm
tinycnn.set_backend("cpu")
shape = sm.parse_sizes("28")[0]
x, y = sm.make_batch(shape)
sm.build_tinycnn(shape).train_on_batch(x, y)
print(f"wall {time.perf_counter() - t0:.2f} s, CPU {time.process_time():.2f} s")
PY
for round in $(seq "$rounds"); do
  for tree in "$work/old" "$here"; do
    cache="$(mktemp -d)"
    label="$([ "$tree" = "$here" ] && echo "this checkout" || echo "$rev")"
    echo "round $round, $label: $(NUMBA_CACHE_DIR="$cache" PYTHONPATH="$tree" python "$work/first_step.py")"
    rm -rf "$cache"
  done
done
