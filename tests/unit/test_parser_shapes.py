"""Every parser of data ci-oras did not write, fed wrong-shaped documents: only a ``CiOrasError`` escapes.

Purely random JSON rarely gets past a parser's first check, so each strategy starts from a document the
parser accepts (a manifest, a listing, a token answer, a docker config, a trust policy, an SBOM…) and then
breaks one thing: a field at any depth replaced by a value of another type (including JSON nested far past
any sane depth), a field removed, an unexpected field added, a value wrapped in a list; or the bytes
themselves truncated, made non-UTF-8 or replaced. The invariant is the documented error and exit code
(``docs/architecture.md``, "Errors"): a malformed manifest or listing is exit 6, a bad local file the user
passed exit 2, a bad token answer exit 5; anything else that escapes — an ``AttributeError``, a
``RecursionError`` — fails the test. Messages are one line.

Runs are reproducible (``derandomize``, no example database) and small: each parser sees a few hundred
documents; the counts are printed at the end of the run ("generated shapes per parser").
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples.make_samples import make_chain, notary_cose, notary_jws

from ci_oras.errors import CiOrasError, MalformedError
from ci_oras.files import load_annotation_file
from ci_oras.formats.sbom import detect_sbom
from ci_oras.formats.signature import detect_signature, refuse_notary_for_other_subject
from ci_oras.graph.discover import DiscoverOptions, discover
from ci_oras.graph.listing import Rejected, fetch_listed, judge, malformed_entry
from ci_oras.graph.match import ChainMatch
from ci_oras.oci import gojson, mediatypes
from ci_oras.oci.descriptor import Descriptor
from ci_oras.oci.manifest import parse_manifest
from ci_oras.oci.reference import parse_reference
from ci_oras.oci.referrers import MalformedListing, complete_listing, fallback_tag
from ci_oras.registry import credentials
from ci_oras.registry.auth import Authenticator, parse_token_answer
from ci_oras.registry.client import RegistryClient, _error_entries
from ci_oras.registry.referrers import ReferrersMode
from ci_oras.registry.retry import RetryPolicy
from ci_oras.registry.transport import TransportOptions, make_client
from ci_oras.requirements import parse_requirement, parse_requirement_file
from ci_oras.schemas import load_schema
from ci_oras.signing.envelope import EnvelopeError, parse_envelope
from ci_oras.signing.keys import load_certificates
from ci_oras.signing.policy import parse_trust_policy
from ci_oras.store.layout import OCILayout
from ci_oras.store.registry import RegistryRepository

EXAMPLES = 150
SHAPES = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
#: A count no listing here reaches: the search examines every candidate, so every entry meets the parsers.
EVERY = 1_000_000
SUBJECT = "sha256:" + hashlib.sha256(b"subject").hexdigest()
REJECTED_ENTRY = {**load_schema("verify")["$defs"]["rejectedEntry"], "$defs": load_schema("verify")["$defs"]}
#: Checked against its meta-schema once, here: ``jsonschema.validate`` checks the schema again on every call,
#: which was most of the time these tests spent.
jsonschema.validators.validator_for(REJECTED_ENTRY).check_schema(REJECTED_ENTRY)
REJECTED_ENTRY_VALIDATOR = jsonschema.validators.validator_for(REJECTED_ENTRY)(REJECTED_ENTRY)

# -- driving a parser and checking what escapes ---------------------------------------------------------------


def drive(request: pytest.FixtureRequest, documents: st.SearchStrategy[Any], check: Callable[[Any], None],
          examples: int = EXAMPLES) -> None:
    """Feed ``check`` every generated document; record how many it saw (the report prints them)."""
    seen = 0

    @settings(SHAPES, max_examples=examples)
    @given(documents)
    def run(document: Any) -> None:
        nonlocal seen
        seen += 1
        check(document)

    run()
    request.node.user_properties.append(("shapes", seen))
    assert seen >= examples // 2, f"only {seen} shapes generated"


def refused(call: Callable[[], Any], *codes: int) -> CiOrasError | None:
    """Run ``call``; a ``CiOrasError`` must carry one of ``codes`` and a one-line message. Anything else
    propagates and fails the test."""
    try:
        call()
    except CiOrasError as exc:
        assert exc.exit_code in codes, f"exit {exc.exit_code}, wanted {codes}: {exc}"
        assert "\n" not in str(exc), str(exc)
        return exc
    return None


# -- near-valid documents, then one thing broken --------------------------------------------------------------

DEEP = "@@deep:{}@@"
WRONG: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.just(""), st.just("sha256:" + "z" * 64), st.just(-1),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.none(), st.text(max_size=4)), max_size=3),
    st.just([["x"]]), st.just({"a": {"b": [{}]}}),
    st.sampled_from([70, 200, 5000, 100_000]).map(DEEP.format),  # nesting spliced in after encoding
)
BAD_BYTES: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=64), st.just(b""), st.just(b"\xff\xfe\x00garbage"), st.just(b"<!DOCTYPE html><html></html>"),
    st.sampled_from([100, 5000, 200_000]).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([100, 200_000]).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.just(b"[]"), st.just(b"5"), st.just(b'"text"'), st.just(b"null"), st.just(b"NaN"),
)


def _encode(document: Any) -> bytes:
    text = json.dumps(document)
    for depth in (70, 200, 5000, 100_000):
        text = text.replace(json.dumps(DEEP.format(depth)), "[" * depth + "]" * depth)
    return text.encode()


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for position, value in enumerate(document):
            yield from _paths(value, (*prefix, position))


@st.composite
def broken(draw: st.DrawFn, valid: st.SearchStrategy[Any], *, raw_too: bool = True) -> bytes:
    """A document from ``valid`` with one thing broken, encoded; sometimes bytes that are no document."""
    document = copy.deepcopy(draw(valid))
    how = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add", "wrap", "truncate", "bytes",
                                "keep"][: None if raw_too else -3] + ["keep"] * (not raw_too)))
    if how == "bytes":
        return draw(BAD_BYTES)
    if how == "truncate":
        raw = _encode(document)
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if how == "keep":
        return _encode(document)
    # Deepest fields first: Hypothesis leans towards the first choices, and the top level is broken
    # often enough by the "bytes" branch.
    path = draw(st.sampled_from(sorted(_paths(document), key=len, reverse=True)))
    if not path:
        return _encode(draw(WRONG) if how != "wrap" else [document])
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = draw(WRONG)
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "remove" and isinstance(parent, dict):
        del parent[last]
    elif how == "remove":
        parent.pop(last)
    elif isinstance(parent[last], dict):
        parent[last][draw(st.sampled_from(["unexpected", "mediaType", "size", "digest", "manifests"]))] = draw(WRONG)
    return _encode(document)


DIGESTS = st.binary(max_size=6).map(lambda data: "sha256:" + hashlib.sha256(data).hexdigest())
TYPES = st.sampled_from(["application/vnd.example.sbom", "application/vnd.cncf.notary.signature",
                         "application/spdx+json"])
ANNOTATIONS = st.dictionaries(st.sampled_from(["org.opencontainers.image.title", "a", "b.c"]),
                              st.text(max_size=8), max_size=2)
DESCRIPTORS = st.fixed_dictionaries(
    {"mediaType": st.sampled_from([mediatypes.OCI_MANIFEST, "application/octet-stream", mediatypes.OCI_EMPTY]),
     "digest": DIGESTS, "size": st.integers(0, 10 ** 6)},
    optional={"annotations": ANNOTATIONS, "artifactType": TYPES, "urls": st.just(["https://blobs.example/x"]),
              "platform": st.fixed_dictionaries({"os": st.just("linux"),
                                                 "architecture": st.sampled_from(["amd64", "arm64"])},
                                                optional={"variant": st.just("v8")}),
              "data": st.just("e30=")})
IMAGE_MANIFESTS = st.fixed_dictionaries(
    {"schemaVersion": st.just(2), "mediaType": st.just(mediatypes.OCI_MANIFEST), "config": DESCRIPTORS,
     "layers": st.lists(DESCRIPTORS, max_size=3)},
    optional={"artifactType": TYPES, "subject": DESCRIPTORS, "annotations": ANNOTATIONS})
INDEXES = st.fixed_dictionaries(
    {"schemaVersion": st.just(2), "mediaType": st.just(mediatypes.OCI_INDEX),
     "manifests": st.lists(DESCRIPTORS, max_size=4)},
    optional={"artifactType": TYPES, "subject": DESCRIPTORS, "annotations": ANNOTATIONS})


def _unsupported_type_only(error: CiOrasError | None) -> None:
    """Exit 2 from a manifest parser is only for a well-formed document of a media type that is not one."""
    if error is not None and error.exit_code == 2:
        assert "unsupported manifest media type" in error.message, error.message


# -- manifests, indexes, descriptors, listings ----------------------------------------------------------------


def test_manifests(request: pytest.FixtureRequest) -> None:
    def check(raw: bytes) -> None:
        def parse() -> None:
            manifest = parse_manifest(raw, source="reg.example/app")
            assert manifest.descriptor.digest == manifest.digest
            assert isinstance(manifest.children(), tuple)
            assert isinstance(manifest.effective_artifact_type, (str, type(None)))

        _unsupported_type_only(refused(parse, 6, 2))

    drive(request, broken(st.one_of(IMAGE_MANIFESTS, INDEXES)), check)


def test_descriptors(request: pytest.FixtureRequest) -> None:
    drive(request, broken(DESCRIPTORS),
          lambda raw: refused(lambda: Descriptor.from_dict(json.loads(raw)), 2) if _is_json(raw) else None)


def _is_json(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return True


def test_referrers_listings(request: pytest.FixtureRequest) -> None:
    """An API answer or fallback index: malformed entries become rejections that fit the verify schema."""
    def check(raw: bytes) -> None:
        def read() -> None:
            index = parse_manifest(raw, mediatypes.OCI_INDEX, listing=True)
            complete_listing(SUBJECT, "reg.example/app", index.manifests, index.malformed)

        error = refused(read, 6, 2)
        _unsupported_type_only(error)
        if isinstance(error, MalformedListing):
            for entry in error.entries:
                REJECTED_ENTRY_VALIDATOR.validate(malformed_entry(SUBJECT, entry).to_dict())

    drive(request, broken(INDEXES), check)


# -- a registry's answers, through the registry store (httpx's mock transport: no network) ---------------------


class _Streamed(httpx.SyncByteStream):
    """A body the client streams, as from a real connection (a body given whole is read at once by httpx,
    and such a response never gets its ``elapsed``)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data


