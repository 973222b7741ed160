"""Access tokens of an external OpenID Connect issuer (e.g. Keycloak), when one is configured.

Checked like the server's own tokens (issuer, audience, expiry, signature by a key of the
issuer's JWKS); the client kind and the access-rule attributes come from configurable claims
and the scopes from ``scope``.
"""

from __future__ import annotations

from typing import Any

import jwt

from fhir_server.auth.assertion import AssertionRejected, JwksCache
from fhir_server.auth.principal import Principal
from fhir_server.auth.tokens import TokenError
from fhir_server.settings import Settings

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384"]
_INVALID = "The access token is not valid"


def _attributes(value: Any) -> dict[str, str]:
    """The access-rule attributes (``ik``, ``team``, ``org``) of an object claim; strings only."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str) and v}


def is_external(settings: Settings, token: str) -> bool:
    """Whether ``token`` claims to come from the configured external issuer."""
    if not settings.auth_external_issuer:
        return False
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return bool(claims.get("iss") == settings.auth_external_issuer)


def verify_external(settings: Settings, token: str, audience: str, cache: JwksCache) -> Principal:
    """The principal of a valid external token; TokenError (general wording) otherwise."""
    try:
        header = jwt.get_unverified_header(token)
        jwks = cache.get(settings.auth_external_jwks_url)
        keys = jwt.PyJWKSet.from_dict(jwks).keys
    except (AssertionRejected, jwt.PyJWTError, TypeError, ValueError, KeyError) as exc:
        raise TokenError(_INVALID) from exc
    if header.get("alg") not in ALGORITHMS:
        raise TokenError(_INVALID)
    kid = header.get("kid")
    for key in [k for k in keys if kid is None or k.key_id == kid]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[header["alg"]],
                audience=settings.auth_external_audience or audience,
                issuer=settings.auth_external_issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("The access token has expired") from exc
        except jwt.PyJWTError:
            continue
        client_id = claims.get("azp") or claims.get("client_id") or claims["sub"]
        return Principal(
            client_id=str(client_id),
            kind=str(claims.get(settings.auth_external_kind_claim, "")),
            scopes=tuple(str(claims.get("scope", "")).split()),
            attributes=_attributes(claims.get(settings.auth_external_attributes_claim)),
        )
    raise TokenError(_INVALID)
