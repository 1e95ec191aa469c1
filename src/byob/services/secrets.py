"""The key that seals secrets at rest: rotating it."""

from __future__ import annotations

from byob.errors import SecretError
from byob.services.ports import Adapters


class SecretService:
    def __init__(self, adapters: Adapters) -> None:
        self.adapters = adapters

    def rotate(self, *, actor: str) -> int:
        """Re-seal every stored secret under BYOB_SECRET_KEY (opening each with it or one of
        BYOB_SECRET_KEYS_OLD), in one transaction: all of them, or none. Returns how many."""
        box = self.adapters.secrets
        resealed = 0
        with self.adapters.state.atomic() as tx:
            for connection_id, sealed in tx.connections.sealed_secrets():
                if box.sealed_by_current_key(sealed):
                    continue
                try:
                    plaintext = box.open(sealed, context=connection_id)
                except SecretError:
                    raise SecretError(
                        f"the secret of connection {connection_id} opens with none of the keys "
                        "given: add the key that sealed it to BYOB_SECRET_KEYS_OLD; nothing was "
                        "re-sealed"
                    ) from None
                tx.connections.reseal(connection_id, box.seal(plaintext, context=connection_id))
                resealed += 1
            tx.audit.record(
                actor=actor,
                action="secrets.rotate",
                connection_id=None,
                changes={"resealed": resealed, "key": box.key_id},
                now=self.adapters.clock(),
            )
        return resealed
