"""The server's own access tokens: an ES384 key kept in the database, minting and checking.

The key lives in the database (table ``auth_keys``) rather than a file: every worker and
every host of one deployment then signs and checks with the same key, and nothing else needs
provisioning. It is created on first use; the fixed key id makes concurrent first starts
agree on one key.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fhir_server.auth.principal import Principal
from fhir_server.storage.clients import SigningKey, add_signing_key, signing_key
from fhir_server.storage.database import Database

ALGORITHM = "ES384"
KID = "ivz-server-1"


class TokenError(Exception):
    """An access token that must be refused; the message is safe to show."""


@dataclass(frozen=True)
class ServerKey:
    kid: str
    private: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (for ``/auth/jwks``)."""
        jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(
            self.private.public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def load_key(db: Database) -> ServerKey:
    """The deployment's signing key, created and stored on first use."""
    with db.read() as conn:
        stored = signing_key(conn, KID)
    if stored is None:
        private = ec.generate_private_key(ec.SECP384R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        with db.write() as conn:
            add_signing_key(conn, SigningKey(KID, ALGORITHM, pem))
        with db.read() as conn:
            stored = signing_key(conn, KID)
        assert stored is not None
    private_key = serialization.load_pem_private_key(stored.private_pem.encode(), password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    return ServerKey(stored.kid, private_key)


def mint(
    key: ServerKey,
    principal: Principal,
    issuer: str,
    audience: str,
    lifetime: int,
) -> str:
    """A signed access token carrying everything the middleware needs (no lookup per request)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": principal.client_id,
        "client_id": principal.client_id,
        "scope": " ".join(principal.scopes),
        "ivz_kind": principal.kind,
        "ivz_attributes": principal.attributes,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})


def verify(key: ServerKey, token: str, issuer: str, audience: str) -> Principal:
    """The principal of a valid token; TokenError (general wording) for anything else."""
    try:
        claims = jwt.decode(
            token,
            key.private.public_key(),
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            leeway=5,
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("The access token has expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("The access token is not valid") from exc
    attributes = claims.get("ivz_attributes") or {}
    if not isinstance(attributes, dict):
        raise TokenError("The access token is not valid")
    return Principal(
        client_id=str(claims["sub"]),
        kind=str(claims.get("ivz_kind", "")),
        scopes=tuple(str(claims.get("scope", "")).split()),
        attributes={str(k): str(v) for k, v in attributes.items()},
    )
