"""Request-count regression guard: the core steps replayed from cassettes of a real registry conversation.

The cassettes under ``cassettes/test_request_counts/`` were recorded against a real ``docker-registry``
(``pytest tests/integration/test_request_counts.py --record-mode=rewrite`` records them again). A normal run
replays them with recording off, so a step that sends one request more than it used to hits a request the
cassette does not have and fails; every recorded request must also be used, so an accidental extra request
in the recording is noticed too. The expected sequences below are the protocol minimum, written down. The
recorder hooks httpx's own ``HTTPTransport``, so the run is handed one (``Runtime(transport=...)``) instead of
ci-oras's connection pools: what is counted is the requests the steps send, the same through either.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness.registry import RegistryFactory

from ci_oras.files import FileSpec
from ci_oras.oci.reference import RegistryReference, parse_registry_reference
from ci_oras.registry.transport import TransportOptions
from ci_oras.runtime import LoginFlags, Runtime
from ci_oras.steps.delete import delete
from ci_oras.steps.manifest import fetch_manifest
from ci_oras.steps.pull import pull
from ci_oras.steps.push import PushOptions, push
from ci_oras.steps.tags import list_tags

#: pytest-recording replays through httpx's stock transport, handed in at the seam a library user has.
RECORDED = httpx.HTTPTransport

REPO = "cassette/walkthrough"
REPLAY_HOST = "127.0.0.1:5000"  # any loopback host: replay matches method, path and query only

# push of one file and one directory into an empty repository: per blob a HEAD (absent) and the two-request
# upload (POST opens the session, PUT sends the bytes), the empty config likewise, then one PUT per tag.
PUSH = [("HEAD", "blob"), ("POST", "upload"), ("PUT", "upload"),
        ("HEAD", "blob"), ("POST", "upload"), ("PUT", "upload"),
        ("HEAD", "blob"), ("POST", "upload"), ("PUT", "upload"),
        ("PUT", "manifest"), ("PUT", "manifest")]
FETCH = [("GET", "manifest")]
PULL = [("GET", "manifest"), ("GET", "blob"), ("GET", "blob")]
TAGS = [("GET", "tags")]
# delete (what ``ci-oras delete`` runs, without --graph): the manifest itself (is it a referrer whose subject's
# index needs updating?), its own referrers for the orphan warning (the API probe, 404 on this registry, then
# the fallback index, absent), and the DELETE by digest.
DELETE = [("GET", "manifest"), ("GET", "referrers"), ("GET", "manifest"), ("DELETE", "manifest")]


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    return {"match_on": ["method", "path", "query"], "decode_compressed_response": False}


def _kind(path: str) -> str:
    for pattern, kind in ((r"/blobs/uploads/", "upload"), (r"/blobs/", "blob"), (r"/manifests/", "manifest"),
                          (r"/tags/list", "tags"), (r"/referrers/", "referrers")):
        if re.search(pattern, path):
            return kind
    return path


def _sequence(cassette: Any) -> list[tuple[str, str]]:
    return [(request.method, _kind(request.path)) for request in cassette.requests]


def _host(request: pytest.FixtureRequest) -> str:
    if request.config.getoption("--record-mode") in (None, "none"):
        return REPLAY_HOST
    factory: RegistryFactory = request.getfixturevalue("registry_factory")
    return factory("plain").host  # a fresh registry, so the recording starts from an empty repository


@pytest.mark.vcr
def test_walkthrough_request_sequence(vcr: Any, request: pytest.FixtureRequest, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    (src / "details").mkdir(parents=True)
    (src / "readme.md").write_text("# Example\n")
    (src / "details" / "one.txt").write_text("one\n")
    monkeypatch.chdir(src)
    reference = parse_registry_reference(f"{_host(request)}/{REPO}:v1,stable")
    assert isinstance(reference, RegistryReference)
    run = Runtime(TransportOptions(retries=0), LoginFlags(), {"HOME": str(tmp_path)}, transport=RECORDED())
    try:
        target = run.open(reference, create=True)
        files = [FileSpec(Path("readme.md"), "readme.md", "text/markdown"), FileSpec(Path("details"), "details")]
        options = PushOptions(artifact_type="application/vnd.acme.readme.v1", created="2024-01-01T00:00:00Z",
                              mtime=1704067200)
        pushed = push(target, reference.repository_name, reference.tags, files, options)
        fetched = fetch_manifest(target, "v1", "v1")
        assert fetched.manifest.digest == pushed.digest
        pulled = pull(target, pushed.digest, "walkthrough", tmp_path / "out")
        assert (tmp_path / "out" / "details" / "one.txt").read_text() == "one\n"
        assert [f.title for f in pulled.files] == ["readme.md", "details"]
        assert list_tags(target, reference.repository_name).tags == ("stable", "v1")
        deleted = delete(target, reference.repository_name, "v1", "v1")
        assert deleted.digest == pushed.digest and deleted.orphaned == ()
    finally:
        run.close()
    assert _sequence(vcr) == PUSH + FETCH + PULL + TAGS + DELETE
    if request.config.getoption("--record-mode") in (None, "none"):
        assert vcr.all_played, "a recorded request was not replayed: the step now sends fewer; re-record"


# attach on a registry without the referrers API (tag schema), subject given by tag, one new file:
# resolve the subject; upload the layer; the empty config already exists; the manifest by digest; then the
# subject's fallback index: read (absent), write, a look two measured cycles later (where another writer's
# stale write would show) and one read a measured window later that finds it unchanged (the watch that keeps
# parallel CI jobs from losing each other's entries, see registry/referrers.py).
ATTACH = [("HEAD", "manifest"),
          ("HEAD", "blob"), ("POST", "upload"), ("PUT", "upload"),
          ("HEAD", "blob"),
          ("PUT", "manifest"),
          ("GET", "manifest"), ("PUT", "manifest"), ("GET", "manifest"), ("GET", "manifest")]


class _Distant(httpx.HTTPTransport):
    """Every request 20 ms away, as a registry off this machine. Replayed answers come back in microseconds,
    so the watch's windows (multiples of the cycles it measures) would be shorter than a loaded machine's
    scheduling delays: a look meant for two cycles after the write could land past the window and the look
    and the confirming read merge into one, a request fewer than recorded. 20 ms makes the window 200 ms."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        time.sleep(0.02)
        return super().handle_request(request)


