"""What ``ci-oras verify --require`` accepts: requirement specs, the alias table, and ``--wait`` durations.

Pure: no I/O (``--require-file`` is read by the command and its text handed to :func:`parse_requirement_file`).

Grammar (whitespace around every token is ignored)::

    requirement := chain [ "*" COUNT ]
    chain       := element ( ">" element )*
    element     := ALIAS | MEDIA-TYPE | "attestation:" PREDICATE-TYPE

- ``ALIAS`` is a name from :data:`ALIASES` (case-insensitive); ``MEDIA-TYPE`` is an artifact type written out,
  ``type/subtype[;name=value]*`` (RFC 6838 names), compared case-insensitively with whitespace around ``;`` and
  ``=`` ignored.
- ``attestation:PREDICATE-TYPE`` (``attestation:https://slsa.dev/provenance/v1``) matches a Sigstore bundle whose
  manifest's ``dev.sigstore.bundle.predicateType`` annotation equals PREDICATE-TYPE exactly: predicate types are
  URIs compared as strings, case-sensitively (in-toto and cosign compare them that way; only the word
  ``attestation`` is case-insensitive), with no version folding (``.../provenance/v1`` is not ``.../v0.2``).
- A chain ``a>b>c`` holds for a referrer R of the subject when R matches ``a``, and something referring to R
  matches ``b``, and so on: ``sbom>signature`` is "a signed SBOM".
- ``*COUNT`` (a positive integer, default 1) applies to the whole spec: at least COUNT distinct referrers of the
  subject (for a chain: first-level referrers) must satisfy it. ``signature*2`` = two signatures.
- One ``--require`` value may hold several specs separated by commas (``--require sbom,signature``), which
  suits CI wrappers whose inputs are single strings. A ``--require-file`` holds specs one per line (commas
  allowed too); ``#`` starts a comment at the start of a line or after whitespace; blank lines are skipped.
- The same spec given twice (after normalisation) is checked once.

Aliases (the one table, :data:`ALIASES`; ``ci-oras verify --help`` shows it too):

==============  ===================================================================================
``sbom``        CycloneDX ``application/vnd.cyclonedx+json``, ``application/vnd.cyclonedx+xml``;
                SPDX ``application/spdx+json``, ``text/spdx``; a Sigstore bundle whose predicateType is an
                SBOM's: ``https://spdx.dev/Document`` or ``https://cyclonedx.org/bom``, bare or versioned
                (``https://spdx.dev/Document/v2.3``, ``https://cyclonedx.org/bom/v1.5``), as GitHub's
                ``actions/attest-sbom`` writes them
``signature``   Notary Project ``application/vnd.cncf.notary.signature``; Sigstore bundles
                ``application/vnd.dev.sigstore.bundle.v0.3+json`` and
                ``application/vnd.dev.sigstore.bundle+json;version=0.1|0.2|0.3``; cosign
                ``application/vnd.dev.cosign.artifact.sig.v1+json`` — a Sigstore bundle only when it
                carries **no** ``dev.sigstore.bundle.predicateType`` annotation (a message signature), or
                cosign v3's signing predicate ``https://sigstore.dev/cosign/sign/v1``
``attestation`` in-toto ``application/vnd.in-toto+json``, DSSE ``application/vnd.dsse.envelope.v1+json``,
                cosign ``application/vnd.dev.cosign.attestation.v1+json``, and a Sigstore bundle (any of
                the types above) whose ``dev.sigstore.bundle.predicateType`` is neither an SBOM's nor
                cosign's signing predicate
``vuln-report`` SARIF ``application/sarif+json``; Trivy ``application/vnd.aquasec.trivy.report.v1+json``,
                ``application/vnd.aquasecurity.trivy.report.sarif.v1`` and its bare spelling
                ``vnd.aquasecurity.trivy.report.sarif.v1`` (both in Ratify's and Azure's examples);
                Grype ``application/vnd.anchore.grype.report.v1+json``; OpenVEX
                ``application/vnd.openvex+json``
==============  ===================================================================================

A Sigstore bundle is one kind, as its producer meant it: cosign stores ``cosign sign``, ``cosign attest`` and
GitHub's ``actions/attest-*`` all under the same bundle artifact type. A message signature (no predicate type,
as ``attach-signature`` and cosign before v3 write it) and cosign v3's ``cosign sign`` (a DSSE statement whose
predicate type is ``https://sigstore.dev/cosign/sign/v1``) say "the image is signed": ``signature``. An SPDX or
CycloneDX predicate is the SBOM itself, attested: ``sbom`` (a team that attests its SBOM rather than
attaching the file expects ``--require sbom`` to pass). Every other predicate (provenance, vulnerability scans,
test results) is an ``attestation``, and ``attestation:URI`` names any predicate exactly. So ``signature*2``
never counts one signature and one provenance statement. The predicate type is read from the manifest's
annotation; with a Sigstore identity policy, the verified statement's own predicate type decides instead (an
annotation is a claim). A media type written out matches on the artifact type alone, whatever the
annotations.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ci_oras.errors import UsageError
from ci_oras.oci.mediatypes import normalize_media_type

ANNOTATION_PREDICATE_TYPE = "dev.sigstore.bundle.predicateType"

CYCLONEDX_JSON = "application/vnd.cyclonedx+json"
CYCLONEDX_XML = "application/vnd.cyclonedx+xml"
SPDX_JSON = "application/spdx+json"
SPDX_TAG_VALUE = "text/spdx"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
SIGSTORE_BUNDLES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
COSIGN_ATTESTATION = "application/vnd.dev.cosign.attestation.v1+json"
SARIF = "application/sarif+json"
TRIVY_REPORT = "application/vnd.aquasec.trivy.report.v1+json"
TRIVY_SARIF = "application/vnd.aquasecurity.trivy.report.sarif.v1"
TRIVY_SARIF_BARE = "vnd.aquasecurity.trivy.report.sarif.v1"
GRYPE_REPORT = "application/vnd.anchore.grype.report.v1+json"
OPENVEX = "application/vnd.openvex+json"
#: Predicate types of SBOM attestations; ``/vX.Y`` suffixes (``https://spdx.dev/Document/v2.3``) match too.
SBOM_PREDICATES = ("https://spdx.dev/Document", "https://cyclonedx.org/bom")
#: cosign v3's ``cosign sign`` statement (``https://sigstore.dev/cosign/sign/v1``): a signature, not an attestation.
COSIGN_SIGN_PREDICATES = ("https://sigstore.dev/cosign/sign",)
ATTESTATION_PREFIX = "attestation:"


@dataclass(frozen=True)
class Alias:
    """A name for a family of artifact types.

    ``types`` match on their own; ``with_predicate`` match only when the referrer carries a
    ``dev.sigstore.bundle.predicateType`` annotation, ``unless_predicate`` only when it does not;
    ``predicate_families``, when set, narrows ``with_predicate`` to those predicate types, and
    ``excluded_predicates`` leaves those out (families: bare or versioned).
    """

    name: str
    description: str
    types: tuple[str, ...] = ()
    unless_predicate: tuple[str, ...] = ()
    with_predicate: tuple[str, ...] = ()
    predicate_families: tuple[str, ...] = ()
    excluded_predicates: tuple[str, ...] = ()

    @property
    def all_types(self) -> tuple[str, ...]:
        return self.types + self.unless_predicate + self.with_predicate


#: The alias table: the only place the families are defined (the module docstring explains each choice).
ALIASES: Mapping[str, Alias] = {
    alias.name: alias
    for alias in (
        Alias("sbom", "CycloneDX (JSON, XML) or SPDX (JSON, tag-value) SBOM",
              types=(CYCLONEDX_JSON, CYCLONEDX_XML, SPDX_JSON, SPDX_TAG_VALUE),
              with_predicate=SIGSTORE_BUNDLES, predicate_families=SBOM_PREDICATES),
        Alias("signature", "Notary Project, cosign or Sigstore-bundle signature",
              types=(NOTARY_SIGNATURE, COSIGN_SIGNATURE), unless_predicate=SIGSTORE_BUNDLES,
              with_predicate=SIGSTORE_BUNDLES, predicate_families=COSIGN_SIGN_PREDICATES),
        Alias("attestation", "in-toto / DSSE attestation, or a Sigstore bundle with another predicateType",
              types=(IN_TOTO, DSSE_ENVELOPE, COSIGN_ATTESTATION), with_predicate=SIGSTORE_BUNDLES,
              excluded_predicates=SBOM_PREDICATES + COSIGN_SIGN_PREDICATES),
        Alias("vuln-report", "SARIF, Trivy, Grype or OpenVEX vulnerability report",
              types=(SARIF, TRIVY_REPORT, TRIVY_SARIF, TRIVY_SARIF_BARE, GRYPE_REPORT, OPENVEX)),
    )
}


@dataclass(frozen=True)
class Matcher:
    """One element of a chain: an alias or one artifact type."""

    #: As shown in results: the alias name, or the normalised media type.
    text: str
    #: Artifact types (normalised) that match on their own.
    types: frozenset[str]
    #: Types that match only without / only with a ``dev.sigstore.bundle.predicateType`` annotation.
    unless_predicate: frozenset[str] = frozenset()
    with_predicate: frozenset[str] = frozenset()
    #: When not empty, ``with_predicate`` types match only with one of these predicate types: exactly, or
    #: (``versioned``) also followed by ``/`` and a version.
    predicates: frozenset[str] = frozenset()
    versioned: bool = False
    #: Predicate types (the same way) that never match.
    excluded: frozenset[str] = frozenset()

    @property
    def candidate_types(self) -> frozenset[str]:
        """Every artifact type that can match, whatever the annotations."""
        return self.types | self.unless_predicate | self.with_predicate

    def may_match(self, artifact_type: str | None) -> bool:
        """Whether a referrer of this type can match once its own annotations are known (a listing's
        annotations are a claim: the manifest's decide)."""
        return bool(artifact_type) and normalize_media_type(artifact_type or "") in self.candidate_types

    def matches(self, artifact_type: str | None, annotations: Mapping[str, str]) -> bool:
        if not artifact_type:
            return False
        kind = normalize_media_type(artifact_type)
        if kind in self.types:
            return True
        predicate = annotations.get(ANNOTATION_PREDICATE_TYPE) or ""
        if not predicate:
            return kind in self.unless_predicate
        return (kind in self.with_predicate and (not self.predicates or self._in(predicate, self.predicates))
                and not self._in(predicate, self.excluded))

    def _in(self, predicate: str, family: frozenset[str]) -> bool:
        if predicate in family:
            return True
        base, slash, version = predicate.rpartition("/")
        return self.versioned and bool(slash) and base in family and _VERSION.fullmatch(version) is not None


@dataclass(frozen=True)
class Requirement:
    """A parsed spec: a chain of matchers and how many first-level referrers must satisfy it."""

    chain: tuple[Matcher, ...]
    count: int = 1

    @property
    def spec(self) -> str:
        """The canonical spelling, used in results and in ``missing``: ``sbom>signature*2``."""
        text = ">".join(m.text for m in self.chain)
        return f"{text}*{self.count}" if self.count > 1 else text

    def __str__(self) -> str:
        return self.spec


_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_PARAM = rf"\s*;\s*{_RESTRICTED_NAME}\s*=\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_MEDIA_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}(?:{_PARAM})*")
_COUNT = re.compile(r"[0-9]+")
_VERSION = re.compile(r"v?[0-9]+(?:\.[0-9]+)*")
#: An absolute URI (RFC 3986 scheme, then no whitespace and none of the grammar's separators).
_PREDICATE_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s,>*]+")
_EXAMPLES = "e.g. sbom, signature*2, sbom>signature or application/vnd.cyclonedx+json"


