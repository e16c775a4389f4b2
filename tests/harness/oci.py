"""Raw-HTTP helpers to seed and inspect a registry without ci_oras.

Integration tests need content that was *not* written by the code under test
(otherwise a symmetric bug in push and pull would go unnoticed), so these
helpers speak the distribution API directly with httpx. They follow what
REGISTRY-NOTES.md measured on distribution 2.8.2: upload with ``POST`` then a
single ``PUT ?digest=`` (a monolithic ``POST ?digest=`` silently drops the
body), and always send an OCI ``Accept`` on manifest reads.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = [
    "CYCLONEDX",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_ACCEPT",
    "NOTARY",
    "OCI_EMPTY_DIGEST",
    "OCI_EMPTY_JSON",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "PushedImage",
    "SIGSTORE_BUNDLE",
    "SPDX",
    "compact",
    "digest_of",
    "fallback_tag",
    "parse_challenge",
    "push_artifact",
    "push_blob",
    "push_fallback_index",
    "push_image",
    "push_index",
    "push_layer",
    "push_manifest",
    "push_referrer",
    "subject_of",
    "with_platform",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json"
#: The digest of ``{}``, the empty config: written out rather than computed, so a test comparing against it
#: does not share the computation it checks.
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
#: distribution answers 404 to a manifest GET whose Accept lacks the OCI types.
MANIFEST_ACCEPT = f"{OCI_MANIFEST}, {OCI_INDEX}, {DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}"

#: Artifact types of what the attach steps attach: SBOMs (CycloneDX, SPDX) and signatures (Notary, Sigstore).
CYCLONEDX = "application/vnd.cyclonedx+json"
SPDX = "application/spdx+json"
NOTARY = "application/vnd.cncf.notary.signature"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"

_CHALLENGE_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def digest_of(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(doc: dict[str, Any]) -> bytes:
    """``doc`` as the compact JSON bytes a manifest is pushed as (its digest is over exactly these bytes)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag for a subject: ``sha256-<hex>``."""
    return digest.replace(":", "-")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``Bearer realm="..",service="..",scope=".."`` into parts.

    Only the single-challenge form distribution sends is handled; quoted
    values may contain commas and spaces (multi-scope ``scope``).
    """
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _CHALLENGE_PARAM_RE.finditer(rest):
        quoted, bare = match.group(2), match.group(3)
        value = quoted.replace('\\"', '"').replace("\\\\", "\\") if quoted is not None else bare
        params[match.group(1).lower()] = value
    return scheme, params


def push_blob(client: httpx.Client, base_url: str, repo: str, data: bytes) -> str:
    """Upload ``data`` as a blob (POST, then PUT ``?digest=``); return its digest."""
    digest = digest_of(data)
    started = client.post(f"{base_url}/v2/{repo}/blobs/uploads/")
    if started.status_code != 202:
        raise AssertionError(f"upload start: {started.status_code} {started.text}")
    location = started.headers["Location"]
    separator = "&" if "?" in location else "?"
    url = location if location.startswith("http") else base_url + location
    done = client.put(
        f"{url}{separator}digest={digest}",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if done.status_code != 201:
        raise AssertionError(f"upload finish: {done.status_code} {done.text}")
    return digest


def push_manifest(
    client: httpx.Client,
    base_url: str,
    repo: str,
    reference: str,
    manifest: bytes,
    media_type: str = OCI_MANIFEST,
) -> str:
    """PUT a manifest by tag or digest; return the registry's digest header."""
    resp = client.put(
        f"{base_url}/v2/{repo}/manifests/{reference}",
        content=manifest,
        headers={"Content-Type": media_type},
    )
    if resp.status_code != 201:
        raise AssertionError(f"manifest put: {resp.status_code} {resp.text}")
    return str(resp.headers.get("Docker-Content-Digest") or digest_of(manifest))


@dataclass(frozen=True)
class PushedImage:
    """What :func:`push_image` uploaded, for later assertions."""

    repo: str
    tag: str
    manifest: bytes
    manifest_digest: str
    config_digest: str
    layer_digest: str
    layer: bytes


def push_image(
    client: httpx.Client,
    base_url: str,
    repo: str,
    tag: str = "latest",
    layer: bytes = b"hello from the ci-oras test harness\n",
    artifact_type: str | None = "application/vnd.ci-oras.test",
) -> PushedImage:
    """Push a one-layer OCI artifact (empty ``{}`` config, one layer) and tag it."""
    config = b"{}"
    config_digest = push_blob(client, base_url, repo, config)
    layer_digest = push_blob(client, base_url, repo, layer)
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY_JSON, "digest": config_digest, "size": len(config)},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(layer),
                "annotations": {"org.opencontainers.image.title": "hello.txt"},
            }
        ],
    }
    if artifact_type is not None:
        body["artifactType"] = artifact_type
    manifest = compact(body)
    manifest_digest = push_manifest(client, base_url, repo, tag, manifest)
    return PushedImage(repo, tag, manifest, manifest_digest, config_digest, layer_digest, layer)


