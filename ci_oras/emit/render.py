"""The short human text each command prints under ``--output text`` (stderr), one function per step result.

Kept out of the commands so a command stays flags, one step call and one renderer, and out of the steps
because steps never print: the same result also becomes a JSON document (``document()``) and platform
outputs (``emit.outputs``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from pathlib import Path

    from ci_oras.oci.descriptor import Descriptor
    from ci_oras.release.plan import Plan
    from ci_oras.steps.release import ReleaseCommit, ShardCopy
    from ci_oras.steps.common import AttachResult
    from ci_oras.steps.delete import DeleteResult
    from ci_oras.steps.login import LoginResult, LogoutResult
    from ci_oras.steps.promote import FanOutResult, PromoteResult
    from ci_oras.steps.pull import PullResult
    from ci_oras.steps.push import PushResult
    from ci_oras.steps.sign import SignResult
    from ci_oras.steps.verify import RequirementResult, VerifyResult, WaitStatus


def push_text(result: PushResult) -> str:
    return f"Pushed {result.reference}\nDigest: {result.digest}"


def attach_text(result: AttachResult, repository: str) -> str:
    return "\n".join(([f"Detected {result.format}"] if result.format else [])
                     + [f"Attached to {repository}@{result.subject.digest}", f"Reference: {result.reference}",
                        f"Digest: {result.digest}"])


def sign_text(result: SignResult, repository: str) -> str:
    """attach's lines, then what a reader checks first: who signed, with what, and until when."""
    expiry = f", expires {result.expiry:%Y-%m-%dT%H:%M:%SZ}" if result.expiry is not None else ""
    return "\n".join([attach_text(result.attached, repository),
                      f"Signed by {result.signer} ({result.signature_format}, {result.algorithm}){expiry}"])


def pull_text(result: PullResult) -> str:
    return "\n".join([f"{'Skipped (identical)' if f.skipped else 'Pulled'} {f.path}" for f in result.files]
                     + [f"Pulled {result.reference}", f"Digest: {result.digest}"])


def login_text(result: LoginResult) -> str:
    return f"Login succeeded for {result.registry} (stored in {result.stored_in})"


def logout_text(result: LogoutResult) -> str:
    return f"{'Removed' if result.removed else 'No'} credentials for {result.registry}"


def promote_text(result: PromoteResult | FanOutResult) -> str:
    """One promote's lines; for several destinations, each one's lines and what was read from the source."""
    if not hasattr(result, "stats"):  # a FanOutResult (the step types are imported for annotations only)
        return "\n".join([*(_one_promote_text(one) for one in result.results),
                          f"Read from the source: {result.blobs_read} blobs ({result.bytes_read / 1e6:.1f} MB), "
                          f"each once, for {len(result.results)} destinations"])
    return _one_promote_text(cast("PromoteResult", result))


def _one_promote_text(result: PromoteResult) -> str:
    s = result.stats
    verb = "Would copy" if result.dry_run else "Copied"
    return "\n".join([
        f"{verb} {result.source} -> {result.destination}",
        f"Digest: {result.digest}",
        f"{verb}: {s.manifests_copied} manifests, {s.blobs_copied} blobs ({s.bytes_copied / 1e6:.1f} MB); "
        f"mounted {s.blobs_mounted}; already there: {s.manifests_skipped} manifests, {s.blobs_skipped} blobs; "
        f"referrers {s.referrers}",
    ] + ([f"Tagged: {', '.join(result.tags_written)}"] if result.tags_written and not result.dry_run else []))


def release_plan_text(plan: Plan, written: Path) -> str:
    """One line per image (its digest, shard and what is left to copy), then the totals and where the plan is."""
    lines = [f"Release {plan.release}: {len(plan.images)} images over {len(plan.shards)} of {plan.shards_asked} "
             f"shards; plan written to {written}"]
    for image in plan.images:
        gate = "gate ok" if image.gate.ok else f"gate FAILED: missing {', '.join(image.gate.missing)}"
        if not image.gate.required:
            gate = "no requirements"
        estimate = image.estimate
        lines.append(f"  {image.id}: {image.source}@{image.digest} -> {image.destination}:"
                     f"{','.join(image.tags) or '(no tag)'}  shard {image.shard}, {len(image.graph.manifests)} "
                     f"manifests, {estimate.bytes / 1e6:.1f} MB to copy; {gate}")
    return "\n".join(lines)


