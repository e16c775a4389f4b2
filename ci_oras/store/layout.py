"""An OCI image layout directory (image-spec ``image-layout.md``) as a ci-oras ``Target``.

The layout is the embedded default store: no registry is needed to build, attach, verify and promote. Several
CI jobs (or ``xargs -P``) may write one layout at once, so every change to ``index.json`` is a locked
read-modify-write followed by an atomic ``os.replace``, and blobs are written to a temporary file and renamed
into place only once their digest checks out. Readers never lock: a rename is atomic, so they always see a
whole ``index.json`` and whole blobs.

``index.json`` follows ORAS's conventions so ``oras`` and ci-oras can share a layout: one entry per tag with the
``org.opencontainers.image.ref.name`` annotation, and untagged manifests (referrers such as signatures and
SBOMs) kept as exactly one entry without it, so they stay discoverable. Entries and fields other tools wrote
are preserved as they are.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from ci_oras.errors import MalformedError, NotFoundError, UsageError
from ci_oras.oci import gojson, mediatypes
from ci_oras.oci.descriptor import ANNOTATION_REF_NAME, Descriptor
from ci_oras.oci.digest import Digest, is_digest, verify_bytes
from ci_oras.oci.manifest import MalformedEntry, Manifest, declared_subject, parse_manifest
from ci_oras.oci.referrers import complete_listing, fallback_tag, filter_by_type
from ci_oras.oci.shape import Fields, load_json
from ci_oras.store.protocols import MAX_MANIFEST_BYTES, ByteStream
from ci_oras.store.digest_check import verified

if sys.platform == "win32":  # pragma: no cover - exercised only on Windows runners
    import msvcrt
else:
    import fcntl

LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
LOCK_FILE = "index.json.lock"
BLOBS_DIR = "blobs"
#: Read and hash blobs in pieces this big: large layers never sit in memory whole.
CHUNK_SIZE = 1024 * 1024
LAYOUT_VERSION = "1.0.0"
#: Files in a layout are meant to be shared (other users, containers), as ``oras`` and ``skopeo`` write them.
_FILE_MODE = 0o644


class OCILayout:
    """Blobs under ``blobs/<alg>/<hex>``, names in ``index.json``; see the module docstring for the rules."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self._display = str(path)
        self.root = Path(path)
        self._subjects: dict[str, list[Descriptor]] | None = None
        if create:
            self._create()
        elif not (self.root / LAYOUT_FILE).is_file():
            raise NotFoundError(
                f"{self.root} is not an OCI image layout (no {LAYOUT_FILE} file)",
                hint="check the path, or write to it first (push/promote create the layout)",
            )
        self._check_layout_file()

    def _check_layout_file(self) -> None:
        """``oci-layout`` must be the JSON object image-layout.md describes; anything else is not a layout
        we can trust to follow the rest of the spec (exit 2, naming the file and the field)."""
        path = self.root / LAYOUT_FILE

        def corrupt(problem: str) -> UsageError:
            return UsageError(f"corrupt {path}: {problem}", hint="restore oci-layout, or re-create the layout")

        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise corrupt(exc.strerror or str(exc)) from exc
        Fields.of(load_json(raw, corrupt), corrupt).string("imageLayoutVersion")

    @property
    def name(self) -> str:
        return f"oci:{self._display}"

    def close(self) -> None:
        """Nothing to release: every lock is held only for the duration of one call."""

    # -- blobs -------------------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        """Where image-layout.md puts the blob with this digest (validated, so no path tricks)."""
        parsed = Digest.parse(digest)
        return self.root / BLOBS_DIR / parsed.algorithm / parsed.hex

    def exists(self, desc: Descriptor) -> bool:
        """A blob counts only with the right size: a truncated leftover must be written again."""
        try:
            return self.blob_path(desc.digest).stat().st_size == desc.size
        except FileNotFoundError:
            return False

    def push_blob(self, desc: Descriptor, chunks: Iterable[bytes]) -> None:
        """Stream ``chunks`` to a temporary file, verify digest and size, then rename it into place."""
        target = self.blob_path(desc.digest)
        _ensure_dir(target.parent)

        def write(handle: Any) -> None:
            for chunk in verified(chunks, desc):
                handle.write(chunk)

        _atomic_write(target, write, keep_existing=True)

    def fetch(self, desc: Descriptor) -> ByteStream:
        """Stream a blob in 1 MiB chunks; NotFoundError now, IntegrityError at the end when it is corrupt."""
        path = self.blob_path(desc.digest)
        if not path.is_file():
            raise NotFoundError(f"blob {desc.digest} not found in {self.name}")
        return self._stream(path, desc)

    def _stream(self, path: Path, desc: Descriptor) -> ByteStream:
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:  # deleted between fetch() and the first read
            raise NotFoundError(f"blob {desc.digest} not found in {self.name}") from exc
        with handle:
            yield from verified(iter(lambda: handle.read(CHUNK_SIZE), b""), desc)

    def _read_blob(self, desc: Descriptor) -> bytes:
        """Read a manifest-sized blob whole, verified; manifests are parsed, so they must fit in memory."""
        if desc.size > MAX_MANIFEST_BYTES:
            raise UsageError(f"{desc.digest} is {desc.size} bytes, too large for a manifest")
        return b"".join(self.fetch(desc))

    # -- manifests and names -----------------------------------------------------------------------------------

    def push_manifest(self, manifest: Manifest, tag: str | None = None) -> None:
        """Store the exact bytes, then list them in index.json (tagged, or as one untagged entry)."""
        desc = _index_descriptor(manifest)
        if tag is not None:
            _check_tag(tag)
        with self._locked():
            self.push_blob(desc, [manifest.raw])
            if tag is None:
                self._update_index(lambda entries: _add_untagged(entries, desc.to_dict()))
            else:
                self._update_index(lambda entries: _set_tag(entries, desc, tag))

    def tag(self, manifest: Manifest, tag: str) -> None:
        """Point ``tag`` at ``manifest``; the bytes are stored too if they are not yet (cheap, and never wrong)."""
        self.push_manifest(manifest, tag)

    def resolve(self, reference: str) -> Descriptor:
        """A tag from index.json, or a digest: listed in index.json, else any stored manifest blob."""
        if is_digest(reference):
            return self._resolve_digest(reference)
        for desc, tag in reversed(self._listed()):
            if tag == reference:  # the last entry wins, as in oras-go's layout store
                return desc
        raise NotFoundError(
            f"tag {reference!r} not found in {self.name}", hint=f"list its tags with 'ci-oras tags {self.name}'"
        )

    def _resolve_digest(self, digest: str) -> Descriptor:
        for desc, tag in self._listed():
            if desc.digest == digest:  # a digest names no tag: do not report one
                return desc if tag is None else _without_ref_name(desc)
        path = self.blob_path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError as exc:
            raise NotFoundError(f"manifest {digest} not found in {self.name}") from exc
        if size > MAX_MANIFEST_BYTES:
            raise UsageError(f"{digest} in {self.name} is {size} bytes, too large to be a manifest")
        raw = path.read_bytes()
        verify_bytes(raw, digest, size)
        manifest = parse_manifest(raw, digest=digest, source=self.name)
        return Descriptor(
            media_type=manifest.media_type, digest=digest, size=len(raw), artifact_type=manifest.artifact_type
        )

    def fetch_manifest(self, reference: str) -> Manifest:
        return self._fetch_manifest(reference)

    def _fetch_manifest(self, reference: str, *, listing: bool = False) -> Manifest:
        desc = self.resolve(reference)
        raw = self._read_blob(desc)
        return parse_manifest(raw, media_type=desc.media_type, digest=desc.digest, source=self.name,
                              listing=listing)

    def tags(self) -> list[str]:
        return sorted({tag for _desc, tag in self._listed() if tag is not None})

    def list_manifests(self) -> list[Descriptor]:
        """Every entry of index.json in order, tags included as ref.name annotations (referrers are here too)."""
        return [desc for desc, _tag in self._listed()]

    # -- referrers (ORAS's convention: referrer manifests listed untagged in index.json) ------------------------

    def referrers(self, subject: Descriptor, artifact_type: str | None = None) -> list[Descriptor]:
        """Listed manifests whose ``subject`` is ``subject``, plus a fallback-tag index other tools wrote."""
        found = {d.digest: d for d in self._subject_map().get(subject.digest, [])}
        malformed: tuple[MalformedEntry, ...] = ()
        tag = fallback_tag(subject.digest)
        if any(name == tag for _desc, name in self._listed()):
            index = self._fetch_manifest(tag, listing=True)
            if index.is_index and index.digest != subject.digest:
                malformed = index.malformed
                for desc in index.manifests:
                    found.setdefault(desc.digest, desc)
        listed = complete_listing(subject.digest, f"{self.name} (tag {tag})", list(found.values()), malformed)
        return filter_by_type(listed, artifact_type)

    def push_referrer(self, manifest: Manifest) -> None:
        """Store it untagged: index.json lists it, and the lock keeps concurrent writers from losing it."""
        self.push_manifest(manifest)

    def push_referrers(self, subject: Descriptor, manifests: list[Manifest], stored: Collection[str] = ()) -> None:
        """Every one is (re)listed: a blob can exist without its index.json entry if a copy was interrupted,
        and re-listing an already listed manifest changes nothing on disk."""
        for manifest in manifests:
            self.push_manifest(manifest)

    def _subject_map(self) -> dict[str, list[Descriptor]]:
        """subject digest → referrers, from every manifest listed in index.json (parsed once per instance)."""
        if self._subjects is None:
            subjects: dict[str, list[Descriptor]] = {}
            seen: set[str] = set()
            for desc, _tag in self._listed():
                if desc.digest in seen or not mediatypes.is_manifest_type(desc.media_type):
                    continue
                seen.add(desc.digest)
                try:
                    manifest = self.fetch_manifest(desc.digest)
                except NotFoundError:
                    continue  # listed but its blob is gone: nothing to follow
                except MalformedError:
                    # Listed under the subject it names, as its index.json entry describes it: a reader
                    # checking the listing (verify, promote, delete --graph) meets the problem there and
                    # reports or refuses it, instead of the referrer silently not existing.
                    declared = declared_subject(self._read_blob(desc))
                    if declared is not None:
                        subject, artifact_type = declared
                        listed = replace(_without_ref_name(desc), artifact_type=artifact_type)
                        subjects.setdefault(subject, []).append(listed)
                    continue
                if manifest.subject is not None:
                    subjects.setdefault(manifest.subject.digest, []).append(manifest.descriptor)
            self._subjects = subjects
        return self._subjects

    def delete(self, desc: Descriptor) -> None:
        """Forget a manifest: its index entries and its blob. Its layers stay (garbage collection is separate)."""
        path = self.blob_path(desc.digest)
        with self._locked():
            listed = self._update_index(lambda entries: _remove_digest(entries, desc.digest))
            try:
                path.unlink()
            except FileNotFoundError:
                if not listed:
                    raise NotFoundError(f"manifest {desc.digest} not found in {self.name}") from None

    # -- index.json --------------------------------------------------------------------------------------------

    def _listed(self) -> list[tuple[Descriptor, str | None]]:
        """Usable entries with their tag; malformed entries other tools wrote are skipped, not fatal."""
        listed = []
        for entry in _manifests(self._read_index()):
            desc = _entry_descriptor(entry)
            if desc is not None:
                listed.append((desc, _ref_name(entry)))
        return listed

    def _read_index(self) -> dict[str, Any]:
        path = self.root / INDEX_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return _new_index()

        def corrupt(problem: str) -> UsageError:
            return UsageError(f"corrupt {path}: {problem}", hint="restore index.json, or re-create the layout")

        index = Fields.of(load_json(raw, corrupt), corrupt, what="an OCI image index")
        # ``"manifests": null`` is how oras leaves a layout whose last manifest it deleted: empty, not corrupt.
        # Entries are checked one by one where they are read: those of the wrong shape are skipped.
        index.array("manifests")
        return dict(index.doc)

    def _update_index(self, change: Callable[[list[Any]], list[Any]]) -> bool:
        """Apply ``change`` to the entries under the lock (the caller holds it); True when something changed."""
        self._subjects = None  # the referrers map is derived from the entries
        doc = self._read_index()
        before = _manifests(doc)
        after = change(list(before))
        if after == before:
            return False
        doc["manifests"] = after
        self._write_index(doc)
        return True

    def _write_index(self, doc: dict[str, Any]) -> None:
        data = gojson.dumps(doc)
        _atomic_write(self.root / INDEX_FILE, lambda handle: handle.write(data))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on ``index.json.lock``: serialises writers across processes and threads."""
        try:
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise _write_error(self.root / LOCK_FILE, exc) from exc
        try:
            _lock_fd(fd)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _create(self) -> None:
        """Make the layout, unless it exists; refuse to turn an unrelated non-empty directory into one."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create OCI layout {self.root}: {exc.strerror or exc}") from exc
        with self._locked():  # another process may be creating it right now
            if (self.root / LAYOUT_FILE).is_file():
                return
            if [entry for entry in os.listdir(self.root) if not _is_layout_part(entry)]:
                raise UsageError(
                    f"{self.root} is not empty and not an OCI image layout (no {LAYOUT_FILE} file)",
                    hint="use a new or empty directory",
                )
            _ensure_dir(self.root / BLOBS_DIR)
            if not (self.root / INDEX_FILE).exists():  # kept when an earlier creation was interrupted
                self._write_index(_new_index())
            layout = gojson.dumps({"imageLayoutVersion": LAYOUT_VERSION})
            # oci-layout last: its presence is what marks the directory as a complete layout.
            _atomic_write(self.root / LAYOUT_FILE, lambda handle: handle.write(layout))

    # -- referrers bookkeeping after deletes (ReferrersIndexKeeper) ------------------------------------------
    #
    # ci-oras lists a layout's referrers as untagged index.json entries, which go away with the manifest.
    # Another tool may have written the tag schema's ``sha256-<hex>`` index into the layout; it is kept
    # consistent here.

    def referrers_index(self, subject: Descriptor) -> Descriptor | None:
        return self._fallback_entry(subject.digest)

    def forget_referrer(self, subject: Descriptor, referrer_digest: str) -> bool:
        """Remove the entry from another tool's fallback index: rewritten (other fields kept), or untagged and
        deleted when it would become empty."""
        from ci_oras.errors import CiOrasError
        from ci_oras.oci.digest import digest_bytes

        tag = fallback_tag(subject.digest)
        with self._locked():
            desc = self._fallback_entry(subject.digest)
            if desc is None:
                return False
            try:
                doc = load_json(self._read_blob(desc), MalformedError)
            except CiOrasError:
                return False  # its blob is missing or unreadable: nothing to edit (listing ignores it too)
            entries = doc.get("manifests") if isinstance(doc, dict) else None
            if not isinstance(doc, dict) or not isinstance(entries, list):
                return False
            kept = [entry for entry in entries if _entry_digest(entry) != referrer_digest]
            if len(kept) == len(entries):
                return False
            if kept:
                data = gojson.dumps({**doc, "manifests": kept})
                new = Descriptor(media_type=desc.media_type, digest=digest_bytes(data), size=len(data))
                self.push_blob(new, [data])
                self._update_index(lambda items: [
                    self._repointed(item, new) if _ref_name(item) == tag else item for item in items])
            else:
                self._update_index(lambda items: [item for item in items if _ref_name(item) != tag])
            self._remove_unlisted_blob(desc.digest)
            return True

    def drop_referrers_index(self, subject: Descriptor) -> bool:
        """Untag and delete the subject's fallback index (a tag on the subject itself is left alone)."""
        tag = fallback_tag(subject.digest)
        with self._locked():
            desc = self._fallback_entry(subject.digest)
            if desc is None:
                return False
            self._update_index(lambda items: [item for item in items if _ref_name(item) != tag])
            self._remove_unlisted_blob(desc.digest)
            return True

    def _fallback_entry(self, subject_digest: str) -> Descriptor | None:
        """The index tagged ``sha256-<hex>`` for the subject, unless the tag names the subject or no index."""
        tag = fallback_tag(subject_digest)
        tagged = [desc for desc, name in self._listed() if name == tag]
        if not tagged:
            return None
        desc = tagged[-1]  # the last entry wins, as in resolve()
        if desc.digest == subject_digest or not mediatypes.is_index_type(desc.media_type):
            return None
        return _without_ref_name(desc)

    def _remove_unlisted_blob(self, digest: str) -> None:
        """Delete a manifest blob no index.json entry lists any more (the caller holds the lock)."""
        if all(desc.digest != digest for desc, _tag in self._listed()):
            self.blob_path(digest).unlink(missing_ok=True)

    @staticmethod
    def _repointed(entry: Any, desc: Descriptor) -> Any:
        """The same entry (tag and other fields kept) pointing at ``desc``."""
        return {**entry, "mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}


# -- index entries (pure functions on the raw JSON, so unknown fields survive) -----------------------------------


def _is_layout_part(entry: str) -> bool:
    """What an empty directory may hold before creation: our lock, or leftovers of an interrupted creation."""
    leftover = entry.startswith((f".{INDEX_FILE}.", f".{LAYOUT_FILE}."))
    return entry in (LOCK_FILE, BLOBS_DIR, INDEX_FILE) or (leftover and entry.endswith(".tmp"))


def _without_ref_name(desc: Descriptor) -> Descriptor:
    annotations = {k: v for k, v in desc.annotations.items() if k != ANNOTATION_REF_NAME}
    return replace(desc, annotations=annotations)


def _new_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}


