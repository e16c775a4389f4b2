"""The step catalog: what every CI wrapper of ci-oras takes and gives, in one place.

Each :class:`Step` is one ``ci-oras <step>`` command as CI platforms see it: its inputs (kebab-case names, as
on GitHub and GitLab; :attr:`Input.camel_name` for Azure), how each input becomes command-line arguments
(:class:`Maps`), and the outputs the ``--emit`` emitters set. ``python -m ci_oras.wrappers.generate`` renders
every wrapper file from this module, and ``tests/wrappers/`` fails when a generated file is stale or when an
input names a flag the CLI does not have.

How a value maps to the command line (:class:`Maps`):

* ``ARGUMENT``: one positional argument (positional inputs keep their order in :attr:`Step.inputs`);
* ``ARGUMENTS``: one positional argument per non-blank line (``files``: ``path[:media-type]`` per line);
* ``OPTION``: ``--flag VALUE`` when the value is not empty;
* ``OPTION_PER_LINE``: ``--flag LINE`` once per non-blank line (``annotations``, ``require``, ...);
* ``SWITCH``: ``--flag`` when ``true``, nothing when ``false`` or empty;
* ``PASSWORD_STDIN``: masked on the platform, then piped to ``--password-stdin`` (never on the command line);
* ``WRAPPER``: read by the wrapper itself, never passed on (``fail-on-missing``).

Lines are trimmed, and blank lines are skipped. Every wrapper adds ``--emit <platform>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ci_oras.emit.outputs import OUTPUTS, RESULT, camel_case


class Maps(str, Enum):
    """How an input's value becomes arguments of ``ci-oras <step>``."""

    ARGUMENT = "argument"
    ARGUMENTS = "arguments"
    OPTION = "option"
    OPTION_PER_LINE = "option-per-line"
    SWITCH = "switch"
    PASSWORD_STDIN = "password-stdin"
    WRAPPER = "wrapper"


class InputType(str, Enum):
    """The type of an input's value; wrappers reject a value that does not fit before running anything."""

    STRING = "string"
    LINES = "lines"  # one value per line
    BOOLEAN = "boolean"  # true or false
    INTEGER = "integer"  # a non-negative whole number
    DURATION = "duration"  # 30s, 2m, 1m30s or seconds; checked by the CLI
    CHOICE = "choice"  # one of Input.options
    #: A file's path: one line, and never PEM text, so a key pasted where its path belongs is refused before
    #: the wrapper echoes the command line (and before ci-oras names the "file" in a not-found error).
    PATH = "path"
    #: The name of an environment variable (``[A-Za-z_][A-Za-z0-9_]*``): a secret's value given instead of its
    #: name is refused without being echoed.
    ENV_NAME = "env-name"


@dataclass(frozen=True)
class Input:
    name: str  # kebab-case
    description: str
    maps: Maps
    type: InputType = InputType.STRING
    flag: str | None = None  # the CLI option (OPTION, OPTION_PER_LINE, SWITCH)
    argument: str | None = None  # the CLI argument's metavar (ARGUMENT, ARGUMENTS)
    required: bool = False
    default: str | None = None  # None: no default (empty)
    options: tuple[str, ...] = ()  # the allowed values of a CHOICE
    secret: bool = False

    @property
    def camel_name(self) -> str:
        """``plainHttp`` for ``plain-http`` (Azure Pipelines task inputs)."""
        return camel_case(self.name)

    @property
    def env_name(self) -> str:
        """The environment variable a wrapper script reads the value from: ``INPUT_PLAIN_HTTP``."""
        return "INPUT_" + self.name.upper().replace("-", "_")

    @property
    def multiline(self) -> bool:
        return self.type is InputType.LINES


@dataclass(frozen=True)
class Output:
    name: str  # kebab-case, exactly as the emitters write it
    description: str


@dataclass(frozen=True)
class SoftFailure:
    """An exit code that fails the job only while a boolean WRAPPER input says so (fail-on-missing)."""

    exit_code: int
    input: str
    message: str