def release_copy_text(result: ShardCopy) -> str:
    lines = [f"Release {result.release}, shard {result.shard}: {len(result.images)} images copied by digest, "
             f"no tag moved"]
    for copied in result.images:
        s = copied.stats
        lines.append(f"  {copied.image.id}: {copied.image.destination}@{copied.image.digest}  copied "
                     f"{s.manifests_copied} manifests, {s.blobs_copied} blobs ({s.bytes_copied / 1e6:.1f} MB); "
                     f"already there: {s.manifests_skipped} manifests, {s.blobs_skipped} blobs")
    return "\n".join(lines)


def release_commit_text(result: ReleaseCommit) -> str:
    if not result.ok:
        lines = [f"Release {result.release}: {len(result.incomplete)} of {len(result.images)} graphs incomplete; "
                 "no tag moved"]
        lines += [f"  {image.image.id}: {image.image.destination}@{image.image.digest} lacks "
                  f"{', '.join(image.missing[:3])}{' …' if len(image.missing) > 3 else ''}"
                  for image in result.incomplete]
        return "\n".join(lines)
    lines = [f"Release {result.release}: {len(result.images)} graphs complete; tags moved"]
    lines += [f"  {image.image.destination}:{','.join(image.tags_written)} -> {image.image.digest}"
              for image in result.images if image.tags_written]
    return "\n".join(lines)


def delete_warnings(result: DeleteResult, repository: str) -> list[str]:
    """Referrers left without their subject (and how to delete them), then every skipped listing entry."""
    out: list[str] = []
    if result.orphaned:
        count = len(result.orphaned)
        verb = "would be" if result.dry_run else ("is" if count == 1 else "are")
        out.append(f"{count} referrer{'s' if count != 1 else ''} of {result.digest} {verb} left without "
                   f"{'its' if count == 1 else 'their'} subject; delete {'it' if count == 1 else 'them'} with "
                   f"'ci-oras delete --graph {repository}@{result.digest}'")
    out.extend(f"skipped {rejected}" for rejected in result.rejected)
    return out


def delete_text(result: DeleteResult) -> str:
    outcome = result.outcome

    def kind(desc: Descriptor) -> str:
        return str(desc.artifact_type or desc.media_type)

    if result.dry_run:
        lines = [f"{'  ' * depth}{action.descriptor.digest}  {kind(action.descriptor)}"
                 for depth, action in result.tree_order()]
        lines += [f"Would delete the referrers index of {d.digest}" for d in outcome.indexes_deleted]
        lines += [f"Would update the referrers index of {d.digest}" for d in outcome.indexes_updated]
        count = len(outcome.deleted)
        return "\n".join([f"Dry run: would delete {count} manifest{'s' if count != 1 else ''}:", *lines])
    lines = [f"Deleted {a.descriptor.digest}  {kind(a.descriptor)}" for a in outcome.deleted]
    lines += [f"Already deleted {a.descriptor.digest}" for a in outcome.already_deleted]
    lines += [f"Deleted the referrers index of {d.digest}" for d in outcome.indexes_deleted]
    lines += [f"Updated the referrers index of {d.digest}" for d in outcome.indexes_updated]
    count, gone = len(outcome.deleted), len(outcome.already_deleted)
    lines.append(f"Deleted {result.reference} ({count} manifest{'s' if count != 1 else ''}"
                 f"{f', {gone} already gone' if gone else ''})")
    return "\n".join([*lines, f"Digest: {result.digest}"])


def _marks() -> tuple[str, str]:
    """✓/✗ where stderr can show them (CI logs are UTF-8); plain words on a console that cannot."""
    encoding = getattr(sys.stderr, "encoding", None) or "ascii"
    try:
        "✓✗".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "ok  ", "FAIL"
    return "✓", "✗"