def _manifests(doc: dict[str, Any]) -> list[Any]:
    entries = doc.get("manifests")
    return list(entries) if isinstance(entries, list) else []


def _ref_name(entry: Any) -> str | None:
    annotations = entry.get("annotations") if isinstance(entry, dict) else None
    name = annotations.get(ANNOTATION_REF_NAME) if isinstance(annotations, dict) else None
    return name if isinstance(name, str) else None


def _entry_digest(entry: Any) -> str | None:
    digest = entry.get("digest") if isinstance(entry, dict) else None
    return digest if isinstance(digest, str) else None


def _entry_descriptor(entry: Any) -> Descriptor | None:
    """The descriptor of an entry, dropping optional fields of the wrong shape; None when unusable."""
    if not isinstance(entry, dict):
        return None
    clean = {key: entry[key] for key in ("mediaType", "digest", "size") if key in entry}
    annotations = entry.get("annotations")
    if isinstance(annotations, dict):
        clean["annotations"] = {k: v for k, v in annotations.items() if isinstance(v, str)}
    if isinstance(entry.get("artifactType"), str):
        clean["artifactType"] = entry["artifactType"]
    if isinstance(entry.get("platform"), dict):
        clean["platform"] = entry["platform"]
    try:
        return Descriptor.from_dict(clean)
    except (UsageError, ValueError, TypeError):
        return None