class Answers:
    """A registry that answers one path with the document under test; 404 elsewhere."""

    def __init__(self) -> None:
        self.path = ""
        self.body = b""
        self.content_type = mediatypes.OCI_INDEX

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            return httpx.Response(200, headers={"Content-Type": self.content_type,
                                                "Content-Length": str(len(self.body))}, stream=_Streamed(self.body))
        return httpx.Response(404, headers={"Content-Type": "text/plain"}, content=b"404 page not found")

    def repository(self, mode: ReferrersMode = ReferrersMode.auto) -> RegistryRepository:
        """A fresh store each time: the referrers API's presence is remembered per store."""
        options = TransportOptions()
        http = make_client(options, httpx.MockTransport(self))
        client = RegistryClient("reg.example", "reg.example", plain_http=True, http=http,
                                auth=Authenticator(http, options, lambda _host: None, None), options=options,
                                policy=RetryPolicy.of(options))
        return RegistryRepository(parse_reference("reg.example/app:v1"), client, referrers_mode=mode)


SUBJECT_DESCRIPTOR = Descriptor(mediatypes.OCI_MANIFEST, SUBJECT, 3)
LISTINGS = INDEXES.map(lambda doc: {**doc, "manifests": [{**entry, "artifactType": "application/vnd.example.sbom"}
                                                         for entry in doc["manifests"]]})


