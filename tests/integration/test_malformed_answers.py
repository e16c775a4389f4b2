"""A lying registry and a corrupted OCI layout: malformed manifests and listings are refused, never crashed on.

The registry is the spec-faithful fake (it has the referrers API) behind the fault-injecting proxy, which
answers chosen requests with documents of the wrong shape — a referrers listing of ``{"manifests": 5}``, a
manifest whose ``layers`` is a number — as a broken or hostile registry would; the bytes of a malformed
manifest are served under their own digest, so only the shape is wrong. The layout is written by the CLI and
then edited on disk. Every command that reads such data gets it through the real CLI, and ends with its
documented exit code (never 0 for verify or discover on a malformed listing, never a traceback) and a
one-line message naming the subject or manifest and the field; verify reports a malformed referrer as
rejected, in the schema of its document.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness.cli import CliResult
from harness.fake_registry import FakeRegistry
from harness.oci import (
    OCI_EMPTY_DIGEST,
    OCI_EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    fallback_tag,
    push_image,
    push_referrer,
    subject_of,
)
from harness.proxy import RegistryProxy, matching

from ci_oras.errors import EXIT_INTEGRITY, EXIT_REGISTRY, EXIT_USAGE, EXIT_VERIFICATION_FAILED
from ci_oras.schemas import load_schema

SIG = "application/vnd.example.sig+json"
FakeFactory = Callable[..., FakeRegistry]
EMPTY = {"mediaType": OCI_EMPTY_JSON, "digest": OCI_EMPTY_DIGEST, "size": 2}


def compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def error_line(result: CliResult, code: int, *needles: str) -> str:
    """The one error line of a refused command: its exit code, no traceback, and every needle in it."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def rejected(result: CliResult, reason: str = "malformed") -> list[dict[str, Any]]:
    """verify's document: not passed, valid against its schema, with the malformed referrers rejected."""
    assert result.returncode == EXIT_VERIFICATION_FAILED, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, load_schema("verify"))
    found = [entry for entry in document["rejected"] if entry["reason"] == reason]
    assert found, document["rejected"]
    return found


# -- a lying registry -------------------------------------------------------------------------------------------


@dataclass
class Lying:
    fake: FakeRegistry
    proxy: RegistryProxy
    subject: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.proxy.host}/app:v1"

    def listing(self, body: bytes, *, api: bool = True) -> None:
        """The subject's referrers, as the API (or the fallback tag) answers them: ``body``, of an index type."""
        path = (rf"/v2/app/referrers/{self.subject['digest']}$" if api
                else rf"/v2/app/manifests/{fallback_tag(self.subject['digest'])}$")
        self.proxy.inject(matching("GET", path), 200, times=1000, headers={"Content-Type": OCI_INDEX}, body=body)

    def manifest(self, raw: bytes, *references: str) -> str:
        """Serve ``raw`` under its own digest (and ``references``), as a manifest; returns the digest."""
        digest = digest_of(raw)
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest}
        for reference in (digest, *references):
            path = rf"/v2/app/manifests/{reference}$"
            self.proxy.inject(matching("GET", path), 200, times=1000, headers=headers, body=raw)
            self.proxy.inject(matching("HEAD", path), 200, times=1000,
                              headers={**headers, "Content-Length": str(len(raw))})
        return digest


@pytest.fixture
def lying(fake_registry: FakeFactory, client: httpx.Client) -> Iterator[Lying]:
    fake = fake_registry()
    subject = subject_of(push_image(client, fake.url, "app", tag="v1", layer=b"image\n"))
    push_referrer(client, fake.url, "app", subject, SIG, b"a true signature\n")
    with RegistryProxy(fake) as proxy:
        yield Lying(fake, proxy, subject)


@pytest.fixture
def lying_tag_schema(fake_registry: FakeFactory, client: httpx.Client) -> Iterator[Lying]:
    fake = fake_registry(referrers_api=False)
    subject = subject_of(push_image(client, fake.url, "app", tag="v1", layer=b"image\n"))
    with RegistryProxy(fake) as proxy:
        yield Lying(fake, proxy, subject)


def entry(digest: Any = None, **fields: Any) -> dict[str, Any]:
    return {"mediaType": OCI_MANIFEST, "digest": digest or "sha256:" + "a" * 64, "size": 3, "artifactType": SIG,
            **fields}