def _index_descriptor(manifest: Manifest) -> Descriptor:
    return Descriptor(
        media_type=manifest.media_type,
        digest=manifest.digest,
        size=len(manifest.raw),
        artifact_type=manifest.artifact_type,
    )


def _add_untagged(entries: list[Any], entry: dict[str, Any]) -> list[Any]:
    """List a manifest once; a manifest already listed (tagged or not) needs nothing more."""
    if any(_entry_digest(existing) == entry["digest"] for existing in entries):
        return entries
    return [*entries, entry]


def _untag(entry: dict[str, Any]) -> dict[str, Any]:
    """The same entry without its ref.name, every other field kept."""
    untagged = dict(entry)
    annotations = {k: v for k, v in entry["annotations"].items() if k != ANNOTATION_REF_NAME}
    if annotations:
        untagged["annotations"] = annotations
    else:
        del untagged["annotations"]
    return untagged


class _Displaced:
    """Placeholder for an entry whose tag moved away; it becomes untagged unless its digest stays listed."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry


def _set_tag(entries: list[Any], desc: Descriptor, tag: str) -> list[Any]:
    """Point ``tag`` at ``desc``: the manifest it left stays listed untagged, ``desc``'s untagged entry goes."""
    kept = False
    staged: list[Any] = []
    for entry in entries:
        digest, name = _entry_digest(entry), _ref_name(entry)
        if name == tag:
            if digest == desc.digest and not kept:
                kept = True
                staged.append(entry)
            else:
                staged.append(_Displaced(entry))
        elif digest == desc.digest and name is None:
            continue
        else:
            staged.append(entry)
    if not kept:
        staged.append(desc.with_annotations({ANNOTATION_REF_NAME: tag}).to_dict())
    return _settle(staged)