@pytest.mark.parametrize("where", ["api", "tag-schema"])
def test_registry_referrers_listings(request: pytest.FixtureRequest, where: str) -> None:
    """The referrers API's answer, or the fallback tag's index, through the registry store and verify's walk:
    a malformed listing is exit 6 (or 5: a fallback tag answered with no manifest at all), a malformed entry a
    schema-valid rejection."""
    answers = Answers()
    answers.path = (f"/v2/app/referrers/{SUBJECT}" if where == "api"
                    else f"/v2/app/manifests/{SUBJECT.replace(':', '-')}")
    sbom = parse_requirement("sbom")

    def check(raw: bytes) -> None:
        answers.body = raw
        refused(lambda: answers.repository().referrers(SUBJECT_DESCRIPTOR), 6, 5)
        walk = ChainMatch(answers.repository(), 1, trust_listing=False)
        if refused(lambda: walk.run([(SUBJECT_DESCRIPTOR, sbom.chain, EVERY)]), 6, 5) is None:
            for rejection in walk.rejected():
                REJECTED_ENTRY_VALIDATOR.validate(rejection.to_dict())

    drive(request, broken(LISTINGS), check)


def test_registry_manifests(request: pytest.FixtureRequest) -> None:
    """A manifest answered for a tag: exit 6 when it is malformed, 5 when it is no manifest at all."""
    answers = Answers()
    answers.path = "/v2/app/manifests/v1"

    def check(raw: bytes) -> None:
        answers.body = raw
        answers.content_type = mediatypes.OCI_MANIFEST if raw.startswith(b"{") else "text/html"
        refused(lambda: answers.repository().fetch_manifest("v1"), 6, 5)

    drive(request, broken(st.one_of(IMAGE_MANIFESTS, INDEXES)), check)


