"""Operator API keys: issued once, stored hashed, revocable at once."""

from __future__ import annotations

from byob.domain import credentials
from byob.domain.credentials import ApiKey
from byob.errors import AuthenticationError, InvalidFieldError
from byob.services.ports import Adapters
from byob.services.principals import Principal


class ApiKeyService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters
        self.keys = adapters.state.api_keys

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key; the token is returned once and stored only as a hash."""
        if not name or len(name) > 128:
            raise InvalidFieldError("an API key needs a name of 1-128 characters", field="name")
        token = credentials.new_token(credentials.API_KEY_PREFIX)
        return self.keys.add(name, token, now=self.adapters.clock()), token

    def all(self) -> list[ApiKey]:
        return self.keys.all()

    def revoke(self, name: str) -> None:
        self.keys.revoke(name, now=self.adapters.clock())

    def operator(self, token: str) -> Principal:
        """The operator a key belongs to, if it is live."""
        key = self.keys.find(token) if token.startswith(credentials.API_KEY_PREFIX) else None
        if key is None:
            raise AuthenticationError("unknown or revoked credentials")
        return Principal(actor=f"operator:{key.name}")

    def find(self, token: str) -> ApiKey | None:
        return self.keys.find(token) if token.startswith(credentials.API_KEY_PREFIX) else None

    def is_live(self, key_id: str) -> bool:
        return self.keys.is_live(key_id)
