#!/usr/bin/env bash
# The ci-oras walkthrough. By default it runs on an OCI image layout in a temporary directory, so it needs no
# registry; point it at one with CI_ORAS_DEMO_REPO=127.0.0.1:5000/readme/example (plus any connection flags in
# CI_ORAS_DEMO_FLAGS, e.g. "--plain-http").
set -euo pipefail

work="$(mktemp -d "${TMPDIR:-/tmp}/ci-oras-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
repo="${CI_ORAS_DEMO_REPO:-oci:$work/layout/readme/example}"
read -r -a flags <<< "${CI_ORAS_DEMO_FLAGS:-}"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }

cd "$work"
printf '# Example\nci-oras walkthrough\n' > readme.md
mkdir -p details/more
printf 'details one\n' > details/one.txt
printf 'details two\n' > details/more/two.txt

# 1. Push a file and a directory as one artifact.
step ci-oras push "$repo:v1" readme.md:text/markdown details \
  --artifact-type application/vnd.acme.readme.v1 --annotation org.opencontainers.image.description="demo" "${flags[@]}"

# 2. Fetch the manifest (exact bytes) and list tags.
step ci-oras manifest fetch "$repo:v1" "${flags[@]}"
step ci-oras tags "$repo" "${flags[@]}"

# 3. Pull it into another directory: every digest is verified, the directory is unpacked.
step ci-oras pull "$repo:v1" -o pulled "${flags[@]}"
diff -r details pulled/details && cmp readme.md pulled/readme.md
echo "pulled files are byte-for-byte identical" >&2

# 4. Machine-readable result for a pipeline.
digest="$(ci-oras manifest fetch "$repo:v1" --output json "${flags[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')"
echo "digest: $digest" >&2

# 5. Delete it.
step ci-oras delete "$repo@$digest" "${flags[@]}"
echo "demo finished" >&2