def test_registry_tag_lists(request: pytest.FixtureRequest) -> None:
    answers = Answers()
    answers.path = "/v2/app/tags/list"
    answers.content_type = "application/json"

    def check(raw: bytes) -> None:
        answers.body = raw
        refused(lambda: answers.repository().tags(), 5)

    drive(request, broken(st.fixed_dictionaries({"name": st.just("app"), "tags": st.lists(st.text(max_size=5))})),
          check)


def test_registry_tag_lists_read_to_skip_listings(request: pytest.FixtureRequest) -> None:
    """The tag list a wide walk reads on the tag schema (``listed_subjects``): nothing escapes, whatever its
    shape. What ``tags`` refuses means "cannot tell" (every node listed, as before); what it reads tells
    exactly which subjects have a ``sha256-<hex>`` tag."""
    answers = Answers()
    answers.path = "/v2/app/tags/list"
    answers.content_type = "application/json"
    other = "sha256:" + hashlib.sha256(b"other").hexdigest()

    def check(raw: bytes) -> None:
        answers.body = raw
        try:
            tags: list[str] | None = answers.repository().tags()
        except CiOrasError:
            tags = None
        subjects = answers.repository(ReferrersMode.tag).listed_subjects(10)
        assert (subjects is None) == (tags is None)
        if subjects is not None and tags is not None:
            for digest in (SUBJECT, other):
                assert (digest in subjects) == (fallback_tag(digest) in tags)

    names = st.lists(st.one_of(st.text(max_size=5), st.just(fallback_tag(SUBJECT)), st.just(fallback_tag(other))))
    drive(request, broken(st.fixed_dictionaries({"name": st.just("app"), "tags": names})), check)


# -- an OCI layout on disk --------------------------------------------------------------------------------------


def _layout(root: Path, index: bytes, blobs: dict[str, bytes], oci_layout: bytes = b'{"imageLayoutVersion":"1.0.0"}'
            ) -> None:
    (root / "oci-layout").write_bytes(oci_layout)
    (root / "index.json").write_bytes(index)
    for raw in blobs.values():
        path = root / "blobs" / "sha256" / hashlib.sha256(raw).hexdigest()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)