def _label(result: RequirementResult) -> str:
    subject = result.subject
    if subject.platform is not None:
        return f"[{subject.platform}] {result.requirement.spec}"
    return result.requirement.spec


def _line(result: RequirementResult, ok_mark: str, fail_mark: str) -> str:
    count = f"{len(result.found)} of {result.requirement.count}"
    if result.satisfied:
        head = f"{ok_mark} {_label(result)}: {count}"
    else:
        head = f"{fail_mark} {_label(result)}: missing ({count})"
    if len(result.examined) < result.candidates:  # it held before the rest were needed
        head += f" (examined {len(result.examined)} of {result.candidates} candidates)"
    shown = [" > ".join(path) for path in result.paths]
    return "\n".join([head, *(f"    {path}" for path in shown)])


def verify_text(result: VerifyResult) -> str:
    ok_mark, fail_mark = _marks()
    lines = [f"Checked {result.reference} ({result.root.digest})"]
    subjects = {r.subject.digest for r in result.results}
    if len(subjects) == 1 and result.results[0].subject.digest != result.root.digest:
        lines[0] += f", platform {result.results[0].subject.platform} ({result.results[0].subject.digest})"
    lines.extend(_line(r, ok_mark, fail_mark) for r in result.results)
    if result.trust_scope is not None:
        lines.append(f"Signatures (trust policy scope {result.trust_scope}): {len(result.signatures) or 'none found'}")
        for judged in result.signatures:
            outcome = judged.outcome
            verdict = (f"{outcome.result}" + (f" by {outcome.signer}" if outcome.signer else "")
                       + (f" ({outcome.issuer})" if outcome.issuer else "")) \
                if outcome.counts else f"refused, {outcome.failed_check}: {outcome.reason}"
            kind = f" {outcome.predicate_type}" if outcome.predicate_type else ""
            lines.append(f"    {ok_mark if outcome.counts else fail_mark} {outcome.digest}{kind} "
                         f"(of {judged.subject}): {verdict}")
    if result.unverified_bundles:
        count = len(result.unverified_bundles)
        lines.append(f"{count} Sigstore bundle{'s' if count > 1 else ''} counted without checking who signed "
                     f"{'them' if count > 1 else 'it'}: give --certificate-identity and --certificate-oidc-issuer, "
                     "or --github-repo OWNER/REPO, to verify")
    total = len(result.results)
    if result.ok:
        lines.append("The requirement holds" if total == 1 else f"All {total} requirements hold")
    return "\n".join(lines)


def verify_missing(result: VerifyResult) -> str:
    """What the failed gate's one-line error names: each unmet spec (per platform), and how long it waited."""
    parts: list[str] = []
    for unmet in result.unmet:
        spec, platform = unmet.requirement.spec, unmet.subject.platform
        text = f"{spec} on {platform}" if platform is not None else spec
        if text not in parts:
            parts.append(text)
    message = ", ".join(parts)
    if result.attempts > 1:
        message += f" (after {result.attempts} checks in {_seconds(result.waited)})"
    return message


def verify_hint(result: VerifyResult) -> str | None:
    """An index checked itself is the usual reason for a miss: the referrers sit on its platform children."""
    from ci_oras.oci import mediatypes

    checked_index = all(r.subject.digest == result.root.digest for r in result.results)
    if checked_index and mediatypes.is_index_type(result.root.media_type):
        return ("REF is an image index and its platform manifests were not checked: "
                "add --platform OS/ARCH or --all-platforms if the referrers are attached to them")
    return None


def wait_text(status: WaitStatus) -> str:
    waiting = ", ".join(dict.fromkeys(
        f"{r.requirement.spec} on {r.subject.platform}" if r.subject.platform else r.requirement.spec
        for r in status.unmet))
    return (f"Waiting for {waiting}: check {status.attempt} done, {_seconds(status.remaining)} left, "
            f"next check in {_seconds(status.next_check)}")


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 10 else f"{value:.0f}s"