@dataclass(frozen=True)
class Step:
    name: str  # the ci-oras subcommand, also the wrapper's name (actions/<name>, gitlab/<name>.yml)
    title: str  # a short human name: "Attach an SBOM"
    description: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]  # ``result`` last
    soft_failure: SoftFailure | None = None
    #: The command words when they are not just ``name``: ``("release", "plan")`` for ``release-plan``.
    subcommand: tuple[str, ...] = ()
    #: Where the username/password inputs go, in the wrappers' words (None: the first argument's registry).
    login_target: str | None = None
    #: More files the GitLab job keeps as artifacts (``$[[ inputs.x ]]`` allowed): the plan, the shard file.
    gitlab_artifacts: tuple[str, ...] = ()
    #: The lock (under requirements/) the self-contained GitLab and Azure YAML templates install: the smallest
    #: that covers what the command can import. ``runtime-core.lock`` leaves out cryptography and sigstore,
    #: ``runtime-signing.lock`` sigstore alone (requirements/lock.py ``VARIANTS``); the install tests check
    #: each step's imports against it.
    lock: str = "runtime-core.lock"

    @property
    def command(self) -> tuple[str, ...]:
        return self.subcommand or (self.name,)

    @property
    def camel_name(self) -> str:
        """``AttachSbom`` (Azure task names: ``CiOrasAttachSbom@0``)."""
        name = camel_case(self.name)
        return name[:1].upper() + name[1:]

    @property
    def arguments(self) -> tuple[Input, ...]:
        """Positional inputs, in command-line order."""
        return tuple(i for i in self.inputs if i.maps in (Maps.ARGUMENT, Maps.ARGUMENTS))

    @property
    def options(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.maps not in (Maps.ARGUMENT, Maps.ARGUMENTS))

    def input(self, name: str) -> Input:
        for candidate in self.inputs:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.name} has no input {name!r}")

    def output(self, name: str) -> Output:
        for candidate in self.outputs:
            if candidate.name == name:
                return candidate
        raise KeyError(f"{self.name} has no output {name!r}")


# --- common inputs -----------------------------------------------------------------------------------------

PLAIN_HTTP = Input(
    "plain-http",
    "Use plain HTTP (true). false: HTTPS with verified certificates, except for localhost, 127.0.0.1 and [::1], "
    "which use plain HTTP unless ca-file or insecure is set.",
    Maps.SWITCH, InputType.BOOLEAN, flag="--plain-http", default="false",
)
INSECURE = Input(
    "insecure", "Skip TLS certificate verification (testing only; ci-oras warns loudly).",
    Maps.SWITCH, InputType.BOOLEAN, flag="--insecure", default="false",
)
CA_FILE = Input("ca-file", "PEM file of CA certificates to trust.", Maps.OPTION, flag="--ca-file")
USERNAME = Input(
    "username",
    "Registry username, sent only to the registry this step names (promote: the destination; release steps: "
    "the destinations' one registry). Other registries "
    "use the docker config (docker login), or CI_ORAS_USERNAME/CI_ORAS_PASSWORD for the host in CI_ORAS_REGISTRY.",
    Maps.OPTION, flag="--username",
)
PASSWORD = Input(
    "password",
    "Registry password or token for username's registry: pass a secret. Masked in logs, sent to ci-oras on stdin.",
    Maps.PASSWORD_STDIN, secret=True,
)
REFERRERS = Input(
    "referrers",
    "How referrers are listed and written: api (OCI 1.1 referrers API), tag (sha256-<hex> fallback tag) or "
    "auto (probe the registry once per repository).",
    Maps.OPTION, InputType.CHOICE, flag="--referrers", default="auto", options=("auto", "api", "tag"),
)

#: Connection and credential inputs, in wrapper order. ``push`` writes no referrers and has no ``referrers``.
CONNECTION = (PLAIN_HTTP, INSECURE, CA_FILE, USERNAME, PASSWORD)
COMMON = CONNECTION + (REFERRERS,)


