"""The JWT signing key and its public JWKS (``/.well-known/jwks.json``)."""

from __future__ import annotations

from typing import Any

from joserfc.jwk import RSAKey


class SigningKeys:
    def __init__(self, private_pem: bytes) -> None:
        self.private = RSAKey.import_key(private_pem)
        # kid: the RFC 7638 thumbprint, stable for the key's lifetime.
        self.kid = self.private.thumbprint()
        self._public = self.private.as_dict(private=False, kid=self.kid, use="sig", alg="RS256")

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self._public]}
