#!/usr/bin/env bash
# Build the Azure DevOps extension (.vsix) of ci-oras: usage azure-pipelines/package.sh [OUTPUT_DIR]
# (default azure-pipelines/out). Needs `npm ci --prefix azure-pipelines` first. Works on a copy staged by stage.sh
# (the tasks, each with the shared handler); each CiOras<Step>V0 task also gets the ci-oras wheel of this checkout,
# a lock with the wheels it pins (wheels/: an install needs no package index) and the runtime node_modules
# (azure-pipelines-task-lib and its dependencies), so the committed tree stays free of build products.
#
# The wheels are those of the machines Azure's hosted agents run (Linux x86_64, Windows amd64, macOS x86_64 and
# arm64) for every supported Python version. cryptography's and sigstore's (with pydantic-core, one wheel per
# Python version, and rfc3161-client) are most of their size and every task carries its own copy, so only the
# task whose step imports sigstore (SIGSTORE_TASKS: verify) gets requirements/runtime.lock whole, the other
# tasks whose step imports cryptography (SIGNING_TASKS) the lock without sigstore, and the rest the lock without
# either, each without what only those need (requirements/lock.py --variant, from one download). CI_ORAS_WHEELS_CACHE=DIR keeps that download in DIR
# for the next build of the same lock.
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
# CI_ORAS_WHEEL: a ci-oras wheel built already from this checkout (the tests build one per session)
if [ -n "${CI_ORAS_WHEEL:-}" ]; then
  wheel="$CI_ORAS_WHEEL"
else
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$stage/wheel" "$root"
  wheel="$(ls "$stage"/wheel/ci_oras-*.whl)"
fi
# the hash-pinned runtime dependencies, so that a task installs ci-oras with no package index reachable
platforms=(--platform linux-x86_64 --platform windows-amd64 --platform macos-x86_64 --platform macos-arm64)
# the lock's variants, beside DIR/deps (everything): each directory without those dependencies
variants=(deps-signing=sigstore "deps-unsigned=cryptography,sigstore")
fetch() {  # fetch DIR: the hash-checked wheels into DIR/deps and each variant's into DIR/<variant>
  local arguments=()
  for variant in "${variants[@]}"; do arguments+=(--variant "$1/$variant"); done
  "$python" "$root/requirements/lock.py" --wheels "$1/deps" "${platforms[@]}" "${arguments[@]}"
}
if [ -n "${CI_ORAS_WHEELS_CACHE:-}" ]; then
  # Repeated builds (the tests build the extension every run) reuse one download per lock and platform list:
  # the key is their digest (and the variants'), a download lands under a temporary name and is renamed whole, and every task still
  # installs the wheels with --require-hashes.
  key="$({ cat "$root/requirements/runtime.lock"; printf '%s\n' "${platforms[@]}" "${variants[@]}"; } \
    | sha256sum | cut -c1-32)"
  cached="$CI_ORAS_WHEELS_CACHE/$key"
  if [ ! -d "$cached" ]; then
    mkdir -p "$CI_ORAS_WHEELS_CACHE"
    partial="$(mktemp -d "$CI_ORAS_WHEELS_CACHE/.partial-XXXXXX")"
    fetch "$partial"
    mv -T "$partial" "$cached" 2>/dev/null || rm -rf -- "$partial"  # another build got there first: same files
  fi
  cp -R "$cached/deps" "$cached/deps-signing" "$cached/deps-unsigned" "$stage/"
else
  fetch "$stage"
fi
cp "$root/requirements/runtime.lock" "$stage/deps.lock"
mv "$stage/deps-signing/runtime.lock" "$stage/deps-signing.lock"
mv "$stage/deps-unsigned/runtime.lock" "$stage/deps-unsigned.lock"
# the steps that can import cryptography (ci_oras/signing/): sign, verify with --signed-by/--trust-policy, and
# release plan, whose gates are verify's search; and the one that can import sigstore: verify with a Sigstore
# identity
SIGNING_TASKS=(CiOrasSignV0 CiOrasVerifyV0 CiOrasReleasePlanV0)
SIGSTORE_TASKS=(CiOrasVerifyV0)
modules=()
while IFS= read -r dir; do
  [ "$dir" = "$here" ] || modules+=("${dir#"$here/"}")
done < <(cd "$here" && npm ls --omit=dev --parseable --all)
for task in "$stage"/tasks/*/; do
  cp "$wheel" "$task"
  deps="$stage/deps-unsigned"
  for signing in "${SIGNING_TASKS[@]}"; do
    if [ "$(basename -- "$task")" = "$signing" ]; then deps="$stage/deps-signing"; fi
  done
  for verifying in "${SIGSTORE_TASKS[@]}"; do
    if [ "$(basename -- "$task")" = "$verifying" ]; then deps="$stage/deps"; fi
  done
  cp "$deps.lock" "$task/runtime.lock"
  cp -R "$deps" "$task/wheels"
  for module in "${modules[@]}"; do
    mkdir -p "$task/$(dirname -- "$module")"
    cp -R "$here/$module" "$task/$module"
  done
done
node "$here/node_modules/tfx-cli/_build/tfx-cli.js" extension create --root "$stage" \
  --manifest-globs vss-extension.json --output-path "$out" --no-prompt
