"""What ``verify`` trusts: the Notary Project trust policy (``--trust-policy``/``--trust-store`` or
``--signed-by``) and the Sigstore identity (cosign's and ``gh attestation verify``'s flags, ``--trusted-root``),
checked and set up before anything is fetched.

Apart from ``steps/verify.py`` because only the ``verify`` command sets them up: ``release plan`` gates with
verify's search but never with a policy, so it reaches neither this module nor sigstore-python (the Azure
release-plan task carries no sigstore wheels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ci_oras.errors import UsageError
from ci_oras.graph.signatures import SignatureCheck

if TYPE_CHECKING:
    from ci_oras.signing.bundles import IdentityPolicy
    from ci_oras.signing.policy import SignaturePolicy


@dataclass(frozen=True)
class SigstoreFlags:
    """Who may have signed a Sigstore bundle (cosign's and ``gh attestation verify``'s flags) and the trusted
    root to verify it against (None: the public-good instance's)."""

    identity: str | None = None
    identity_regexp: str | None = None
    issuer: str | None = None
    issuer_regexp: str | None = None
    github_repo: str | None = None
    signer_workflow: str | None = None
    trusted_root: Path | None = None


def signature_check(scope: str, trust_policy: Path | None, trust_store: Path | None,
                    signed_by: tuple[bytes, str] | None,
                    sigstore: SigstoreFlags = SigstoreFlags()) -> SignatureCheck | None:
    """The policies ``--trust-policy``/``--trust-store`` or ``--signed-by`` (its PEM and how to name it) and a
    Sigstore identity policy set up, refused (exit 2) before anything is fetched when they are contradictory,
    select nothing for ``scope`` or name an unreadable trusted root; None without any."""
    if trust_policy is not None and signed_by is not None:
        raise UsageError("--trust-policy and --signed-by are mutually exclusive",
                         hint="--signed-by CERT.pem is the short form of a strict policy trusting one root: pick one")
    if trust_store is not None and trust_policy is None:
        raise UsageError("--trust-store needs --trust-policy", hint="add --trust-policy POLICY.json")
    no_identity_flag = sigstore == SigstoreFlags(trusted_root=sigstore.trusted_root)
    identity = None if no_identity_flag else _identity_policy(sigstore)  # no flag: ci_oras.signing stays unloaded
    if sigstore.trusted_root is not None and identity is None:
        raise UsageError("--trusted-root needs an identity to check bundles against",
                         hint="add --certificate-identity and --certificate-oidc-issuer, or --github-repo OWNER/REPO")
    if trust_policy is None and signed_by is None and identity is None:
        return None  # before the imports: a gate without a policy never loads cryptography or sigstore
    policies: list[SignaturePolicy] = []
    if trust_policy is not None or signed_by is not None:
        from ci_oras.signing.policy import NotaryPolicy

        if trust_policy is not None:
            notary = NotaryPolicy.from_files(trust_policy, trust_store)
        else:
            assert signed_by is not None
            notary = NotaryPolicy.signed_by(*signed_by)
        notary.document.select(scope)  # no statement for this repository: say so now, not per signature
        policies.append(notary)
    if identity is not None:
        from ci_oras.signing.bundles import SigstorePolicy

        bundles = SigstorePolicy(identity, sigstore.trusted_root)
        if sigstore.trusted_root is not None:
            bundles.verifier()  # a wrong file is exit 2 now, not a refusal per bundle
        policies.append(bundles)
    from ci_oras.signing.policy import Policies

    return SignatureCheck(Policies(tuple(policies)), scope)


def _identity_policy(sigstore: SigstoreFlags) -> IdentityPolicy | None:
    from ci_oras.signing.bundles import IdentityPolicy  # no sigstore-python, no cryptography at import

    return IdentityPolicy.from_flags(identity=sigstore.identity, identity_regexp=sigstore.identity_regexp,
                                     issuer=sigstore.issuer, issuer_regexp=sigstore.issuer_regexp,
                                     github_repo=sigstore.github_repo, signer_workflow=sigstore.signer_workflow)