# --- outputs -----------------------------------------------------------------------------------------------

def _outputs(step: str) -> tuple[Output, ...]:
    """The outputs the emitters set for ``step``, ``result`` last (their table is the one source of both)."""
    return tuple(Output(output.name, output.description + ".") for output in (*OUTPUTS[step], RESULT))


def _files(what: str) -> Input:
    return Input(
        "files",
        f"Files and directories {what}, one per line: path[:media-type]. "
        "A directory becomes a tar+gzip layer.",
        Maps.ARGUMENTS, InputType.LINES, argument="FILE[:MEDIA_TYPE]",
    )


ANNOTATIONS = Input(
    "annotations", "Manifest annotations, one KEY=VALUE per line.",
    Maps.OPTION_PER_LINE, InputType.LINES, flag="--annotation",
)


# --- steps -------------------------------------------------------------------------------------------------

PUSH = Step(
    "push",
    "Push an OCI artifact",
    "Push files and directories to a registry (or an OCI layout) as an OCI artifact, like 'oras push'.",
    inputs=(
        Input("reference", "Where to push: REGISTRY/REPO[:TAG[,TAG...]] or oci:PATH[:TAG].",
              Maps.ARGUMENT, argument="REF", required=True),
        _files("to push"),
        Input("artifact-type", "The artifact's type (default application/vnd.unknown.artifact.v1).",
              Maps.OPTION, flag="--artifact-type"),
        ANNOTATIONS,
    ) + CONNECTION,
    outputs=_outputs("push"),
)

ATTACH = Step(
    "attach",
    "Attach files as a referrer",
    "Attach files to a subject as an OCI 1.1 referrer (like 'oras attach'); "
    "succeeds once it is discoverable.",
    inputs=(
        Input("subject", "What to attach to: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.",
              Maps.ARGUMENT, argument="SUBJECT", required=True),
        _files("to attach"),
        Input("artifact-type", "The referrer's artifact type.", Maps.OPTION, flag="--artifact-type",
              required=True),
        ANNOTATIONS,
    ) + COMMON,
    outputs=_outputs("attach"),
)

ATTACH_SBOM = Step(
    "attach-sbom",
    "Attach an SBOM",
    "Attach an SBOM (CycloneDX JSON/XML, SPDX JSON/tag-value, detected from its content) to a subject, "
    "recording its format, spec version, tool and creation time.",
    inputs=(
        Input("subject", "What the SBOM describes: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.",
              Maps.ARGUMENT, argument="SUBJECT", required=True),
        Input("sbom", "Path of the SBOM file.", Maps.ARGUMENT, argument="FILE", required=True),
    ) + COMMON,
    outputs=_outputs("attach-sbom"),
)

ATTACH_SIGNATURE = Step(
    "attach-signature",
    "Attach a signature",
    "Attach a signature to a subject: Notary Project JWS and COSE envelopes and Sigstore bundles are "
    "recognised; other formats need artifact-type and media-type.",
    inputs=(
        Input("subject", "What is signed: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.",
              Maps.ARGUMENT, argument="SUBJECT", required=True),
        Input("signature", "Path of the signature file.", Maps.ARGUMENT, argument="FILE", required=True),
        Input("artifact-type", "Artifact type, for signature formats ci-oras does not recognise.",
              Maps.OPTION, flag="--artifact-type"),
        Input("media-type", "Layer media type, for signature formats ci-oras does not recognise.",
              Maps.OPTION, flag="--media-type"),
    ) + COMMON,
    outputs=_outputs("attach-signature"),
)