def _entry(raw: bytes, media_type: str = mediatypes.OCI_MANIFEST, tag: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(raw).hexdigest(),
                             "size": len(raw)}
    if tag:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    return entry


IMAGE = gojson.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_MANIFEST, "config": {
    "mediaType": mediatypes.OCI_EMPTY, "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(), "size": 2},
    "layers": []})
IMAGE_DESCRIPTOR = Descriptor(mediatypes.OCI_MANIFEST, "sha256:" + hashlib.sha256(IMAGE).hexdigest(), len(IMAGE))
LAYOUT_INDEXES = st.fixed_dictionaries({
    "schemaVersion": st.just(2), "mediaType": st.just(mediatypes.OCI_INDEX),
    "manifests": st.lists(st.one_of(st.just(_entry(IMAGE, tag="v1")), DESCRIPTORS), min_size=1, max_size=3)})


def test_layout_index_json(request: pytest.FixtureRequest) -> None:
    def check(raw: bytes) -> None:
        with tempfile.TemporaryDirectory() as directory:
            _layout(Path(directory), raw, {"image": IMAGE})
            layout = OCILayout(directory)
            for call in (layout.tags, layout.list_manifests, lambda: layout.resolve("v1"),
                         lambda: layout.referrers(IMAGE_DESCRIPTOR)):
                refused(call, 2, 3, 6)

    drive(request, broken(LAYOUT_INDEXES), check, examples=100)


def test_layout_oci_layout_file(request: pytest.FixtureRequest) -> None:
    def check(raw: bytes) -> None:
        with tempfile.TemporaryDirectory() as directory:
            _layout(Path(directory), json.dumps({"manifests": [_entry(IMAGE, tag="v1")]}).encode(), {}, raw)
            refused(lambda: OCILayout(directory).tags(), 2)

    drive(request, broken(st.fixed_dictionaries({"imageLayoutVersion": st.just("1.0.0")})), check, examples=100)


REFERRERS = IMAGE_MANIFESTS.map(lambda doc: {**doc, "subject": IMAGE_DESCRIPTOR.to_dict(),
                                             "artifactType": "application/vnd.example.sbom"})


def test_layout_referrer_manifests_through_verify_and_discover(request: pytest.FixtureRequest) -> None:
    """A listed referrer of any shape: verify's walk reports it (schema-valid) or counts it, discover with
    checked listings (what delete --graph walks) refuses with exit 6, nothing else escapes."""
    sbom = parse_requirement("sbom")

    def check(raw: bytes) -> None:
        with tempfile.TemporaryDirectory() as directory:
            index = {"schemaVersion": 2, "manifests": [_entry(IMAGE, tag="v1"), _entry(raw)]}
            _layout(Path(directory), json.dumps(index).encode(), {"image": IMAGE, "referrer": raw})
            layout = OCILayout(directory)
            listed: list[Descriptor] = []
            refused(lambda: listed.extend(layout.referrers(IMAGE_DESCRIPTOR)), 6)
            for desc in listed:
                fetched = fetch_listed(layout, IMAGE_DESCRIPTOR.digest, desc)
                judge(IMAGE_DESCRIPTOR.digest, desc, fetched)
            walk = ChainMatch(layout, 1, trust_listing=False)
            if refused(lambda: walk.run([(IMAGE_DESCRIPTOR, sbom.chain, EVERY)]), 6) is None:
                for rejection in walk.rejected():
                    assert isinstance(rejection, Rejected)
                    REJECTED_ENTRY_VALIDATOR.validate(rejection.to_dict())
            refused(lambda: discover(layout, "oci:x", IMAGE_DESCRIPTOR, DiscoverOptions(check_listings=True,
                                                                                        concurrency=1)), 6)

    drive(request, broken(REFERRERS, raw_too=True), check, examples=100)


# -- registry answers ------------------------------------------------------------------------------------------

