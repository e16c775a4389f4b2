"""Prove the registry harness itself, with raw httpx only (no ci_oras).

If these fail, every other integration test is meaningless: they check that
each registry mode behaves like the real-world registry it stands for and
that the token issuer speaks the protocol closely enough for distribution
to accept its tokens.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from harness import (
    RegistryBinaryNotFoundError,
    RegistryFactory,
    RegistryStartError,
    RunningRegistry,
    start_registry,
)
from harness.oci import MANIFEST_ACCEPT, digest_of, parse_challenge, push_blob, push_image
from harness.prerequisites import in_ci, missing
from harness.registry import TOKEN_ISSUER_NAME, TOKEN_SERVICE
from harness.token_issuer import ACR_IDENTITY_USERNAME, parse_scopes

TIMEOUT = httpx.Timeout(10.0)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _ = token.split(".")
    return json.loads(_b64url_decode(header)), json.loads(_b64url_decode(claims))


def _access(token: str) -> dict[str, list[str]]:
    """``{"type:name": actions}`` from a JWT's access claim."""
    return {f"{a['type']}:{a['name']}": a["actions"] for a in _jwt_parts(token)[1]["access"]}


def _post_token(reg: RunningRegistry, **form: str) -> httpx.Response:
    """An OAuth2 POST to the issuer's realm with ``form`` as its body."""
    assert reg.issuer is not None
    return httpx.post(reg.issuer.url, data=form, timeout=TIMEOUT)


def _get_token(
    reg: RunningRegistry, scope: str | list[str], auth: tuple[str, str] | None = None
) -> httpx.Response:
    assert reg.issuer is not None
    return httpx.get(
        reg.issuer.url,
        params={"service": TOKEN_SERVICE, "scope": scope},
        auth=auth,
        timeout=TIMEOUT,
    )


def _creds(reg: RunningRegistry) -> tuple[str, str]:
    assert reg.username is not None and reg.password is not None
    return reg.username, reg.password


def _scope_set(scope: str) -> set[tuple[str, frozenset[str]]]:
    """Order-insensitive view of a scope string.

    distribution builds the challenge's actions from a Go map, so
    ``pull,push`` and ``push,pull`` both occur between runs.
    """
    return {(f"{r.type}:{r.name}", frozenset(r.actions)) for r in parse_scopes([scope])}


def _bearer_client(token: str) -> httpx.Client:
    return httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


# --------------------------------------------------------------------- plain


