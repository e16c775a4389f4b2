"""``ci-oras sign``: make a Notary Project signature of SUBJECT and attach it, as ``notation sign`` does.

The key comes from a file (``--key``) or from the text of an environment variable (``--key-env``, for CI
secrets); it is read here because steps never read files named by flags' secrets nor the environment, and
every message names only the file or the variable, never what they hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ci_oras.cli.app import Options, ReferrersOpt, app, command, referrers_mode, report, require_reference, runtime
from ci_oras.errors import UsageError

#: A signature valid for more than ten years is almost certainly a typo in --expiry.
MAX_EXPIRY_SECONDS = 3660 * 86400.0


@command(app, "sign")
def sign(
    subject: Annotated[str, typer.Argument(metavar="SUBJECT", help="What to sign: REF:TAG or REF@DIGEST.")],
    key: Annotated[Optional[Path], typer.Option(
        "--key", metavar="KEY.pem", help="The signing key (PEM: PKCS#8 or traditional RSA/EC).")] = None,
    key_env: Annotated[Optional[str], typer.Option(
        "--key-env", metavar="VAR",
        help="Read the PEM key, or its base64 (for a masked CI variable), from this environment variable.")] = None,
    cert: Annotated[Optional[Path], typer.Option(
        "--cert", metavar="CHAIN.pem", help="The certificate chain, signing certificate first, root last.")] = None,
    signature_format: Annotated[str, typer.Option(
        "--signature-format", metavar="jws|cose", help="The envelope format (notation's default: jws).")] = "jws",
    expiry: Annotated[Optional[str], typer.Option(
        "--expiry", metavar="DURATION", help="Signature expires after this long: 90d, 12h, 30m.")] = None,
    annotation: Annotated[Optional[list[str]], typer.Option(
        "--annotation", "-a", help="Extra manifest annotation KEY=VALUE.")] = None,
    platform: Annotated[Optional[str], typer.Option(
        "--platform", metavar="OS/ARCH", help="Sign this child of an image index.")] = None,
    referrers: ReferrersOpt = "auto",
    *,
    options: Options,
) -> None:
    """Sign SUBJECT with a Notary Project signature (JWS or COSE) and attach it, like 'notation sign'.

    The signature is an OCI 1.1 referrer of type application/vnd.cncf.notary.signature that
    'notation verify' and 'ci-oras verify --trust-policy/--signed-by' accept. Sign an SBOM by its digest to
    make 'verify --require sbom>signature' pass."""
    import datetime as dt

    from ci_oras.emit.render import sign_text
    from ci_oras.files import parse_annotations
    from ci_oras.requirements import parse_duration
    from ci_oras.steps.common import resolve_subject
    from ci_oras.steps.sign import SignOptions
    from ci_oras.steps.sign import sign as sign_step

    key_pem, key_source = _read_key(key, key_env)
    if cert is None:
        raise UsageError("sign needs the certificate chain", hint="add --cert CHAIN.pem (signing certificate first)")
    chain_pem = _read_file(cert, "--cert", "the certificate chain, PEM")
    lifetime = dt.timedelta(seconds=parse_duration(expiry, "--expiry", MAX_EXPIRY_SECONDS)) if expiry else None
    sign_options = SignOptions(signature_format=signature_format.lower(), expiry=lifetime,
                               annotations=parse_annotations(annotation or []), key_source=key_source,
                               chain_source=f"--cert {cert}")
    ref, name = require_reference(subject)
    mode = referrers_mode(referrers)
    with runtime(options) as run:
        target = run.open(ref, create=True, referrers=mode)
        subject_desc = resolve_subject(target, name, str(ref), platform, purpose="sign")
        result = sign_step(target, ref.repository_name, subject_desc, key_pem, chain_pem, sign_options)
    report(options, result, lambda: sign_text(result, ref.repository_name))


def _read_key(key: Path | None, key_env: str | None) -> tuple[bytes, str]:
    """The key's bytes and how to name their source in messages (never the bytes themselves)."""
    import os

    if (key is None) == (key_env is None):
        raise UsageError("sign needs exactly one of --key and --key-env",
                         hint="--key KEY.pem for a file, --key-env VAR for a key held in an environment variable")
    if key is not None:
        return _read_file(key, "--key", "the PEM private key"), f"--key {key}"
    assert key_env is not None
    value = os.environ.get(key_env)
    if not value or not value.strip():
        raise UsageError(f"environment variable {key_env} (--key-env) is not set or empty",
                         hint=f"set {key_env} to the PEM private key, e.g. from a CI secret")
    return _pem_or_its_base64(value.encode("utf-8")), f"environment variable {key_env}"


def _pem_or_its_base64(value: bytes) -> bytes:
    """The PEM text itself, or the PEM a base64 value encodes.

    CI masking wants one line without spaces (GitLab refuses to mask a PEM block), so teams store the key's
    base64 in a masked variable. Anything that decodes to no PEM is passed on unchanged, and the key loader
    reports it as not a PEM key, naming only the variable.
    """
    import base64
    import binascii

    if b"-----BEGIN" in value:
        return value
    try:
        decoded = base64.b64decode(b"".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return value
    return decoded if b"-----BEGIN" in decoded else value


def _read_file(path: Path, flag: str, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{flag} file not found: {path}", hint=f"pass {what}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {flag} file {path}: {exc.strerror or exc}", hint=f"pass {what}") from None