TOKENS = st.fixed_dictionaries({"token": st.text(min_size=1, max_size=8)},
                               optional={"access_token": st.text(max_size=8), "expires_in": st.integers(-5, 10 ** 12),
                                         "issued_at": st.just("2024-05-02T10:15:30Z"),
                                         "refresh_token": st.text(max_size=8)})


def test_token_answers(request: pytest.FixtureRequest) -> None:
    def check(raw: bytes) -> None:
        error = refused(lambda: parse_token_answer("reg.example", raw), 5)
        assert error is None or "reg.example" in error.message

    drive(request, broken(TOKENS), check)


ERROR_BODIES = st.fixed_dictionaries({"errors": st.lists(st.fixed_dictionaries(
    {"code": st.sampled_from(["NAME_UNKNOWN", "DENIED"]), "message": st.text(max_size=8)},
    optional={"detail": st.one_of(st.text(max_size=8), st.dictionaries(st.text(max_size=3), st.integers()))}),
    max_size=2)})


def test_registry_error_bodies(request: pytest.FixtureRequest) -> None:
    """Only a better message: whatever the shape, the status decides, so nothing may raise at all."""
    def check(raw: bytes) -> None:
        entries = _error_entries(raw)
        assert isinstance(entries, tuple) and len(entries) <= 8
        assert all(isinstance(code, str) and isinstance(message, str) for code, message in entries)

    drive(request, broken(ERROR_BODIES), check)


# -- local files the user passed --------------------------------------------------------------------------------

AUTH = base64.b64encode(b"user:secret").decode()
DOCKER_CONFIGS = st.fixed_dictionaries(
    {"auths": st.fixed_dictionaries({"reg.example": st.fixed_dictionaries({"auth": st.just(AUTH)}),
                                     "https://index.docker.io/v1/": st.just({"username": "u", "password": "p"})})},
    optional={"credHelpers": st.just({"other.example": "absent-helper"}), "credsStore": st.just(""),
              "HttpHeaders": st.just({"User-Agent": "x"})})


@pytest.mark.parametrize("where", ["DOCKER_CONFIG", "REGISTRY_AUTH_FILE"])
def test_docker_config_and_auth_json(request: pytest.FixtureRequest, where: str) -> None:
    def check(raw: bytes) -> None:
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            (root / "config.json").write_bytes(raw if where == "DOCKER_CONFIG" else b"{}")
            (root / "auth.json").write_bytes(raw)
            env = {"DOCKER_CONFIG": directory, "HOME": directory, "PATH": directory,
                   **({"REGISTRY_AUTH_FILE": str(root / "auth.json")} if where == "REGISTRY_AUTH_FILE" else {})}
            for host in ("reg.example", "other.example", "docker.io"):
                error = refused(functools.partial(credentials.resolve_credential, host, env=env), 2, 4)
                assert error is None or "secret" not in str(error)

    drive(request, broken(DOCKER_CONFIGS), check, examples=100)


HELPER_ANSWERS = st.fixed_dictionaries({"ServerURL": st.just("reg.example"), "Username": st.text(max_size=6),
                                        "Secret": st.text(min_size=1, max_size=6)})


def test_credential_helper_output(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    answer: list[str] = [""]

    def fake_helper(*_args: Any, **_kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["docker-credential-fake"], 0, stdout=answer[0], stderr="")

    monkeypatch.setattr(credentials, "_run_helper", fake_helper)

    def check(raw: bytes) -> None:
        answer[0] = raw.decode("utf-8", "replace")
        refused(lambda: credentials._helper_get("fake", "reg.example", {}, Path("config.json")), 4)

    drive(request, broken(HELPER_ANSWERS), check)


POLICIES = st.fixed_dictionaries({"version": st.just("1.0"), "trustPolicies": st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["a", "b"]), "registryScopes": st.sampled_from([["*"], ["reg.example/app"]]),
    "signatureVerification": st.fixed_dictionaries({"level": st.sampled_from(["strict", "audit", "permissive"])},
                                                   optional={"override": st.just({"expiry": "log"}),
                                                             "verifyTimestamp": st.just("always")}),
    "trustStores": st.just(["ca:roots"]),
    "trustedIdentities": st.sampled_from([["*"], ["x509.subject: C=US, ST=WA, O=ci-oras, CN=signer"]])}),
    min_size=1, max_size=2, unique_by=lambda statement: statement["name"])})