SIGN = Step(
    "sign",
    "Sign with a Notary Project signature",
    "Sign a subject (an image, or an SBOM by its digest) with a Notary Project signature (JWS or COSE) and "
    "attach it, like 'notation sign'; verify with trust-policy or signed-by.",
    inputs=(
        Input("subject", "What to sign: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.",
              Maps.ARGUMENT, argument="SUBJECT", required=True),
        Input("key",
              "Path of the PEM private key file (a secret file). Exactly one of key and key-env.",
              Maps.OPTION, InputType.PATH, flag="--key"),
        Input("key-env",
              "NAME of an environment variable holding the PEM private key (map a secret to it); the wrapper "
              "never reads its value. Exactly one of key and key-env.",
              Maps.OPTION, InputType.ENV_NAME, flag="--key-env"),
        Input("cert", "Path of the PEM certificate chain, signing certificate first, root last.",
              Maps.OPTION, InputType.PATH, flag="--cert", required=True),
        Input("signature-format", "The envelope format.",
              Maps.OPTION, InputType.CHOICE, flag="--signature-format", default="jws", options=("jws", "cose")),
        Input("expiry", "The signature expires after this long: 90d, 12h, 30m (empty: never).",
              Maps.OPTION, InputType.DURATION, flag="--expiry"),
        ANNOTATIONS,
        Input("platform", "Sign this child of an image index: OS/ARCH.", Maps.OPTION, flag="--platform"),
    ) + COMMON,
    outputs=_outputs("sign"),
    lock="runtime-signing.lock",
)

DISCOVER = Step(
    "discover",
    "Discover the referrers graph",
    "List the referrers graph below a subject: signatures, SBOMs and what refers to them, level by level.",
    inputs=(
        Input("reference", "The subject: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.",
              Maps.ARGUMENT, argument="REF", required=True),
        Input("artifact-type", "Only referrers of these artifact types, one per line.",
              Maps.OPTION_PER_LINE, InputType.LINES, flag="--artifact-type"),
        Input("depth", "Levels to follow (empty: all).", Maps.OPTION, InputType.INTEGER, flag="--depth"),
    ) + COMMON,
    outputs=_outputs("discover"),
)

VERIFY = Step(
    "verify",
    "Verify required referrers",
    "Gate a deployment on referrers: fails when a required SBOM, signature, attestation or other referrer is "
    "missing (unless fail-on-missing is false).",
    inputs=(
        Input("reference", "The subject: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.",
              Maps.ARGUMENT, argument="REF", required=True),
        Input("require",
              "Required referrers, one SPEC per line: an artifact type, an alias (sbom, signature, "
              "attestation, vuln-report) or attestation:PREDICATE-TYPE (a Sigstore bundle with exactly that "
              "predicate type), optionally chained (sbom>signature) and counted (signature*2). With trust-policy "
              "or signed-by, signature counts only Notary Project signatures that verify, at any level of a chain; "
              "with a Sigstore identity (certificate-identity, github-repo), only Sigstore bundles that verify.",
              Maps.OPTION_PER_LINE, InputType.LINES, flag="--require", required=True),
        Input("wait", "Keep checking this long for referrers to show up: 30s, 2m, 1m30s or seconds "
                      "(empty: check once).",
              Maps.OPTION, InputType.DURATION, flag="--wait"),
        Input("trust-policy",
              "Path of a notation trust policy (version 1.0): signature requirements count only Notary Project "
              "signatures it accepts (integrity, chain to a trusted root, expiry, identity, as its level says).",
              Maps.OPTION, InputType.PATH, flag="--trust-policy"),
        Input("trust-store",
              "Path of notation's trust store directory (x509/ca/NAME/*.pem, x509/signingAuthority/NAME/*.pem); "
              "empty: the truststore directory beside trust-policy.",
              Maps.OPTION, InputType.PATH, flag="--trust-store"),
        Input("signed-by",
              "Path of one trusted root certificate (PEM): signature requirements count only signatures chaining "
              "to it (any identity, strict); the short form of trust-policy.",
              Maps.OPTION, InputType.PATH, flag="--signed-by"),
        Input("certificate-identity",
              "Sigstore: count only bundles (cosign v3, GitHub's attest actions) that verify and whose "
              "certificate names exactly this identity, e.g. a workflow URL "
              "https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/heads/main (with "
              "certificate-oidc-issuer).",
              Maps.OPTION, flag="--certificate-identity"),
        Input("certificate-identity-regexp", "Sigstore: ... or an identity this regular expression finds.",
              Maps.OPTION, flag="--certificate-identity-regexp"),
        Input("certificate-oidc-issuer",
              "Sigstore: the OIDC issuer that vouched for the identity, exactly: "
              "https://token.actions.githubusercontent.com (GitHub Actions), https://gitlab.com (GitLab.com).",
              Maps.OPTION, flag="--certificate-oidc-issuer"),
        Input("certificate-oidc-issuer-regexp", "Sigstore: ... or an issuer this regular expression finds.",
              Maps.OPTION, flag="--certificate-oidc-issuer-regexp"),
        Input("github-repo",
              "Sigstore: count only bundles signed in a GitHub Actions run of this OWNER/REPO (like "
              "'gh attestation verify --repo').",
              Maps.OPTION, flag="--github-repo"),
        Input("signer-workflow",
              "Sigstore: ... by this workflow, OWNER/REPO/PATH[@REF] "
              "(acme/shop/.github/workflows/release.yml@refs/heads/main).",
              Maps.OPTION, flag="--signer-workflow"),
        Input("trusted-root",
              "Sigstore: path of the trusted_root.json to verify against; empty: the public-good instance's, "
              "shipped with ci-oras ('gh attestation trusted-root' writes GitHub's own).",
              Maps.OPTION, InputType.PATH, flag="--trusted-root"),
        Input("fail-on-missing", "Fail the job when a requirement is missing; false: only set ok=false.",
              Maps.WRAPPER, InputType.BOOLEAN, default="true"),
    ) + COMMON,
    outputs=_outputs("verify"),
    lock="runtime.lock",
    soft_failure=SoftFailure(1, "fail-on-missing", "a required referrer is missing (fail-on-missing: false)"),
)

