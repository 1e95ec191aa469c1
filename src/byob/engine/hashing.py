"""Hashed columns: a model's ``hash`` columns leave the process only as hashes.

A hashed column is read as the source's text form of its value (``value::text`` in
PostgreSQL, ``CAST(value AS TEXT)`` in SQLite), then replaced, right after the batch is read
and before it is encoded, by HMAC-SHA256 keyed with the installation's salt (BYOB_HASH_SALT),
in lowercase hex. The same value hashes the same in every transfer and for every tenant of one
installation, so recipients can still join and count on it; without the salt, a guessable
value (an email) cannot be confirmed by hashing guesses. NULL stays NULL.

pyarrow has no SHA-256 kernel, so each *distinct* value of a batch is hashed once in Python;
a batch's repeated values cost a dictionary lookup.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pyarrow.compute as pc

from byob.domain.models import ResolvedModel
from byob.errors import ConfigError


class ColumnHasher:
    """Hashes values with one installation's salt."""

    def __init__(self, salt: bytes) -> None:
        if not salt:
            raise ValueError("the salt must not be empty")
        self._keyed = hmac.new(salt, digestmod=hashlib.sha256)

    def digest(self, value: str) -> str:
        mac = self._keyed.copy()  # the salt's key schedule, computed once
        mac.update(value.encode())
        return mac.hexdigest()

    def hash_array(self, array: pa.Array) -> pa.Array:
        """The hex hashes of a string array's values (NULL stays NULL)."""
        encoded = pc.dictionary_encode(array)
        digests = pa.array([self.digest(v) for v in encoded.dictionary.to_pylist()], pa.string())
        return pc.take(digests, encoded.indices)


def hash_columns(
    batch: pa.RecordBatch, model: ResolvedModel, hasher: ColumnHasher | None
) -> pa.RecordBatch:
    """The batch with the model's hashed columns (strings, by their delivered names) hashed."""
    hashed = model.hashed_columns
    if not hashed:
        return batch
    if hasher is None:
        raise missing_salt(model)
    arrays = list(batch.columns)
    for column in hashed:
        index = batch.schema.get_field_index(column.name)
        arrays[index] = hasher.hash_array(arrays[index])
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def missing_salt(model: ResolvedModel) -> ConfigError:
    return ConfigError(
        f"model {model.name!r} hashes {', '.join(c.source_name for c in model.hashed_columns)} "
        "but no hash salt was given; set BYOB_HASH_SALT",
        field="BYOB_HASH_SALT",
    )