def test_trust_policies(request: pytest.FixtureRequest) -> None:
    drive(request, broken(POLICIES), lambda raw: refused(lambda: parse_trust_policy(raw, "trustpolicy.json"), 2))


CHAIN = make_chain()
JWS = json.loads(notary_jws(CHAIN))
COSE = notary_cose(CHAIN)
PEM = CHAIN.leaf.public_bytes(__import__("cryptography.hazmat.primitives.serialization",
                                         fromlist=["Encoding"]).Encoding.PEM)


@st.composite
def mutated(draw: st.DrawFn, base: bytes) -> bytes:
    """``base`` (a binary or PEM document) cut short, with one byte changed or inserted, or other bytes."""
    position = draw(st.integers(0, len(base) - 1))
    how = draw(st.sampled_from(["cut", "flip", "insert", "bytes", "keep"]))
    if how == "bytes":
        return draw(BAD_BYTES)
    if how == "cut":
        return base[:position]
    if how == "flip":
        return base[:position] + bytes([base[position] ^ draw(st.integers(1, 255))]) + base[position + 1:]
    if how == "insert":
        return base[:position] + draw(st.binary(min_size=1, max_size=4)) + base[position:]
    return base


# A changed byte can make the serial number negative: cryptography loads it with a deprecation warning.
@pytest.mark.filterwarnings("ignore:Parsed a serial number")
def test_trust_store_certificates(request: pytest.FixtureRequest) -> None:
    drive(request, mutated(PEM), lambda raw: refused(lambda: load_certificates(raw, "roots/ca.pem"), 2))


SBOMS = st.one_of(
    st.fixed_dictionaries({"bomFormat": st.just("CycloneDX"), "specVersion": st.sampled_from(["1.4", "1.5", "1.6"])},
                          optional={"metadata": st.fixed_dictionaries(
                              {"timestamp": st.just("2024-05-02T10:15:30Z")},
                              optional={"tools": st.one_of(
                                  st.just([{"vendor": "x", "name": "syft", "version": "1"}]),
                                  st.just({"components": [{"name": "syft", "version": "1"}]}))}),
                              "components": st.just([])}),
    st.fixed_dictionaries({"spdxVersion": st.sampled_from(["SPDX-2.3", "SPDX-2.2"]), "SPDXID": st.just("SPDXRef-DOCUMENT")},
                          optional={"creationInfo": st.fixed_dictionaries(
                              {"created": st.just("2024-05-02T10:15:30Z"),
                               "creators": st.just(["Tool: syft-1.0", "Organization: x"])})}),
)