PROMOTE = Step(
    "promote",
    "Promote with the whole graph",
    "Copy an image or artifact with its whole graph (index children, referrers, referrers of referrers) to "
    "another repository or registry; tags are written last, so they never point at an incomplete graph.",
    inputs=(
        Input("source", "What to copy: REGISTRY/REPO:TAG, REGISTRY/REPO@DIGEST or oci:PATH:TAG.",
              Maps.ARGUMENT, argument="SRC", required=True),
        Input("destination",
              "Where: REGISTRY/REPO[:TAG[,TAG...]] or oci:PATH[:TAG] (default: the source's tag); one per line "
              "for several, each source blob then read once and no destination tagged before all are complete.",
              Maps.ARGUMENTS, InputType.LINES, argument="DST", required=True),
        Input("artifact-type",
              "Copy only direct referrers of these artifact types (and what refers to them), one per line.",
              Maps.OPTION_PER_LINE, InputType.LINES, flag="--artifact-type"),
        Input("exclude-artifact-type", "Never copy referrers of these artifact types, one per line.",
              Maps.OPTION_PER_LINE, InputType.LINES, flag="--exclude-artifact-type"),
        Input("concurrency", "Parallel blob copies (1-64, default 4).",
              Maps.OPTION, InputType.INTEGER, flag="--concurrency"),
    ) + COMMON,
    outputs=_outputs("promote"),
)

DELETE = Step(
    "delete",
    "Delete a manifest or graph",
    "Delete a manifest (every tag on it goes too) or, with graph: true, its whole referrers graph.",
    inputs=(
        Input("reference", "The manifest to delete: REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST.",
              Maps.ARGUMENT, argument="REF", required=True),
        Input("graph", "Also delete every referrer below it and, for an index, its manifests.",
              Maps.SWITCH, InputType.BOOLEAN, flag="--graph", default="false"),
    ) + COMMON,
    outputs=_outputs("delete"),
)

RELEASE_LOGIN = "the registry of the release's destinations (one registry; sources use the docker config or CI_ORAS_*)"
PLAN_FILE = Input("plan", "Path of the plan release-plan wrote (its artifact in this job).",
                  Maps.ARGUMENT, InputType.PATH, argument="PLAN", required=True)

