#!/usr/bin/env bash
# Stage the Azure DevOps extension's tasks: usage azure-pipelines/stage.sh DEST. Copies vss-extension.json and
# tasks/ into DEST and the one shared handler (ci-oras-task.js) into every CiOras<Step>V0 task, which is how the
# committed tree keeps a single copy of it. package.sh builds the .vsix from such a stage; the tests run tasks
# from one.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
here="$(cd -- "$(dirname -- "$0")" && pwd)"
dest="$1"
mkdir -p "$dest"
cp -R "$here/vss-extension.json" "$here/tasks" "$dest/"
for task in "$dest"/tasks/*/; do
  cp "$here/ci-oras-task.js" "$task"
done