def test_plain_v2_ok(registry_plain: RunningRegistry) -> None:
    resp = httpx.get(f"{registry_plain.url}/v2/", timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert registry_plain.url == f"http://127.0.0.1:{registry_plain.port}"
    assert registry_plain.host == f"127.0.0.1:{registry_plain.port}"
    assert registry_plain.username is None and registry_plain.password is None
    assert registry_plain.ca_file is None and registry_plain.issuer is None


def test_plain_push_pull_delete_roundtrip(registry_plain: RunningRegistry, unique_repo: str) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        image = push_image(client, registry_plain.url, unique_repo)
        got = client.get(
            f"{registry_plain.url}/v2/{unique_repo}/manifests/{image.tag}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        assert got.status_code == 200
        assert got.content == image.manifest
        blob = client.get(
            f"{registry_plain.url}/v2/{unique_repo}/blobs/{image.layer_digest}", follow_redirects=True
        )
        assert blob.content == image.layer
        # delete is enabled in the generated config
        deleted = client.delete(f"{registry_plain.url}/v2/{unique_repo}/manifests/{image.manifest_digest}")
        assert deleted.status_code == 202
    assert (registry_plain.root_dir / "docker" / "registry" / "v2" / "repositories" / unique_repo).is_dir()


# ------------------------------------------------------------------ htpasswd


def test_htpasswd_challenge_and_basic_auth(registry_htpasswd: RunningRegistry) -> None:
    url = f"{registry_htpasswd.url}/v2/"
    anonymous = httpx.get(url, timeout=TIMEOUT)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="ci-oras-test-realm"'

    assert httpx.get(url, auth=_creds(registry_htpasswd), timeout=TIMEOUT).status_code == 200
    wrong = httpx.get(url, auth=(registry_htpasswd.username or "", "wrong"), timeout=TIMEOUT)
    assert wrong.status_code == 401


def test_htpasswd_file_uses_2y_bcrypt(registry_htpasswd: RunningRegistry) -> None:
    line = (registry_htpasswd.workdir / "htpasswd").read_text().strip()
    user, _, hashed = line.partition(":")
    assert user == registry_htpasswd.username
    assert hashed.startswith("$2y$")


# --------------------------------------------------------------------- token


def test_token_challenge_format(registry_token: RunningRegistry, unique_repo: str) -> None:
    assert registry_token.issuer is not None
    resp = httpx.get(f"{registry_token.url}/v2/", timeout=TIMEOUT)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == (
        f'Bearer realm="{registry_token.issuer.url}",service="{TOKEN_SERVICE}"'
    )
    push = httpx.post(f"{registry_token.url}/v2/{unique_repo}/blobs/uploads/", timeout=TIMEOUT)
    scheme, params = parse_challenge(push.headers["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params.keys() == {"realm", "service", "scope"}
    assert (params["realm"], params["service"]) == (registry_token.issuer.url, TOKEN_SERVICE)
    assert _scope_set(params["scope"]) == _scope_set(f"repository:{unique_repo}:pull,push")


def test_token_basic_creds_push_blob_and_manifest(registry_token: RunningRegistry, unique_repo: str) -> None:
    assert registry_token.issuer is not None
    registry_token.issuer.clear_requests()
    resp = _get_token(registry_token, f"repository:{unique_repo}:pull,push", auth=_creds(registry_token))
    assert resp.status_code == 200
    body = resp.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] > 0
    token = body["token"]
    header, claims = _jwt_parts(token)
    assert header["alg"] == "ES256" and header["typ"] == "JWT" and header["x5c"]
    assert claims["aud"] == TOKEN_SERVICE and isinstance(claims["aud"], str)
    assert claims["iss"] == TOKEN_ISSUER_NAME and claims["sub"] == registry_token.username
    assert _access(token) == {f"repository:{unique_repo}": ["pull", "push"]}

    with _bearer_client(token) as client:
        blob = b"a small blob"
        assert push_blob(client, registry_token.url, unique_repo, blob) == digest_of(blob)
        image = push_image(client, registry_token.url, unique_repo, tag="v1")
        got = client.get(
            f"{registry_token.url}/v2/{unique_repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert got.status_code == 200 and got.content == image.manifest

    [record] = registry_token.issuer.requests
    assert (record.method, record.path, record.status) == ("GET", "/token", 200)
    assert record.has_authorization and record.username == registry_token.username
    assert record.scopes == (f"repository:{unique_repo}:pull,push",)
    assert record.grant_type is None and record.service == TOKEN_SERVICE


def test_token_signature_verifies_against_leaf(registry_token: RunningRegistry) -> None:
    """Independent check of the JWS encoding (raw r||s, x5c chain to the root)."""
    token = _get_token(registry_token, "repository:x/y:pull", auth=_creds(registry_token)).json()["token"]
    header_b64, claims_b64, sig_b64 = token.split(".")
    header = json.loads(_b64url_decode(header_b64))
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    root = x509.load_pem_x509_certificate((registry_token.workdir / "token" / "token-root.pem").read_bytes())
    leaf.verify_directly_issued_by(root)
    raw = _b64url_decode(sig_b64)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key = leaf.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))


def test_token_wrong_credentials_rejected_by_issuer(registry_token: RunningRegistry) -> None:
    assert registry_token.issuer is not None
    registry_token.issuer.clear_requests()
    resp = _get_token(
        registry_token, "repository:x/y:pull,push", auth=(registry_token.username or "", "nope")
    )
    assert resp.status_code == 401
    [record] = registry_token.issuer.requests
    assert record.status == 401 and record.has_authorization and record.granted == ()


def test_token_anonymous_gets_empty_access_and_registry_denies(
    registry_token: RunningRegistry, unique_repo: str
) -> None:
    resp = _get_token(registry_token, f"repository:{unique_repo}:pull")
    assert resp.status_code == 200
    token = resp.json()["token"]
    assert _jwt_parts(token)[1]["access"] == []
    denied = httpx.get(
        f"{registry_token.url}/v2/{unique_repo}/tags/list",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert denied.status_code == 401
    _, params = parse_challenge(denied.headers["WWW-Authenticate"])
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == f"repository:{unique_repo}:pull"


def test_token_delete_and_wildcard_actions_granted(registry_token: RunningRegistry, unique_repo: str) -> None:
    token = _get_token(
        registry_token,
        [f"repository:{unique_repo}:pull,push,delete", "registry:catalog:*"],
        auth=_creds(registry_token),
    ).json()["token"]
    assert _access(token) == {
        f"repository:{unique_repo}": ["pull", "push", "delete"],
        "registry:catalog": ["*"],
    }
    with _bearer_client(token) as client:
        image = push_image(client, registry_token.url, unique_repo)
        assert client.get(f"{registry_token.url}/v2/_catalog").status_code == 200
        deleted = client.delete(f"{registry_token.url}/v2/{unique_repo}/manifests/{image.manifest_digest}")
        assert deleted.status_code == 202


def test_token_refresh_grant_with_identity_token(registry_token: RunningRegistry, unique_repo: str) -> None:
    """ACR style: the identity token is a refresh token exchanged via POST."""
    issuer = registry_token.issuer
    assert issuer is not None
    issuer.clear_requests()
    resp = _post_token(registry_token, grant_type="refresh_token", refresh_token=issuer.identity_token,
                       service=TOKEN_SERVICE, scope=f"repository:{unique_repo}:pull,push",
                       client_id="ci-oras")
    assert resp.status_code == 200
    body = resp.json()
    assert body["refresh_token"] == issuer.identity_token
    assert _access(body["access_token"]) == {f"repository:{unique_repo}": ["pull", "push"]}
    with _bearer_client(body["access_token"]) as client:
        push_image(client, registry_token.url, unique_repo)

    bad = _post_token(registry_token, grant_type="refresh_token", refresh_token="not-a-token",
                      service=TOKEN_SERVICE)
    assert bad.status_code == 401
    first, second = issuer.requests
    assert (first.method, first.grant_type, first.status, first.client_id) == (
        "POST",
        "refresh_token",
        200,
        "ci-oras",
    )
    assert not first.has_authorization
    assert (second.grant_type, second.status) == ("refresh_token", 401)


def test_token_identity_user_basic_and_password_grant(registry_token: RunningRegistry) -> None:
    issuer = registry_token.issuer
    assert issuer is not None
    # The ACR user name with the identity token as Basic password also works.
    basic = _get_token(
        registry_token, "repository:x/y:pull", auth=(ACR_IDENTITY_USERNAME, issuer.identity_token)
    )
    assert basic.status_code == 200
    assert _access(basic.json()["token"]) == {"repository:x/y": ["pull"]}

    # An offline password grant returns a refresh token usable afterwards.
    password = _post_token(registry_token, grant_type="password", username=registry_token.username,
                           password=registry_token.password, service=TOKEN_SERVICE,
                           scope="repository:x/y:pull", access_type="offline", client_id="ci-oras")
    assert password.status_code == 200
    refresh = password.json()["refresh_token"]
    again = _post_token(registry_token, grant_type="refresh_token", refresh_token=refresh,
                        service=TOKEN_SERVICE, scope="repository:x/y:push")
    assert again.status_code == 200
    assert _jwt_parts(again.json()["token"])[1]["sub"] == registry_token.username

    online = _post_token(registry_token, grant_type="password", username=registry_token.username,
                         password=registry_token.password)
    assert online.status_code == 200 and "refresh_token" not in online.json()
    wrong = _post_token(registry_token, grant_type="password", username=registry_token.username,
                        password="nope")
    assert wrong.status_code == 401
    unsupported = _post_token(registry_token, grant_type="client_credentials")
    assert unsupported.status_code == 400


def test_token_two_scopes_in_one_param_for_mount(registry_token: RunningRegistry, unique_repo: str) -> None:
    """A mount challenge carries two space-separated scopes in one parameter."""
    issuer = registry_token.issuer
    assert issuer is not None
    source, target = f"{unique_repo}/src", f"{unique_repo}/dst"
    with _bearer_client(
        _get_token(registry_token, f"repository:{source}:pull,push", auth=_creds(registry_token)).json()[
            "token"
        ]
    ) as client:
        image = push_image(client, registry_token.url, source)

    challenge = httpx.post(
        f"{registry_token.url}/v2/{target}/blobs/uploads/",
        params={"mount": image.layer_digest, "from": source},
        timeout=TIMEOUT,
    )
    _, params = parse_challenge(challenge.headers["WWW-Authenticate"])
    assert len(params["scope"].split(" ")) == 2
    assert _scope_set(params["scope"]) == _scope_set(
        f"repository:{target}:pull,push repository:{source}:pull"
    )

    issuer.clear_requests()
    token = _get_token(registry_token, params["scope"], auth=_creds(registry_token)).json()["token"]
    access = _access(token)
    assert access.keys() == {f"repository:{source}", f"repository:{target}"}
    assert sorted(access[f"repository:{source}"]) == ["pull"]
    assert sorted(access[f"repository:{target}"]) == ["pull", "push"]
    [record] = issuer.requests
    assert record.scope_params == (params["scope"],)
    assert record.scopes == tuple(params["scope"].split(" "))

    with _bearer_client(token) as client:
        mounted = client.post(
            f"{registry_token.url}/v2/{target}/blobs/uploads/",
            params={"mount": image.layer_digest, "from": source},
        )
    assert mounted.status_code == 201


def test_token_anonymous_pull_and_require_auth_options(
    registry_factory: RegistryFactory, unique_repo: str
) -> None:
    public = registry_factory("token", anonymous_actions=("pull",))
    token = _get_token(public, f"repository:{unique_repo}:pull,push").json()["token"]
    assert _access(token) == {f"repository:{unique_repo}": ["pull"]}

    private = registry_factory("token", require_auth=True)
    assert _get_token(private, f"repository:{unique_repo}:pull").status_code == 401
    assert public.issuer is not None and private.issuer is not None
    assert public.issuer.port != private.issuer.port


def test_parse_scopes_merges_and_splits() -> None:
    got = parse_scopes(
        ["repository:a:pull repository:b:pull,push", "repository:a:push", "bogus", "registry:catalog:*"]
    )
    assert [(r.type, r.name, r.actions) for r in got] == [
        ("repository", "a", ("pull", "push")),
        ("repository", "b", ("pull", "push")),
        ("registry", "catalog", ("*",)),
    ]


# ----------------------------------------------------------------------- tls


def test_tls_with_ca_ok_and_without_ca_fails(registry_tls: RunningRegistry) -> None:
    assert registry_tls.url.startswith("https://127.0.0.1:")
    assert registry_tls.ca_file is not None and registry_tls.ca_file.is_file()
    ctx = ssl.create_default_context(cafile=str(registry_tls.ca_file))
    assert httpx.get(f"{registry_tls.url}/v2/", verify=ctx, timeout=TIMEOUT).status_code == 200
    assert (
        httpx.get(f"{registry_tls.url}/v2/", verify=registry_tls.ssl_context(), timeout=TIMEOUT).status_code
        == 200
    )
    # "localhost" is in the SAN too
    localhost = f"https://localhost:{registry_tls.port}/v2/"
    assert httpx.get(localhost, verify=ctx, timeout=TIMEOUT).status_code == 200

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{registry_tls.url}/v2/", timeout=TIMEOUT)


# ------------------------------------------------------------ harness itself


def test_factory_registry_is_stopped_and_isolated(
    registry_factory: RegistryFactory, registry_plain: RunningRegistry
) -> None:
    extra = registry_factory("plain")
    assert extra.port != registry_plain.port and extra.running
    extra.stop()
    assert not extra.running
    assert extra.process.returncode is not None
    extra.stop()  # idempotent


def test_htpasswd_over_tls_combination(registry_factory: RegistryFactory) -> None:
    reg = registry_factory("htpasswd", tls=True, username="alice", password="s3cret:with colon")
    assert reg.url.startswith("https://")
    resp = httpx.get(
        f"{reg.url}/v2/", auth=("alice", "s3cret:with colon"), verify=reg.ssl_context(), timeout=TIMEOUT
    )
    assert resp.status_code == 200


def test_start_error_includes_log(tmp_path: Path) -> None:
    with pytest.raises(RegistryStartError, match="--- log"):
        start_registry(tmp_path, "plain", extra_config={"storage": {"nosuchdriver": {}}})


def test_missing_binary_raises_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RegistryBinaryNotFoundError, match="apt-get install -y docker-registry"):
        start_registry(tmp_path, "plain")


@pytest.mark.parametrize(("ci", "expected"), [
    (None, False), ("", False), ("0", False), ("false", False), (" No ", False), ("true", True), ("1", True),
])
def test_ci_is_told_apart_from_a_laptop(monkeypatch: pytest.MonkeyPatch, ci: str | None,
                                        expected: bool) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    assert in_ci() is expected


def test_a_missing_prerequisite_skips_on_a_laptop_but_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="install: it"):
        missing("x was not found (install: it)")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="install: it"):
        missing("x was not found (install: it)")


def test_no_registry_process_leaks_after_stop(tmp_path: Path) -> None:
    reg = start_registry(tmp_path, "token")
    pid = reg.process.pid
    reg.stop()
    ps = subprocess.run(["ps", "-o", "pid=", "-p", str(pid)], capture_output=True, text=True, check=False)
    assert ps.stdout.strip() == ""
    assert reg.issuer is not None
    with pytest.raises(RuntimeError, match="not running"):
        reg.issuer.port  # noqa: B018 - the issuer was stopped with the registry
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{reg.port}/v2/", timeout=2)