_SIGSTORE_BUNDLE_TYPES = frozenset(normalize_media_type(kind) for kind in SIGSTORE_BUNDLES)


def is_sigstore_bundle(artifact_type: str | None) -> bool:
    return bool(artifact_type) and normalize_media_type(artifact_type or "") in _SIGSTORE_BUNDLE_TYPES


def alias_names() -> str:
    return ", ".join(ALIASES)


def _bad(spec: str, problem: str, hint: str) -> UsageError:
    return UsageError(f"invalid requirement {spec.strip()!r}: {problem}", hint=hint)


def _matcher(element: str, spec: str) -> Matcher:
    if not element:
        raise _bad(spec, "an empty element in the chain",
                   hint="put an alias or an artifact type on both sides of every '>', e.g. sbom>signature")
    if "*" in element:
        raise _bad(spec, f"a count inside the chain ({element!r})",
                   hint="the count goes once, at the end of the whole spec: sbom>signature*2")
    if element[:len(ATTESTATION_PREFIX)].lower() == ATTESTATION_PREFIX:
        predicate = element[len(ATTESTATION_PREFIX):].strip()
        if not _PREDICATE_TYPE.fullmatch(predicate):
            raise _bad(spec, f"{predicate!r} is not a predicate type",
                       hint="write the in-toto predicate type as a URI: attestation:https://slsa.dev/provenance/v1")
        return Matcher(ATTESTATION_PREFIX + predicate, frozenset(), with_predicate=frozenset(SIGSTORE_BUNDLES),
                       predicates=frozenset({predicate}))
    alias = ALIASES.get(element.lower())
    if alias is not None:
        return Matcher(alias.name, frozenset(alias.types), frozenset(alias.unless_predicate),
                       frozenset(alias.with_predicate), frozenset(alias.predicate_families),
                       versioned=bool(alias.predicate_families or alias.excluded_predicates),
                       excluded=frozenset(alias.excluded_predicates))
    if "/" not in element:
        close = difflib.get_close_matches(element.lower(), list(ALIASES), n=1)
        suggestion = f"did you mean {close[0]!r}? " if close else ""
        raise _bad(spec, f"unknown alias {element!r}",
                   hint=f"{suggestion}use one of {alias_names()}, or an artifact type such as "
                        "application/vnd.cyclonedx+json")
    if not _MEDIA_TYPE.fullmatch(element):
        raise _bad(spec, f"{element!r} is not a media type",
                   hint="write the artifact type as type/subtype[;name=value], e.g. application/spdx+json")
    normalized = normalize_media_type(element)
    return Matcher(normalized, frozenset({normalized}))