def _settle(staged: list[Any]) -> list[Any]:
    """Replace placeholders: an untagged entry only when the manifest has no other entry left."""
    listed = {_entry_digest(entry) for entry in staged if not isinstance(entry, _Displaced)}
    result: list[Any] = []
    for entry in staged:
        if not isinstance(entry, _Displaced):
            result.append(entry)
            continue
        digest = _entry_digest(entry.entry)
        if digest not in listed:
            listed.add(digest)
            result.append(_untag(entry.entry))
    return result


def _remove_digest(entries: list[Any], digest: str) -> list[Any]:
    return [entry for entry in entries if _entry_digest(entry) != digest]


def _check_tag(tag: str) -> None:
    if not tag or any(ch.isspace() for ch in tag):
        raise UsageError(f"invalid tag {tag!r}", hint="a tag is letters, digits, '_', '.' and '-'")


# -- files -------------------------------------------------------------------------------------------------------


def _ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from exc


def _atomic_write(target: Path, write: Callable[[Any], object], *, keep_existing: bool = False) -> None:
    """Write via a temporary file in the same directory, fsync, rename: readers see all or nothing.

    With ``keep_existing`` an existing target wins (content-addressed blobs are identical by definition).
    """
    try:
        fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_error(target, exc) from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, _FILE_MODE)
        if keep_existing and target.exists():
            temp.unlink()
        else:
            os.replace(temp, target)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_error(target, exc) from exc
        raise


def _write_error(target: Path, exc: OSError) -> UsageError:
    """Disk full, read-only or not ours: the user's environment, not a registry or integrity problem."""
    return UsageError(f"cannot write {target}: {exc.strerror or exc}", hint="check free space and permissions")


def _lock_fd(fd: int) -> None:
    if sys.platform == "win32":  # pragma: no cover - exercised only on Windows runners
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
                return
            except OSError:
                continue  # LK_LOCK gives up after ten seconds; a writer may legitimately take longer
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)

