"""Checking a client assertion (RFC 7523 ``private_key_jwt``) against the client's JWKS.

Every failure is an ``AssertionRejected`` whose message is generic on purpose: a caller
probing the endpoint learns that its assertion failed, not which check it failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from fhir_server.storage.clients import Client, get_client, use_jti
from fhir_server.storage.database import Database

ALGORITHMS = ("RS384", "ES384")
#: Longest accepted assertion lifetime (SMART: exp no more than five minutes ahead).
MAX_LIFETIME = 300
_GENERIC = "The client assertion was not accepted"


class AssertionRejected(Exception):
    """The assertion does not authenticate a client (OAuth ``invalid_client``)."""


@dataclass
class JwksCache:
    """JWKS fetched from clients' URLs, reused for ``seconds``."""

    seconds: int
    entries: dict[str, tuple[float, dict[str, Any]]]

    def get(self, url: str) -> dict[str, Any]:
        hit = self.entries.get(url)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            response = httpx.get(url, timeout=5, follow_redirects=False)
            response.raise_for_status()
            jwks = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AssertionRejected(_GENERIC) from exc
        if not isinstance(jwks, dict):
            raise AssertionRejected(_GENERIC)
        self.entries[url] = (time.monotonic() + self.seconds, jwks)
        return jwks


def authenticate(db: Database, assertion: str, token_url: str, cache: JwksCache) -> Client:
    """The registered client that signed ``assertion``; records its jti against replay."""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AssertionRejected(_GENERIC) from exc
    alg = header.get("alg")
    client_id = unverified.get("iss")
    if alg not in ALGORITHMS or not isinstance(client_id, str):
        raise AssertionRejected(_GENERIC)
    with db.read() as conn:
        client = get_client(conn, client_id)
    if client is None:
        raise AssertionRejected(_GENERIC)
    claims = _verified_claims(assertion, alg, header.get("kid"), client, token_url, cache)
    if claims.get("sub") != client_id or claims["exp"] > time.time() + MAX_LIFETIME + 5:
        raise AssertionRejected(_GENERIC)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise AssertionRejected(_GENERIC)
    with db.write() as conn:
        fresh = use_jti(conn, client_id, jti, datetime.fromtimestamp(claims["exp"], UTC))
    if not fresh:
        raise AssertionRejected(_GENERIC)
    return client


def _verified_claims(
    assertion: str, alg: str, kid: Any, client: Client, token_url: str, cache: JwksCache
) -> dict[str, Any]:
    jwks = client.jwks if client.jwks is not None else cache.get(client.jwks_url or "")
    try:
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except (jwt.PyJWTError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise AssertionRejected(_GENERIC) from exc
    candidates = [k for k in keys if kid is None or k.key_id == kid]
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                assertion,
                key.key,
                algorithms=[alg],
                audience=token_url,
                issuer=client.client_id,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
                leeway=5,
            )
            return claims
        except jwt.PyJWTError:
            continue
    raise AssertionRejected(_GENERIC)
