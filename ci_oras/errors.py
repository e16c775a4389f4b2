"""One error tree for the whole tool.

Every failure a user can cause or meet ends up as a ``CiOrasError`` subclass carrying the documented exit
code (docs/architecture.md, "Errors") and a hint naming the fix. Lower layers translate HTTP and OS errors
into this tree at their boundary, so the CLI needs exactly one handler and never shows a traceback for an
expected failure.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_VERIFICATION_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4
EXIT_REGISTRY = 5
EXIT_INTEGRITY = 6
#: EX_SOFTWARE (sysexits.h): an exception ci-oras did not expect, i.e. a bug. Never 0 or 1, so no soft gate
#: (a wrapper that tolerates exit 1) ever mistakes a crash for a verdict.
EXIT_INTERNAL = 70


class RegistryAnswer:
    """A registry's answer to a request that failed, as data: what was asked (the method, the URL without
    credentials or query) and what came back (the status, and the ``{"errors": [...]}`` entries of its body as
    (code, message) pairs). An error mapped from an answer carries it, so a caller decides on the status and
    codes instead of reading them back out of a message. (A plain class: this module loads on every start,
    ``--version`` included, and ``dataclasses`` would bring ``inspect`` with it.)"""

    __slots__ = ("errors", "method", "status", "url")

    def __init__(self, method: str, url: str, status: int, errors: tuple[tuple[str, str], ...] = ()) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.errors = errors

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.errors if code)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegistryAnswer) and (self.method, self.url, self.status, self.errors) == (
            other.method, other.url, other.status, other.errors)

    def __hash__(self) -> int:
        return hash((self.method, self.url, self.status, self.errors))

    def __repr__(self) -> str:
        return f"RegistryAnswer({self.method} {self.url} -> {self.status} {list(self.codes)})"


class CiOrasError(Exception):
    """Base of every error ci-oras reports; ``str()`` is the one-line message."""

    exit_code = EXIT_REGISTRY
    #: What failed, in a word, for the ``--output json`` error document (``ci-oras/error/v1``).
    kind = "registry"
    #: The registry answer the error was mapped from, when one was.
    answer: RegistryAnswer | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}: {self.hint}"
        return self.message


class VerificationFailed(CiOrasError):
    """A required referrer is missing (the gate said no)."""

    exit_code = EXIT_VERIFICATION_FAILED
    kind = "verification-failed"


class UsageError(CiOrasError):
    """Bad input: a malformed reference, a missing file, conflicting flags."""

    exit_code = EXIT_USAGE
    kind = "usage"


class NotFoundError(CiOrasError):
    """The manifest, blob, tag or repository does not exist."""

    exit_code = EXIT_NOT_FOUND
    kind = "not-found"


class AuthError(CiOrasError):
    """Authentication failed or the credentials lack the permission."""

    exit_code = EXIT_AUTH
    kind = "auth"


class RegistryError(CiOrasError):
    """The registry or network failed, after retries."""

    exit_code = EXIT_REGISTRY
    kind = "registry"

    def __init__(self, message: str, *, hint: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, hint=hint)
        #: A transient failure (connection error, 429, 5xx): an operation that can replay its input may retry.
        self.retryable = retryable


class IntegrityError(CiOrasError):
    """Content does not match its digest or size, or an archive is unsafe to unpack."""

    exit_code = EXIT_INTEGRITY
    kind = "integrity"


class MalformedError(IntegrityError):
    """A manifest, index or referrers listing from outside has the wrong shape (a field missing or of the wrong
    type, not JSON): refused, never guessed at. ``problem`` is the shape problem alone (no reference), for
    callers that report it in their own words (``verify`` lists a malformed referrer as rejected); without
    one, the message is the problem (``MalformedError`` itself then serves as a parser's ``fail``)."""

    def __init__(self, message: str, *, problem: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problem = message if problem is None else problem


class InternalError(CiOrasError):
    """An exception that is not a ``CiOrasError`` reached the CLI: a bug in ci-oras, not a verdict.

    The message names the step and the exception in one line; the traceback is shown only on request
    (``CI_ORAS_DEBUG=1``), since a CI log is read by people who need the verdict, not the stack.
    """

    exit_code = EXIT_INTERNAL
    kind = "internal"

    @classmethod
    def of(cls, exc: BaseException, step: str | None) -> InternalError:
        from ci_oras import __version__

        detail = " ".join(str(exc).split())
        if len(detail) > 200:
            detail = detail[:197] + "..."
        what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        where = f"ci-oras {__version__} {step}" if step else f"ci-oras {__version__}"
        return cls(f"internal error in {where} (a bug, not a verdict): {what}",
                   hint="please report it with the command line; CI_ORAS_DEBUG=1 prints the traceback")
