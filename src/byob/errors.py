"""One root for every error byob raises on purpose.

Each subclass says what went wrong; the message says what to do about it. Library errors are
translated at the boundary (``raise SourceError(...) from exc``) and reported in exactly one
place per interface: the CLI prints one line and exits 1, the API returns a JSON error body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from byob.domain.imports import RowProblem


class ByobError(Exception):
    """Something went wrong in byob."""

    code = "byob_error"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.field = field
        super().__init__(self.message)

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


class InvalidFieldError(ByobError):
    """A field has a value byob refuses."""

    code = "invalid_field"


class ConfigError(ByobError):
    """The configuration (settings or models file) is not valid."""

    code = "invalid_config"


class TemplateBucketError(ConfigError):
    """byob could not upload a CloudFormation template to BYOB_TEMPLATE_BUCKET."""

    code = "template_bucket_error"

    def __init__(self, message: str | None = None, *, aws_code: str) -> None:
        super().__init__(message, field="BYOB_TEMPLATE_BUCKET")
        self.aws_code = aws_code


class NotFoundError(ByobError):
    """The thing asked for does not exist."""

    code = "not_found"


class ConflictError(ByobError):
    """The request conflicts with the current state."""

    code = "conflict"


class NullCursorError(ConfigError):
    """Rows of a model have a NULL cursor value: they belong to no transfer window."""

    code = "null_cursor"


class SourceError(ByobError):
    """The source database refused or failed a request."""

    code = "source_error"


class DestinationError(ByobError):
    """The destination refused or failed a request."""

    code = "destination_error"

    def __init__(
        self, message: str | None = None, *, field: str | None = None, aws_code: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.aws_code = aws_code


class SchemaChangeError(ByobError):
    """The source schema changed in a way byob will not write silently."""

    code = "schema_change"


class TransferError(ByobError):
    """A transfer could not complete; nothing past its last durable step was committed."""

    code = "transfer_failed"


class SecretError(ByobError):
    """A sealed secret could not be opened: the secret key is wrong or the value is corrupt."""

    code = "secret_error"


class ManifestError(ByobError):
    """A manifest did not verify: its signature, its key or one of its files."""

    code = "manifest_invalid"


class AuthenticationError(ByobError):
    """Missing or unknown credentials: send `Authorization: Bearer <API key or link token>`."""

    code = "unauthenticated"


class PermissionDeniedError(ByobError):
    """These credentials may not do this."""

    code = "forbidden"


class GoneError(ByobError):
    """This link can no longer be used."""

    code = "gone"


class FileRejectedError(ByobError):
    """A file to import was refused whole; nothing of it was loaded."""

    code = "file_rejected"

    def __init__(self, problems: tuple[RowProblem, ...], *, field: str | None = None) -> None:
        self.problems = problems
        first = "; ".join(str(p) for p in problems)
        super().__init__(f"file rejected: {first}" if first else None, field=field)
