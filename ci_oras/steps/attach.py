"""``attach`` (and the SBOM and signature flavours): push an artifact whose ``subject`` is another manifest.

The subject may be a tag or a digest, including the digest of another referrer (a signature of an SBOM), or,
with ``platform``, one child of an image index. The referrer is made discoverable before the step reports
success (see ``registry/referrers.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ci_oras.errors import UsageError
from ci_oras.files import FileSpec, prepare_layers
from ci_oras.formats.signature import NOTARY_ARTIFACT_TYPE, refuse_notary_for_other_subject
from ci_oras.oci.descriptor import Descriptor
from ci_oras.steps.common import AttachOptions, AttachResult, attach_layers
from ci_oras.store.protocols import GraphStorage


@dataclass(frozen=True)
class AttachInput:
    """What ``attach-sbom``/``attach-signature`` attach: the file, its types and the annotations read from it."""

    file: FileSpec
    artifact_type: str
    annotations: dict[str, str]
    #: The recognised format (``CycloneDX 1.5 JSON``), None when the user named the types.
    format: str | None


def sbom_file(path: Path, artifact_type: str | None) -> AttachInput:
    """An SBOM: its format detected and described, unless ``--artifact-type`` overrides the detection."""
    from ci_oras.formats.sbom import detect_sbom

    _require_file(path)
    if artifact_type:
        return AttachInput(_single_file(path, None), artifact_type, {}, None)
    found = detect_sbom(path)
    return AttachInput(_single_file(path, found.media_type), found.artifact_type, dict(found.annotations), found.format)


def signature_file(path: Path, artifact_type: str | None, media_type: str | None) -> AttachInput:
    """A signature: Notary (JWS, COSE) or Sigstore detected, unless both types are named for another format."""
    from ci_oras.formats.signature import detect_signature

    _require_file(path)
    if artifact_type and media_type:
        return AttachInput(_single_file(path, media_type), artifact_type, {}, None)
    if artifact_type or media_type:
        raise UsageError("--artifact-type and --media-type go together",
                         hint="give both to attach a signature format ci-oras does not recognise")
    found = detect_signature(path)
    return AttachInput(_single_file(path, found.media_type), found.artifact_type, dict(found.annotations), found.format)


def _require_file(path: Path) -> None:
    if not os.path.lexists(path):
        raise UsageError(f"file not found: {path}", hint="check the path")
    if not path.is_file():
        raise UsageError(f"{path} is not a regular file", hint="pass the file itself, not a directory, pipe or device")


def _single_file(path: Path, media_type: str | None) -> FileSpec:
    """SBOMs and signatures are titled by their file name: CI tools write them anywhere (/tmp, build/…)."""
    return FileSpec(path=path, title=path.name, media_type=media_type)


def attach(target: GraphStorage, repository: str, subject: Descriptor, files: list[FileSpec],
           options: AttachOptions, *, step: str = "attach", detected_format: str | None = None) -> AttachResult:
    if options.artifact_type.lower() == NOTARY_ARTIFACT_TYPE:
        for spec in files:
            refuse_notary_for_other_subject(spec.path, spec.media_type, subject)
    with prepare_layers(files, file_annotations=options.file_annotations, mtime=options.mtime) as layers:
        return attach_layers(target, repository, subject, layers, options, step=step,
                             detected_format=detected_format)