def parse_requirement(spec: str) -> Requirement:
    """One spec (no commas) → a Requirement; ``UsageError`` (exit 2) naming the spec and the fix."""
    text = spec.strip()
    if not text:
        raise UsageError("empty requirement", hint=f"give an alias or an artifact type, {_EXAMPLES}")
    body, star, count_text = text.rpartition("*") if "*" in text else (text, "", "")
    count = 1
    if star:
        count_text = count_text.strip()
        if ">" in count_text:
            raise _bad(spec, "a count inside the chain",
                       hint="the count goes once, at the end of the whole spec: sbom>signature*2")
        if not _COUNT.fullmatch(count_text):
            raise _bad(spec, f"the count {count_text!r} after '*' is not a number",
                       hint="end the spec with *N, a positive whole number: signature*2")
        count = int(count_text)
        if count < 1:
            raise _bad(spec, "a count of 0 requires nothing",
                       hint="use *1 or more, or leave the requirement out")
        if not body.strip():
            raise _bad(spec, "nothing before the count", hint=f"write what to count first, {_EXAMPLES}")
    chain = tuple(_matcher(element.strip(), spec) for element in body.split(">"))
    return Requirement(chain, count)


def parse_requirements(values: Iterable[str]) -> list[Requirement]:
    """``--require`` values (each may list specs separated by commas), deduplicated in order."""
    found: list[Requirement] = []
    for value in values:
        pieces = value.split(",")
        if len(pieces) > 1 and not all(piece.strip() for piece in pieces):
            raise _bad(value, "an empty spec between commas", hint="separate specs with single commas")
        for piece in pieces:
            _add(found, parse_requirement(piece))
    return found


