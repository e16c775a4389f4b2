"""Fetch a signature referrer's envelope and have the configured policy judge it.

The walk that finds referrers (and checks each listed manifest before it counts) hands over a signature's
manifest; this module picks the layer that holds the envelope or bundle, fetches it through the store
protocols (digest verified by the store, size bounded here), and passes it to the policy for its artifact
type. The verdict is a :class:`~ci_oras.signing.policy.SignatureOutcome` for the JSON document; a referrer no
configured policy handles returns None (it is not a signature this run can judge).

``ci_oras.signing`` (and with it ``cryptography``) is imported only when a signature is examined, so a verify
without a trust policy never loads it.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ci_oras.oci.descriptor import EMPTY_DESCRIPTOR, Descriptor
from ci_oras.oci.manifest import Manifest
from ci_oras.store.protocols import Fetcher

if TYPE_CHECKING:
    from ci_oras.signing.policy import Policies, SignatureOutcome


@dataclass(frozen=True)
class SignatureCheck:
    """What a requirement walk needs to judge signatures: the configured policies and the repository scope
    they are selected by (``registry/repository``, or ``local/<name>`` for an OCI layout)."""

    policies: Policies
    scope: str

    def handles(self, artifact_type: str | None) -> bool:
        return bool(artifact_type) and self.policies.for_type(artifact_type or "") is not None


def examine_signature(store: Fetcher, referrer: Manifest, subject: Descriptor, policies: Policies,
                      scope: str) -> SignatureOutcome | None:
    """Judge ``referrer`` (a manifest whose subject is ``subject``) in repository ``scope``; None when no
    policy handles its artifact type."""
    from ci_oras.signing.policy import MAX_SIGNATURE_BYTES, Signature

    artifact_type = referrer.effective_artifact_type or ""
    policy = policies.for_type(artifact_type)
    if policy is None:
        return None
    layer = policy.pick_layer(referrer.layers)
    content = b""
    if layer is None:
        layer = EMPTY_DESCRIPTOR  # judged as "no envelope layer" by the policy, which names the problem
    elif layer.size <= MAX_SIGNATURE_BYTES:
        with closing(store.fetch(layer)) as chunks:
            content = b"".join(chunks)
    signature = Signature(digest=referrer.digest, artifact_type=artifact_type, layer=layer, content=content,
                          annotations=dict(referrer.annotations))
    return policy.evaluate(signature, subject, scope)
