"""What to do when a transfer fails: retry transient errors with backoff and jitter; stop on
permission and configuration errors, which no retry fixes, until the connection revalidates."""

from __future__ import annotations

import random
from enum import StrEnum

from byob.errors import ByobError, ConfigError, DestinationError, SchemaChangeError, SourceError

# AWS answers that mean the recipient's setup no longer lets byob write.
PERMANENT_AWS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "403",
        "NoSuchBucket",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidClientTokenId",
        "PermanentRedirect",
        "AuthorizationHeaderMalformed",
        "KMS.AccessDeniedException",
        "KMS.DisabledException",
        "EntityNotFoundException",
        "InvalidRequestException",
    }
)


class Verdict(StrEnum):
    RETRY = "retry"  # throttling, timeouts, networks, a database restart
    CONNECTION_FAILING = "connection_failing"  # the recipient must fix something
    MODEL_FAILING = "model_failing"  # the operator must fix the model or source schema


def classify(exc: BaseException) -> Verdict:
    if isinstance(exc, DestinationError):
        return Verdict.CONNECTION_FAILING if exc.aws_code in PERMANENT_AWS_CODES else Verdict.RETRY
    if isinstance(exc, SchemaChangeError | ConfigError):
        return Verdict.MODEL_FAILING
    if isinstance(exc, SourceError):
        return Verdict.RETRY
    if isinstance(exc, ByobError):
        cause = exc.__cause__
        return classify(cause) if cause is not None else Verdict.RETRY
    return Verdict.RETRY


def backoff(
    attempt: int, *, base: float = 2.0, cap: float = 300.0, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): exponential, capped, full jitter."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)


def is_final(verdict: Verdict, *, attempt: int, max_attempts: int) -> bool:
    """No retry follows this failure: it needs a person, or the attempts are spent."""
    return verdict is not Verdict.RETRY or attempt >= max_attempts