@pytest.mark.vcr
def test_attach_request_sequence_on_tag_schema(vcr: Any, request: pytest.FixtureRequest, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_oras.registry.referrers import ReferrersMode
    from ci_oras.steps.attach import attach
    from ci_oras.steps.common import AttachOptions, resolve_subject
    from ci_oras.store.registry import RegistryRepository

    (tmp_path / "subject.txt").write_text("the subject\n")
    (tmp_path / "signature.json").write_text('{"signature": "example"}\n')
    monkeypatch.chdir(tmp_path)
    reference = parse_registry_reference(f"{_host(request)}/cassette/attach:v1")
    run = Runtime(TransportOptions(retries=0), LoginFlags(), {"HOME": str(tmp_path)}, transport=_Distant())
    try:
        target = RegistryRepository(reference, run.session.client_for(reference), writable=True,
                                    referrers_mode=ReferrersMode.auto)
        push(target, reference.repository_name, reference.tags,
             [FileSpec(Path("subject.txt"), "subject.txt")], PushOptions(created="2024-01-01T00:00:00Z"))
        subject = resolve_subject(target, "v1", "v1")
        result = attach(target, reference.repository_name, subject, [FileSpec(Path("signature.json"),
                        "signature.json")], AttachOptions(artifact_type="signature/example",
                                                          created="2024-01-01T00:00:00Z"))
        assert [d.digest for d in target.referrers(subject)] == [result.digest]
    finally:
        run.close()
    sequence = _sequence(vcr)
    before = sequence.index(("PUT", "manifest")) + 1  # the subject's push ends with its manifest
    assert sequence[before:before + len(ATTACH)] == ATTACH
    # Listing: the API probe (404: no API, remembered) and the fallback index.
    assert sequence[before + len(ATTACH):] == [("GET", "referrers"), ("GET", "manifest")]
    if request.config.getoption("--record-mode") in (None, "none"):
        assert vcr.all_played