RELEASE_PLAN = Step(
    "release-plan",
    "Plan a release",
    "Pin every image of a release file to its digest, gate each with its requirements, size its graph and "
    "write the plan, with the shards to copy as a matrix; fails (and copies nothing) when a gate fails.",
    inputs=(
        Input("release-file", "Path of the release file (YAML): images, destinations, tags, requirements.",
              Maps.ARGUMENT, InputType.PATH, argument="FILE", required=True),
        Input("out", "Where to write the plan; later jobs read it (keep it as an artifact).",
              Maps.OPTION, InputType.PATH, flag="--out", default="release-plan.json"),
        Input("shards", "Copy jobs to split the release over (1-256, default 1; only shards with work run).",
              Maps.OPTION, InputType.INTEGER, flag="--shards"),
        Input("concurrency", "Images planned at once (1-64, default 4).",
              Maps.OPTION, InputType.INTEGER, flag="--concurrency"),
        Input("copy-job",
              "GitLab: the name of the release-copy job that ci-oras-release-copy.yml (the child pipeline's "
              "shard file) extends (default ci-oras-release-copy).",
              Maps.OPTION, flag="--copy-job"),
    ) + COMMON,
    outputs=_outputs("release-plan"),
    lock="runtime-signing.lock",
    subcommand=("release", "plan"),
    login_target=RELEASE_LOGIN,
    gitlab_artifacts=("$[[ inputs.out ]]", "ci-oras-release-copy.yml"),
)

RELEASE_COPY = Step(
    "release-copy",
    "Copy a release shard",
    "Copy the graphs of one shard of a release plan by digest, moving no tag; a re-run copies only what is "
    "missing.",
    inputs=(
        PLAN_FILE,
        Input("shard",
              "Which shard of the plan's matrix to copy (1-256); empty: $CI_ORAS_RELEASE_SHARD, which the GitLab "
              "shard file sets.",
              Maps.OPTION, InputType.INTEGER, flag="--shard"),
        Input("images", "Images copied side by side (1-64, default 8).",
              Maps.OPTION, InputType.INTEGER, flag="--images"),
        Input("concurrency", "Copy requests in flight per image (1-64, default 4).",
              Maps.OPTION, InputType.INTEGER, flag="--concurrency"),
    ) + COMMON,
    outputs=_outputs("release-copy"),
    subcommand=("release", "copy"),
    login_target=RELEASE_LOGIN,
)

RELEASE_COMMIT = Step(
    "release-commit",
    "Commit a release",
    "Check that every graph of a release plan is complete at its destination, then move the tags, tags "
    "last; moves no tag (and fails) when any graph is incomplete.",
    inputs=(
        PLAN_FILE,
        Input("concurrency", "Checks and tag writes in flight (1-64, default 8).",
              Maps.OPTION, InputType.INTEGER, flag="--concurrency"),
    ) + COMMON,
    outputs=_outputs("release-commit"),
    subcommand=("release", "commit"),
    login_target=RELEASE_LOGIN,
)

#: Every wrapped step, in the order wrappers and docs list them.
STEPS: tuple[Step, ...] = (
    PUSH, ATTACH, ATTACH_SBOM, ATTACH_SIGNATURE, SIGN, DISCOVER, VERIFY, PROMOTE, DELETE,
    RELEASE_PLAN, RELEASE_COPY, RELEASE_COMMIT,
)


def step(name: str) -> Step:
    for candidate in STEPS:
        if candidate.name == name:
            return candidate
    raise KeyError(f"no step {name!r}")


# --- installing ci-oras (GitHub's actions/setup) -----------------------------------------------------------

SETUP_INPUTS: tuple[Input, ...] = (
    Input("version",
          "ci-oras version to install (empty: the version in this action's checkout, installed from it; "
          "another version is installed from the package index).",
          Maps.WRAPPER),
)
SETUP_OUTPUTS: tuple[Output, ...] = (
    Output("version", "The ci-oras version on PATH."),
    Output("path", "Path of the ci-oras executable."),
)