def parse_requirement_file(text: str, name: str) -> list[Requirement]:
    """A ``--require-file``: one spec per line (or several separated by commas), ``#`` comments."""
    found: list[Requirement] = []
    for number, line in enumerate(text.splitlines(), start=1):
        content = _strip_comment(line).strip()
        if not content:
            continue
        try:
            for requirement in parse_requirements([content]):
                _add(found, requirement)
        except UsageError as exc:
            raise UsageError(f"{name}:{number}: {exc.message}", hint=exc.hint) from None
    return found


def merge(*groups: Iterable[Requirement]) -> list[Requirement]:
    found: list[Requirement] = []
    for group in groups:
        for requirement in group:
            _add(found, requirement)
    return found


def _add(found: list[Requirement], requirement: Requirement) -> None:
    if requirement not in found:
        found.append(requirement)


def _strip_comment(line: str) -> str:
    for index, char in enumerate(line):
        if char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ms|d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: No CI job waits longer than a day (hosted runners stop jobs after hours); a larger value is a typo.
MAX_DURATION = 24 * 3600.0


def parse_duration(text: str, flag: str, maximum: float = MAX_DURATION) -> float:
    """``30s``, ``2m``, ``1m30s``, ``1h``, ``7d``, ``500ms``, ``1.5s`` or plain seconds (``45``) → seconds.

    ``maximum`` guards against typos; a signature's expiry (months, years) passes a larger one than a wait."""
    value = text.strip().lower()
    hint = f"write {flag} as plain seconds (45) or with units: 30s, 2m, 1m30s, 1h, 500ms"
    if not value:
        raise UsageError(f"{flag} is empty", hint=hint)
    try:
        seconds = float(value)
    except ValueError:
        position, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(value):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if position != len(value) or position == 0:
            raise UsageError(f"invalid {flag} {text!r}", hint=hint) from None
    if not math.isfinite(seconds) or seconds < 0:
        raise UsageError(f"invalid {flag} {text!r}: must be zero or more", hint=hint)
    if seconds > maximum:
        limit = f"{maximum / 86400:g}d" if maximum > MAX_DURATION else "24h"
        raise UsageError(f"invalid {flag} {text!r}: the maximum is {limit}", hint=hint)
    return seconds