def subject_of(pushed: PushedImage) -> dict[str, Any]:
    """The descriptor of a pushed image as a referrer's ``subject`` names it."""
    return {"mediaType": OCI_MANIFEST, "digest": pushed.manifest_digest, "size": len(pushed.manifest)}


def push_layer(
    client: httpx.Client,
    base_url: str,
    repo: str,
    data: bytes,
    media_type: str = "application/octet-stream",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Upload ``data`` as a blob; returns its descriptor as a manifest's ``layers`` lists it."""
    layer: dict[str, Any] = {"mediaType": media_type, "digest": push_blob(client, base_url, repo, data),
                             "size": len(data)}
    if annotations:
        layer["annotations"] = annotations
    return layer


def push_artifact(
    client: httpx.Client,
    base_url: str,
    repo: str,
    layers: list[dict[str, Any]],
    *,
    reference: str | None = None,
    artifact_type: str | None = None,
    subject: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    push_config: bool = True,
) -> dict[str, Any]:
    """Push an OCI manifest with the empty ``{}`` config over ``layers`` (blobs already pushed), tagged
    ``reference`` or else by digest; ``subject`` makes it a referrer of that manifest. ``push_config=False``
    when the config blob is known to be there: distribution can fail a manifest PUT while the same blob is
    being uploaded in parallel, so parallel seeding pushes it once, first.

    Returns its descriptor as a referrers index lists it: media type, digest, size, and the ``artifactType``
    and annotations when it has them.
    """
    config = push_blob(client, base_url, repo, b"{}") if push_config else OCI_EMPTY_DIGEST
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["config"] = {"mediaType": OCI_EMPTY_JSON, "digest": config, "size": 2}
    doc["layers"] = layers
    if subject is not None:
        doc["subject"] = {key: subject[key] for key in ("mediaType", "digest", "size")}
    if annotations:
        doc["annotations"] = annotations
    raw = compact(doc)
    digest = push_manifest(client, base_url, repo, reference or digest_of(raw), raw)
    listed: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)}
    if artifact_type is not None:
        listed["artifactType"] = artifact_type
    if annotations:
        listed["annotations"] = annotations
    return listed


def push_referrer(client: httpx.Client, base_url: str, repo: str, subject: dict[str, Any], artifact_type: str,
                  payload: bytes, *, layer_type: str = "application/octet-stream",
                  annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """Push an OCI 1.1 artifact with ``payload`` as its one layer and ``subject`` as its subject, by digest
    and untagged, the way ORAS attaches one; listed nowhere yet. Returns its descriptor as a referrers index
    lists it."""
    layer = push_layer(client, base_url, repo, payload, layer_type)
    return push_artifact(client, base_url, repo, [layer], artifact_type=artifact_type, subject=subject,
                         annotations=annotations)


def with_platform(desc: dict[str, Any], platform: str, **extra: Any) -> dict[str, Any]:
    """``desc`` as an image index lists the child for ``platform`` (``os/arch[/variant]``), plus ``extra``."""
    os_name, architecture, *variant = platform.split("/")
    spec = {"architecture": architecture, "os": os_name, **({"variant": variant[0]} if variant else {})}
    return {**desc, "platform": spec, **extra}


def push_index(client: httpx.Client, base_url: str, repo: str, reference: str,
               children: list[dict[str, Any]]) -> dict[str, Any]:
    """Push an image index listing ``children`` (descriptors), tagged ``reference``; returns its descriptor."""
    raw = compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    digest = push_manifest(client, base_url, repo, reference, raw, OCI_INDEX)
    return {"mediaType": OCI_INDEX, "digest": digest, "size": len(raw)}


def push_fallback_index(
    client: httpx.Client, base_url: str, repo: str, subject_digest: str, entries: list[dict[str, Any]]
) -> str:
    """Write the tag schema's referrers index of ``subject_digest`` listing ``entries`` (true or not), as
    any client with push access can; returns its digest."""
    digest: str = push_index(client, base_url, repo, fallback_tag(subject_digest), entries)["digest"]
    return digest
