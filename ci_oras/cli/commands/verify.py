"""``ci-oras verify``: the deployment gate (exit 0 when every required referrer exists, 1 when any is missing)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ci_oras.cli.app import Options, OutputFormat, ReferrersOpt, app, command, emit_result, referrers_mode
from ci_oras.cli.app import require_reference, runtime, write_json
from ci_oras.errors import UsageError


@command(app, "verify")
def verify(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The subject: REF:TAG or REF@DIGEST.")],
    require: Annotated[list[str] | None, typer.Option(
        "--require", "-r", metavar="SPEC", help="Required referrer: alias, artifact type, chain a>b, count *N "
        "(repeatable; commas separate specs).")] = None,
    require_file: Annotated[Path | None, typer.Option(
        "--require-file", metavar="FILE", help="More specs, one per line; '#' comments.")] = None,
    wait: Annotated[str, typer.Option(
        "--wait", metavar="DURATION", help="Keep checking this long: 30s, 2m, 1m30s or seconds (at most 24h).")] = "0",
    interval: Annotated[str, typer.Option(
        "--interval", metavar="DURATION", help="Time between checks while waiting (at most 24h).")] = "5s",
    platform: Annotated[str | None, typer.Option(
        "--platform", metavar="OS/ARCH", help="Check this child of an image index.")] = None,
    all_platforms: Annotated[bool, typer.Option(
        "--all-platforms", help="Check every platform child of an image index.")] = False,
    trust_listing: Annotated[bool, typer.Option(
        "--trust-listing", help="Count what the referrers listing says without fetching the listed manifests "
        "to check it (fewer requests; anyone who can push can forge a tag-schema listing).")] = False,
    trust_policy: Annotated[Path | None, typer.Option(
        "--trust-policy", metavar="POLICY.json", help="Count only Notary Project signatures this notation trust "
        "policy (version 1.0) accepts.")] = None,
    trust_store: Annotated[Path | None, typer.Option(
        "--trust-store", metavar="DIR", help="notation's trust store (x509/ca/NAME/*.pem, "
        "x509/signingAuthority/NAME/*.pem); default: the truststore directory beside the policy.")] = None,
    signed_by: Annotated[Path | None, typer.Option(
        "--signed-by", metavar="CERT.pem", help="Count only signatures chaining to this root (any identity, "
        "strict); the short form of --trust-policy.")] = None,
    certificate_identity: Annotated[str | None, typer.Option(
        "--certificate-identity", metavar="IDENTITY", help="Sigstore: count only bundles whose certificate names "
        "exactly this identity (a workflow URL, an email), as cosign's flag does.")] = None,
    certificate_identity_regexp: Annotated[str | None, typer.Option(
        "--certificate-identity-regexp", metavar="REGEX", help="Sigstore: ... or an identity this regular "
        "expression finds.")] = None,
    certificate_oidc_issuer: Annotated[str | None, typer.Option(
        "--certificate-oidc-issuer", metavar="URL", help="Sigstore: the OIDC issuer that vouched for the identity, "
        "exactly (e.g. https://gitlab.com).")] = None,
    certificate_oidc_issuer_regexp: Annotated[str | None, typer.Option(
        "--certificate-oidc-issuer-regexp", metavar="REGEX", help="Sigstore: ... or an issuer this regular "
        "expression finds.")] = None,
    github_repo: Annotated[str | None, typer.Option(
        "--github-repo", metavar="OWNER/REPO", help="Sigstore: count only bundles signed in a GitHub Actions run "
        "of this repository (like 'gh attestation verify --repo').")] = None,
    signer_workflow: Annotated[str | None, typer.Option(
        "--signer-workflow", metavar="OWNER/REPO/PATH[@REF]", help="Sigstore: ... by this workflow file (at this "
        "ref).")] = None,
    trusted_root: Annotated[Path | None, typer.Option(
        "--trusted-root", metavar="FILE", help="Sigstore: the trusted_root.json to verify against (default: the "
        "public-good instance's, shipped with ci-oras; 'gh attestation trusted-root' for GitHub's own).")] = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Gate a deployment on referrers: exit 0 when every --require holds, 1 when any is missing.

    SPEC: an artifact type (application/vnd.cyclonedx+json) or an alias:
    sbom = CycloneDX or SPDX, or a Sigstore bundle with an SPDX/CycloneDX predicateType (attest-sbom);
    signature = Notary, cosign, or a Sigstore bundle without a predicateType or with cosign v3's
    https://sigstore.dev/cosign/sign/v1;
    attestation = in-toto, DSSE, cosign attestation, or a Sigstore bundle with another predicateType;
    vuln-report = SARIF, Trivy, Grype or OpenVEX;
    attestation:URI = a Sigstore bundle with exactly that predicateType (case-sensitive).

    Chain with '>' (sbom>signature: an SBOM that is itself signed); count with '*N' at the end (signature*2).
    One --require may list specs separated by commas; a --require-file holds one per line, '#' comments.

    A listed referrer counts only once its manifest is fetched and confirms the listing: it exists, has the
    listed digest and type, and names the manifest it is listed under as its subject. Entries that fail are
    reported as rejected, not counted. --trust-listing skips these fetches, at the risk of counting a
    deleted, forged or foreign referrer.

    --wait polls every --interval until the referrers show up.
    An index is checked itself, unless --platform OS/ARCH (one child) or --all-platforms (every child).

    --trust-policy POLICY.json (notation's format) or --signed-by CERT.pem: a Notary Project signature counts
    only when it verifies (integrity, chain to a trusted root, expiry, identity, as the policy's level says),
    at any level of a chain (sbom>signature: a signed SBOM whose signature verifies); each signature examined
    is listed with its outcome. The policy is chosen by REGISTRY/REPO, or local/<directory name> for oci:.

    Sigstore bundles (cosign v3, GitHub's attest actions) are verified offline when an identity is given:
    --certificate-identity(-regexp) with --certificate-oidc-issuer(-regexp), or --github-repo OWNER/REPO
    (and --signer-workflow). A bundle then counts only when its certificate chains to the trusted root at the
    logged signing time, its log entry and signature verify, the identity matches, and its statement (or
    signed digest) names the manifest it refers to; its kind comes from the verified statement. Without an
    identity, bundles count by type as listed in unverifiedBundles.

    --output json prints the result document on stdout whether the gate passes or not."""
    from ci_oras.emit.render import verify_hint, verify_missing, verify_text, wait_text
    from ci_oras.emit.text import say, warn
    from ci_oras.errors import VerificationFailed
    from ci_oras.requirements import merge, parse_duration, parse_requirement_file, parse_requirements
    from ci_oras.steps.trust import SigstoreFlags, signature_check
    from ci_oras.steps.verify import VerifyOptions, trust_scope
    from ci_oras.steps.verify import verify as verify_step

    from_flags = parse_requirements(require or [])
    from_file = parse_requirement_file(_read_spec_file(require_file), str(require_file)) if require_file else []
    requirements = merge(from_flags, from_file)
    ref, name = require_reference(reference)
    root_pem = (_read_root(signed_by), f"--signed-by {signed_by}") if signed_by is not None else None
    sigstore = SigstoreFlags(certificate_identity, certificate_identity_regexp, certificate_oidc_issuer,
                             certificate_oidc_issuer_regexp, github_repo, signer_workflow, trusted_root)
    signatures = signature_check(trust_scope(ref), trust_policy, trust_store, root_pem, sigstore)
    verify_options = VerifyOptions(tuple(requirements), platform=platform, all_platforms=all_platforms,
                                   wait=parse_duration(wait, "--wait"), interval=parse_duration(interval, "--interval"),
                                   trust_listing=trust_listing, signatures=signatures)
    mode = referrers_mode(referrers)
    with runtime(options) as run:
        result = verify_step(lambda: run.open(ref, referrers=mode), name, str(ref), verify_options,
                             progress=lambda status: say(wait_text(status)))
    for rejected in result.rejected:
        warn(f"not counted: {rejected}", emitter=options.emitter)
    if options.output is OutputFormat.json:
        write_json(options, result)
    else:
        say(verify_text(result))
    emit_result(options, result)  # ok=false and missing go out too, before the exit 1 below
    if not result.ok:
        raise VerificationFailed(f"verification failed: missing {verify_missing(result)}", hint=verify_hint(result))


def _read_spec_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"requirements file not found: {path}", hint="check the --require-file path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read requirements file {path}: {exc}", hint="pass a UTF-8 text file") from None


def _read_root(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"--signed-by file not found: {path}", hint="pass the trusted root certificate (PEM)") from None
    except OSError as exc:
        raise UsageError(f"cannot read --signed-by file {path}: {exc.strerror or exc}",
                         hint="pass the trusted root certificate (PEM)") from None
