#!/usr/bin/env bash
# Build the Azure DevOps extension (.vsix) of ci-oras: usage azure-pipelines/package.sh [OUTPUT_DIR]
# (default azure-pipelines/out). Needs `npm ci --prefix azure-pipelines` first. Works on a copy staged by stage.sh
# (the tasks, each with the shared handler); each CiOras<Step>V0 task also gets the ci-oras wheel of this checkout,
# requirements/runtime.lock with the wheels it pins (wheels/: an install needs no package index), and the runtime
# node_modules (azure-pipelines-task-lib and its dependencies), so the committed tree stays free
# of build products.
set -euo pipefail
here="$(cd -- "$(dirname -- "$0")" && pwd)"
root="$(dirname -- "$here")"
out="${1:-$here/out}"
mkdir -p "$out"
out="$(cd -- "$out" && pwd)"
python="${PYTHON:-python3}"
[ -d "$here/node_modules/azure-pipelines-task-lib" ] || { echo "run: npm ci --prefix azure-pipelines" >&2; exit 1; }
stage="$(mktemp -d)"
trap 'rm -rf -- "$stage"' EXIT
bash "$here/stage.sh" "$stage"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$stage/wheel" "$root"
wheel="$(ls "$stage"/wheel/ci_oras-*.whl)"
# the hash-pinned runtime dependencies, so that a task installs ci-oras with no package index reachable
"$python" "$root/requirements/lock.py" --wheels "$stage/deps"
modules=()
while IFS= read -r dir; do
  [ "$dir" = "$here" ] || modules+=("${dir#"$here/"}")
done < <(cd "$here" && npm ls --omit=dev --parseable --all)
for task in "$stage"/tasks/*/; do
  cp "$wheel" "$task"
  cp "$root/requirements/runtime.lock" "$task"
  cp -R "$stage/deps" "$task/wheels"
  for module in "${modules[@]}"; do
    mkdir -p "$task/$(dirname -- "$module")"
    cp -R "$here/$module" "$task/$module"
  done
done
node "$here/node_modules/tfx-cli/_build/tfx-cli.js" extension create --root "$stage" \
  --manifest-globs vss-extension.json --output-path "$out" --no-prompt