def _in_file(raw: bytes, name: str, check: Callable[[Path], Any], *codes: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / name
        path.write_bytes(raw)
        refused(lambda: check(path), *codes)


TEXT_SBOMS = [
    ("<?xml version='1.0' encoding='{token}'?><bom xmlns='http://cyclonedx.org/schema/bom/1.5'><metadata>"
     "<timestamp>2024-05-02T10:15:30Z</timestamp><tools><components><component><name>{token}</name>"
     "</component></components></tools></metadata></bom>"),
    ("<bom xmlns='http://cyclonedx.org/schema/bom/1.{token}'><metadata><tools><tool><name>syft</name>"
     "<version>{token}</version></tool></tools></metadata></bom>"),
    "SPDXVersion: SPDX-2.{token}\nDataLicense: CC0-1.0\nCreator: Tool: {token}\nCreated: {token}\n",
]


@st.composite
def text_sboms(draw: st.DrawFn) -> bytes:
    """CycloneDX XML and SPDX tag-value with one token of anything (an encoding, markup, bytes) inserted."""
    token = draw(st.one_of(st.text(max_size=12), st.sampled_from(
        ["utf-8", "bogus", "utf-16", "rot13", "<", "&x;", "]]>", "<!DOCTYPE x>", "\x00", "5", "<a>" * 300])))
    raw = draw(st.sampled_from(TEXT_SBOMS)).format(token=token).encode("utf-8", "surrogatepass")
    cut = draw(st.one_of(st.none(), st.integers(0, len(raw))))
    return raw if cut is None else raw[:cut] + draw(st.binary(max_size=3))


def test_sbom_sniffer(request: pytest.FixtureRequest) -> None:
    drive(request, st.one_of(broken(SBOMS), text_sboms()), lambda raw: _in_file(raw, "sbom", detect_sbom, 2))


SIGNATURES = st.one_of(
    st.just(JWS),
    st.fixed_dictionaries({"mediaType": st.just("application/vnd.dev.sigstore.bundle.v0.3+json"),
                           "verificationMaterial": st.just({"certificate": {"rawBytes": "MAo="}}),
                           "messageSignature": st.just({"messageDigest": {"algorithm": "SHA2_256", "digest": "AA=="},
                                                        "signature": "AA=="})}),
)


def test_signature_sniffer(request: pytest.FixtureRequest) -> None:
    """JWS and Sigstore bundles with one field broken, COSE (CBOR) with one byte broken."""
    subject = Descriptor(mediatypes.OCI_MANIFEST, SUBJECT, 3)

    def check(raw: bytes) -> None:
        _in_file(raw, "sig", detect_signature, 2)
        for media_type in ("application/jose+json", "application/cose"):
            _in_file(raw, "sig", functools.partial(refuse_notary_for_other_subject, media_type=media_type,
                                                   subject=subject), 2)

    drive(request, st.one_of(broken(SIGNATURES), mutated(COSE)), check)


def test_notary_envelopes(request: pytest.FixtureRequest) -> None:
    """parse_envelope's documented refusal is ``EnvelopeError``, which policy evaluation turns into a failed
    outcome (never a crash); nothing else may escape."""
    def check(raw: bytes) -> None:
        for media_type in ("application/jose+json", "application/cose"):
            try:
                parse_envelope(media_type, raw)
            except EnvelopeError:
                pass

    drive(request, st.one_of(broken(st.just(JWS)), mutated(COSE)), check)


REQUIREMENT_LINES = st.lists(st.sampled_from([
    "sbom", "signature", "sbom>signature", "# a comment", "", "sbom, signature", "type=application/spdx+json",
    "application/vnd.example.report", "signature  # trailing comment"]), min_size=1, max_size=4)


def test_requirement_files(request: pytest.FixtureRequest) -> None:
    @st.composite
    def files(draw: st.DrawFn) -> str:
        lines = draw(REQUIREMENT_LINES)
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), draw(st.one_of(
                st.text(max_size=20), st.sampled_from([">", "sbom>>", "a=b=c", "type=", "\x00", "sbom>" * 200]))))
        return "\n".join(lines)

    drive(request, files(), lambda text: refused(lambda: parse_requirement_file(text, "requirements.txt"), 2))


ANNOTATION_FILES = st.fixed_dictionaries({"$manifest": ANNOTATIONS},
                                         optional={"$config": ANNOTATIONS, "report.txt": ANNOTATIONS})


def test_annotation_files(request: pytest.FixtureRequest) -> None:
    drive(request, broken(ANNOTATION_FILES),
          lambda raw: _in_file(raw, "annotations.json", lambda path: load_annotation_file(str(path)), 2))


def test_malformed_error_keeps_the_field_for_verify_to_report() -> None:
    """The problem alone (no reference), so a rejection names the field once."""
    with pytest.raises(MalformedError) as info:
        parse_manifest(b'{"layers": 5}', source="reg.example/app")
    assert info.value.problem == '"layers" must be a list, not a number'
