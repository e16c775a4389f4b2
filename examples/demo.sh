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

# 5. Attach referrers (OCI 1.1): a signature, a multi-file docs artifact and an SBOM.
printf '{"signature":"example"}\n' > signature.json
step ci-oras attach "$repo:v1" signature.json --artifact-type signature/example "${flags[@]}"
mkdir -p docs && printf 'usage\n' > docs/usage.md && printf 'faq\n' > docs/faq.md
step ci-oras attach "$repo:v1" docs/usage.md docs/faq.md --artifact-type application/vnd.acme.docs.v1 "${flags[@]}"
cat > sbom.cdx.json <<'SBOM'
{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
 "metadata": {"timestamp": "2024-05-02T10:15:30Z",
              "tools": {"components": [{"type": "application", "name": "syft", "version": "1.4.1"}]}},
 "components": [{"type": "library", "name": "readme-renderer", "version": "1.0.0"}]}
SBOM
step ci-oras attach-sbom "$repo:v1" sbom.cdx.json "${flags[@]}"

# 6. Sign the SBOM: find its digest with discover, then attach a signature to it (a deep graph).
sbom_digest="$(ci-oras discover "$repo:v1" --artifact-type application/vnd.cyclonedx+json --output json "${flags[@]}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["referrers"][0]["digest"])')"
printf '{"signature":"of the sbom"}\n' > sbom-signature.json
step ci-oras attach "$repo@$sbom_digest" sbom-signature.json --artifact-type signature/example "${flags[@]}"

# 7. The whole graph, and one referrer pulled by digest.
step ci-oras discover "$repo:v1" "${flags[@]}"
step ci-oras pull "$repo@$sbom_digest" -o pulled-sbom "${flags[@]}"
cmp sbom.cdx.json pulled-sbom/sbom.cdx.json && echo "pulled SBOM is byte-for-byte identical" >&2

# 8. A release gate: an SBOM that is itself signed, and a signature, must be attached.
step ci-oras verify "$repo:v1" --require 'sbom>signature/example' --require signature/example "${flags[@]}"

# 9. Promote the artifact with its whole graph to staging, look at it there, pull a referrer by digest.
staging="${repo%/readme/example}/sample-staging/readme/example"
step ci-oras promote "$repo:v1" "$staging:v1" "${flags[@]}"
step ci-oras discover "$staging:v1" "${flags[@]}"
step ci-oras pull "$staging@$sbom_digest" -o pulled-from-staging "${flags[@]}"
cmp sbom.cdx.json pulled-from-staging/sbom.cdx.json && echo "SBOM promoted byte-for-byte" >&2

# 10. Delete both graphs: every referrer, deepest first, then the artifact.
step ci-oras delete "$staging:v1" --graph "${flags[@]}"
step ci-oras delete "$repo@$digest" --graph "${flags[@]}"
echo "demo finished" >&2
