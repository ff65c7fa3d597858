"""Feast's own Python SDK reading through `riffle serve` with a JWT, unchanged: the repo's
`auth: {type: oidc}` makes Feast's remote online store send `Authorization: Bearer <token>`
on every call, the token taken from `FEAST_OIDC_TOKEN` (Feast 0.67's OIDC client also
accepts `auth.token`, `auth.token_env_var`, or fetches one from an identity provider's
token endpoint with client credentials; none is installed here, so the test plays the
provider: it makes an RSA key, writes its JWKS beside Riffle's registry and signs RS256
tokens with it, as Keycloak does by default). Riffle verifies them against `[auth.jwt]`.

Checks: a token with a mapped read role reads what was written (feature views and a
feature service); the read role cannot write (403); an unmapped role cannot read (403);
expired, wrong-audience and forged tokens are refused (401), as is the unsigned
(`alg: none`) token Feast makes for its own services' intra-communication; no token or
claim reaches serve's log.

Usage: test_feast_jwt.py RIFFLE_BIN FIXTURES_TOML APPLIED_REGISTRY_DB WORK_DIR (run by
run.sh). Prints one line per check and `N passed, N failed` at the end.
"""
import base64
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from feast import FeatureStore

riffle, fixtures, applied_registry, work = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
work.mkdir(parents=True, exist_ok=True)
passed = failed = 0
ISSUER = "https://idp.example.com/realms/feast"
AUDIENCE = "riffle"
CLIENT = "feast"


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


# --- The identity provider's half: RSA keys and RS256 signatures (RFC 8017), in plain
# Python because the Feast venv has no crypto library but PyJWT's HMAC. -------------------
def _probable_prime(n):
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(40):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits):
    while True:
        c = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if _probable_prime(c):
            return c


def rsa_key(bits=2048):
    e = 65537
    while True:
        p, q = _prime(bits // 2), _prime(bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e != 0:
            return p * q, e, pow(e, -1, phi)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_bytes(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


N, E, D = rsa_key()
KID = "feast-test-key"
SHA256_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


def rs256(header, claims, d=D, n=N):
    message = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    k = (n.bit_length() + 7) // 8
    t = SHA256_INFO + hashlib.sha256(message.encode()).digest()
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return f"{message}.{b64(pow(int.from_bytes(em, 'big'), d, n).to_bytes(k, 'big'))}"


def token(roles, exp_in=300, aud=AUDIENCE, d=D, n=N):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": aud,
        "sub": "feast-test-subject",
        "iat": now,
        "exp": now + exp_in,
        "azp": CLIENT,
        # Where Keycloak puts a client's roles, and where Feast's own OIDC parser looks.
        "resource_access": {CLIENT: {"roles": roles}},
    }
    return rs256({"alg": "RS256", "typ": "JWT", "kid": KID}, claims, d, n)


(work / "jwks.json").write_text(
    json.dumps({"keys": [{"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256",
                          "n": b64(int_bytes(N)), "e": b64(int_bytes(E))}]})
)
(work / "riffle.toml").write_text(
    Path(fixtures).read_text()
    + f"""
[auth.jwt]
jwks = "jwks.json"
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
roles_claim = "resource_access.{CLIENT}.roles"

[auth.jwt.roles]
feast-reader = ["read:service:fraud_v1"]
feast-writer = ["write"]
"""
)

# --- Riffle ------------------------------------------------------------------------------
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
log = open(work / "serve.log", "w")
serve = subprocess.Popen(
    [riffle, "serve", "--config", str(work / "riffle.toml"), "--store", f"embedded:{work}/data",
     "--listen", f"127.0.0.1:{port}"],
    stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "debug"},
)
try:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            if serve.poll() is not None:
                sys.exit(f"riffle serve exited: {(work / 'serve.log').read_text()}")
            time.sleep(0.1)

    repo = work / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        f"""project: fixtures
provider: local
registry: {applied_registry}
online_store:
  type: remote
  path: http://127.0.0.1:{port}
offline_store:
  type: file
auth:
  type: oidc
entity_key_serialization_version: 3
"""
    )
    store = FeatureStore(repo_path=str(repo))
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def as_token(t):
        os.environ["FEAST_OIDC_TOKEN"] = t

    def refused(call):
        try:
            call()
            return "no error"
        except Exception as e:  # Feast raises RuntimeError with the status in its text
            return str(e)

    def write():
        store.write_to_online_store(
            feature_view_name="user_profile",
            df=pd.DataFrame({
                "user_id": ["j1"], "event_timestamp": [now], "credit_score_bucket": [5],
                "is_premium": [True], "segment": ["jwt"], "embedding": [[1.0, 2.0]],
            }),
        )

    def read():
        return store.get_online_features(
            features=["user_profile:credit_score_bucket", "user_profile:segment"],
            entity_rows=[{"user_id": "j1"}],
        ).to_dict()

    writer = token(["feast-writer"])
    reader = token(["feast-reader", "offline_access"])
    as_token(writer)
    write()
    check("a writer role's token writes through Feast", True)

    as_token(reader)
    out = read()
    check("a read role's token reads through Feast",
          out.get("credit_score_bucket") == [5] and out.get("segment") == ["jwt"], out)
    svc = store.get_online_features(
        features=store.get_feature_service("fraud_v1"), entity_rows=[{"user_id": "j1"}]
    ).to_dict()
    check("a read role's token reads a feature service", svc.get("credit_score_bucket") == [5], svc)
    err = refused(write)
    check("the read role cannot write (403)", "403" in err, err)

    as_token(token(["some-other-role"]))
    err = refused(read)
    check("a token without a mapped role cannot read (403)", "403" in err, err)

    other_n, _, other_d = rsa_key()
    bad = {
        "expired": token(["feast-reader"], exp_in=-300),
        "wrong audience": token(["feast-reader"], aud="account"),
        "forged": token(["feast-reader"], d=other_d, n=other_n),
    }
    for what, t in bad.items():
        as_token(t)
        err = refused(read)
        check(f"an {what} token is refused (401)" if what[0] in "aeiou" else f"a {what} token is refused (401)",
              "401" in err, err)

    # Feast's intra-communication token: `alg: none`, unsigned.
    os.environ["INTRA_COMMUNICATION_BASE64"] = b64(b"feast-intra")
    err = refused(read)
    check("Feast's unsigned intra-communication token is refused (401)", "401" in err, err)
    del os.environ["INTRA_COMMUNICATION_BASE64"]
finally:
    serve.terminate()
    serve.wait(timeout=30)
    log.close()

text = (work / "serve.log").read_text()
leaks = [t for t in [writer, reader, *bad.values()] if t in text or t.split(".")[1] in text]
check("no token reaches serve's log", not leaks and "feast-test-subject" not in text)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