def index(manifests: Any) -> bytes:
    return compact({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


#: Listings that are not listings: (body, what the message must name)
WHOLE_LISTINGS = {
    "manifests-a-number": (index(5), '"manifests" must be a list, not a number'),
    "top-level-list": (compact([entry()]), "must be a JSON object, not a list"),
    "not-json": (b"{\"manifests\": [", "invalid JSON"),
    "deep": (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
}
#: Listings with malformed entries: (body, what the message must name)
BAD_ENTRIES = {
    "string-entries": (index(["x"]), '"manifests[0]" must be a JSON object, not a string'),
    "digest-a-number": (index([entry(5)]), '"manifests[0].digest" must be a string, not a number'),
    "annotations-a-list": (index([entry(annotations=["x"])]), '"manifests[0].annotations" must be an object'),
}


@pytest.mark.parametrize("case", [*WHOLE_LISTINGS, *BAD_ENTRIES])
def test_discover_refuses_a_malformed_listing(lying: Lying, cli: Callable[..., CliResult], case: str) -> None:
    body, field = {**WHOLE_LISTINGS, **BAD_ENTRIES}[case]
    lying.listing(body)
    output = ["-O", "json"] if case == "manifests-a-number" else []  # JSON output: no document, one error line
    error_line(cli("discover", lying.ref, *output), EXIT_INTEGRITY, lying.subject["digest"], field)


@pytest.mark.parametrize("case", list(WHOLE_LISTINGS))
def test_verify_stops_on_a_listing_that_is_no_listing(lying: Lying, cli: Callable[..., CliResult], case: str) -> None:
    body, field = WHOLE_LISTINGS[case]
    lying.listing(body)
    error_line(cli("verify", lying.ref, "-r", SIG), EXIT_INTEGRITY, lying.subject["digest"], field)


@pytest.mark.parametrize("case", list(BAD_ENTRIES))
def test_verify_rejects_malformed_listing_entries(lying: Lying, cli: Callable[..., CliResult], case: str) -> None:
    body, field = BAD_ENTRIES[case]
    lying.listing(body)
    result = cli("verify", lying.ref, "-r", SIG, "-O", "json")
    [entry] = rejected(result)
    assert entry["subject"] == lying.subject["digest"] and field in entry["message"], entry
    assert "not counted" in result.stderr and "Traceback" not in result.stderr


def test_verify_counts_the_well_formed_entries_beside_a_malformed_one(
        lying: Lying, cli: Callable[..., CliResult]) -> None:
    """The true signature is still found; the malformed entry is reported, and is not what passed."""
    true = lying.fake.referrers("app", lying.subject["digest"])[0]
    lying.listing(index(["x", true]))
    result = cli("verify", lying.ref, "-r", SIG, "-O", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [e["reason"] for e in document["rejected"]] == ["malformed"]
    assert document["requirements"][0]["found"] == [true["digest"]], document


@pytest.mark.parametrize("case", ["manifests-a-number", "string-entries"])
def test_promote_delete_and_attach_refuse_a_malformed_listing(
        lying: Lying, cli: Callable[..., CliResult], tmp_path: Path, case: str) -> None:
    body, field = {**WHOLE_LISTINGS, **BAD_ENTRIES}[case]
    lying.listing(body)
    error_line(cli("promote", lying.ref, f"{lying.proxy.host}/dest:v1"), EXIT_INTEGRITY, lying.subject["digest"],
               field)
    assert lying.fake.manifest("dest", "v1") is None  # the tag comes last, and never came
    for graph in (["--graph"], []):
        error_line(cli("delete", lying.ref, *graph), EXIT_INTEGRITY, lying.subject["digest"], field)
        assert lying.fake.manifest("app", "v1") is not None
    (tmp_path / "report.txt").write_text("report\n")
    error_line(cli("attach", lying.ref, "report.txt", "--artifact-type", SIG), EXIT_INTEGRITY,
               lying.subject["digest"], field)


def test_tag_schema_listing_with_malformed_entries(lying_tag_schema: Lying, cli: Callable[..., CliResult],
                                                   tmp_path: Path) -> None:
    lying = lying_tag_schema
    lying.listing(index([5]), api=False)
    field = '"manifests[0]" must be a JSON object, not a number'
    error_line(cli("discover", lying.ref), EXIT_INTEGRITY, lying.subject["digest"], field,
               fallback_tag(lying.subject["digest"]))
    [entry] = rejected(cli("verify", lying.ref, "-r", SIG, "-O", "json"))
    assert field in entry["message"] and entry["digest"] == ""
    (tmp_path / "report.txt").write_text("report\n")
    error_line(cli("attach", lying.ref, "report.txt", "--artifact-type", SIG), EXIT_INTEGRITY, field)


def malformed_referrer(subject: dict[str, Any], **broken: Any) -> bytes:
    return compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SIG, "config": EMPTY,
                    "layers": [], "subject": subject, **broken})


@pytest.mark.parametrize(("broken", "field"), [({"layers": 5}, '"layers" must be a list, not a number'),
                                               ({"annotations": ["x"]}, '"annotations" must be an object')])
def test_a_listed_referrer_whose_manifest_is_malformed(lying: Lying, cli: Callable[..., CliResult],
                                                       broken: dict[str, Any], field: str) -> None:
    raw = malformed_referrer(lying.subject, **broken)
    digest = lying.manifest(raw)
    lying.listing(index([entry(digest, size=len(raw))]))
    [reported] = rejected(cli("verify", lying.ref, "-r", SIG, "-O", "json"))
    assert reported["digest"] == digest and field in reported["message"], reported
    error_line(cli("promote", lying.ref, f"{lying.proxy.host}/dest:v1"), EXIT_INTEGRITY, digest, field)
    assert lying.fake.manifest("dest", "v1") is None
    error_line(cli("delete", lying.ref, "--graph"), EXIT_INTEGRITY, digest, field)
    assert lying.fake.manifest("app", "v1") is not None


@pytest.mark.parametrize(("broken", "field"), [({"layers": 5}, '"layers" must be a list, not a number'),
                                               ({"config": "x"}, '"config" must be a JSON object, not a string')])
def test_a_malformed_manifest_at_the_reference(lying: Lying, cli: Callable[..., CliResult], tmp_path: Path,
                                               broken: dict[str, Any], field: str) -> None:
    raw = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": EMPTY, "layers": [], **broken})
    digest = lying.manifest(raw, "v1")
    expected = (digest, "app", field)
    error_line(cli("manifest", "fetch", lying.ref), EXIT_INTEGRITY, *expected)
    error_line(cli("pull", lying.ref, "-o", str(tmp_path / "out")), EXIT_INTEGRITY, *expected)
    error_line(cli("promote", lying.ref, f"{lying.proxy.host}/dest:v1"), EXIT_INTEGRITY, *expected)
    error_line(cli("verify", lying.ref, "-r", SIG, "--platform", "linux/amd64"), EXIT_INTEGRITY, *expected)
    error_line(cli("delete", lying.ref), EXIT_INTEGRITY, *expected)
    assert lying.fake.manifest("app", "v1") is not None


@pytest.mark.parametrize(("body", "field"), [(b'{"token": 5}', '"token" must be a string, not a number'),
                                             (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
                                             (b"<html>sign in</html>", "invalid JSON")])
def test_a_malformed_token_answer(fake_registry: FakeFactory, cli: Callable[..., CliResult], body: bytes,
                                  field: str) -> None:
    fake = fake_registry()
    with RegistryProxy(fake) as proxy, RegistryProxy(fake) as realm:
        realm.inject(matching("GET", r"^/token"), 200, times=10, headers={"Content-Type": "application/json"},
                     body=body)
        proxy.inject(matching(path=r"^/v2/"), 401, times=10,
                     headers={"WWW-Authenticate": f'Bearer realm="{realm.url}/token",service="registry"'})
        error_line(cli("tags", f"{proxy.host}/app"), EXIT_REGISTRY, f"token service for {proxy.host}", field)


# -- an OCI layout on disk ----------------------------------------------------------------------------------------


@dataclass
class Layout:
    root: Path
    subject: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"oci:{self.root}:v1"

    def index(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((self.root / "index.json").read_text())
        return document

    def add(self, raw: bytes, *, tag: str | None = None, media_type: str = OCI_MANIFEST) -> str:
        """Store ``raw`` as a blob and list it in index.json (tagged, or untagged as a referrer is)."""
        digest = digest_of(raw)
        (self.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(raw)
        document = self.index()
        listed = {"mediaType": media_type, "digest": digest, "size": len(raw)}
        if tag:
            listed["annotations"] = {"org.opencontainers.image.ref.name": tag}
            document["manifests"] = [e for e in document["manifests"]
                                     if e.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        document["manifests"].append(listed)
        (self.root / "index.json").write_text(json.dumps(document))
        return digest


@pytest.fixture
def layout(tmp_path: Path, cli: Callable[..., CliResult]) -> Layout:
    (tmp_path / "app.txt").write_text("app\n")
    (tmp_path / "sig.txt").write_text("sig\n")
    root = tmp_path / "layout"
    assert cli("push", f"oci:{root}:v1", "app.txt").returncode == 0
    assert cli("attach", f"oci:{root}:v1", "sig.txt", "--artifact-type", SIG).returncode == 0
    graph = json.loads(cli("discover", f"oci:{root}:v1", "-O", "json").stdout)
    return Layout(root, {key: graph[key] for key in ("mediaType", "digest", "size")})


@pytest.mark.parametrize(("file", "content", "field"), [
    ("index.json", b'{"manifests": 5}', '"manifests" must be a list, not a number'),
    ("index.json", b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
    ("oci-layout", b'{"imageLayoutVersion": 1}', '"imageLayoutVersion" must be a string'),
])
def test_a_corrupt_layout_file_is_a_usage_error(layout: Layout, cli: Callable[..., CliResult], tmp_path: Path,
                                                file: str, content: bytes, field: str) -> None:
    (layout.root / file).write_bytes(content)
    for command in (["discover", layout.ref], ["verify", layout.ref, "-r", SIG], ["tags", f"oci:{layout.root}"],
                    ["pull", layout.ref, "-o", str(tmp_path / "out")],
                    ["promote", layout.ref, f"oci:{tmp_path / 'copy'}:v1"]):
        error_line(cli(*command), EXIT_USAGE, str(layout.root / file), field)


def test_a_malformed_referrer_in_a_layout(layout: Layout, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    digest = layout.add(malformed_referrer(layout.subject, layers=5))
    field = '"layers" must be a list, not a number'
    reported = [e for e in rejected(cli("verify", layout.ref, "-r", SIG, "-r", f"{SIG}*2", "-O", "json"))
                if e["digest"] == digest]
    assert reported and field in reported[0]["message"], reported
    error_line(cli("promote", layout.ref, f"oci:{tmp_path / 'copy'}:v1"), EXIT_INTEGRITY, digest, field)
    copied = tmp_path / "copy" / "index.json"
    assert not copied.exists() or '"org.opencontainers.image.ref.name":"v1"' not in copied.read_text()  # no tag
    error_line(cli("delete", layout.ref, "--graph"), EXIT_INTEGRITY, digest, field)
    assert cli("manifest", "fetch", layout.ref).returncode == 0  # nothing was deleted


def test_a_malformed_fallback_index_in_a_layout(layout: Layout, cli: Callable[..., CliResult]) -> None:
    layout.add(index(["x"]), tag=fallback_tag(layout.subject["digest"]), media_type=OCI_INDEX)
    field = '"manifests[0]" must be a JSON object, not a string'
    error_line(cli("discover", layout.ref), EXIT_INTEGRITY, layout.subject["digest"], field)
    [entry] = rejected(cli("verify", layout.ref, "-r", f"{SIG}*2", "-O", "json"))
    assert field in entry["message"]


def test_a_malformed_manifest_at_a_layout_tag(layout: Layout, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    raw = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": EMPTY, "layers": {"a": 1}})
    digest = layout.add(raw, tag="v1")
    field = '"layers" must be a list, not an object'
    for command in (["manifest", "fetch", layout.ref], ["pull", layout.ref, "-o", str(tmp_path / "out")],
                    ["promote", layout.ref, f"oci:{tmp_path / 'copy'}:v1"], ["delete", layout.ref]):
        error_line(cli(*command), EXIT_INTEGRITY, digest, f"oci:{layout.root}", field)


@pytest.mark.parametrize(("body", "field"), [(b'{"name": "app", "tags": 5}', '"tags" must be a list, not a number'),
                                             (b'{"tags": [1]}', '"tags[0]" must be a string, not a number'),
                                             (b"[]", "must be a JSON object, not a list")])
def test_a_malformed_tag_list(lying: Lying, cli: Callable[..., CliResult], body: bytes, field: str) -> None:
    lying.proxy.inject(matching("GET", r"/v2/app/tags/list"), 200, times=10,
                       headers={"Content-Type": "application/json"}, body=body)
    error_line(cli("tags", f"{lying.proxy.host}/app"), EXIT_REGISTRY, "invalid tag list", field)


def test_a_head_answer_whose_digest_is_no_digest_is_not_trusted(lying: Lying, cli: Callable[..., CliResult]) -> None:
    """The digest header is a claim too: one that is not a digest sends the client to the bytes."""
    lying.proxy.inject(matching("HEAD", r"/v2/app/manifests/v1$"), 200, times=10, headers={
        "Content-Type": OCI_MANIFEST, "Docker-Content-Digest": "not-a-digest", "Content-Length": "10"})
    result = cli("discover", lying.ref, "-O", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["digest"] == lying.subject["digest"]
