"""AWS error codes in words a recipient can act on."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from byob.aws.sessions import aws_error_code
from byob.errors import DestinationError

_WHAT_TO_DO = {
    "AccessDenied": "the permissions policy attached to {who} must allow {action} on {resource}",
    "AllAccessDisabled": "access to bucket {bucket} is disabled; contact AWS support",
    "NoSuchBucket": "bucket {bucket} does not exist; create it, or fix the bucket name",
    "PermanentRedirect": "bucket {bucket} is not in region {region}; set the bucket's real region",
    "AuthorizationHeaderMalformed": "bucket {bucket} is not in region {region}; set the bucket's real region",
    "IllegalLocationConstraintException": "bucket {bucket} is not in region {region}; set the bucket's real region",
    "InvalidAccessKeyId": "the access key ID is not known to AWS; check it, or create a new key",
    "SignatureDoesNotMatch": "the secret access key does not match the access key ID; paste the secret again",
    "ExpiredToken": "byob's credentials expired; retry (byob refreshes them automatically)",
    "KMS.AccessDeniedException": "the bucket encrypts with SSE-KMS: {who} also needs kms:GenerateDataKey and kms:Decrypt on the key",
    "NoSuchUpload": "the upload was already finished or aborted",
}

TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ThrottlingException",
        "RequestTimeTooSkewed",
        "503",
        "500",
    }
)


def explain(
    exc: BaseException, *, action: str, resource: str, who: str, bucket: str, region: str
) -> DestinationError:
    """Turn a boto3 error into a DestinationError that names the call, the object and the fix."""
    code = aws_error_code(exc)
    if isinstance(exc, ClientError):
        raw = exc.response.get("Error", {}).get("Message", "")
        hint = _WHAT_TO_DO.get(code, "")
        fix = hint.format(who=who, action=action, resource=resource, bucket=bucket, region=region)
        message = f"{code} on {action.removeprefix('s3:')} to {resource}: {fix or raw}"
        return DestinationError(message, aws_code=code)
    if isinstance(exc, EndpointConnectionError):
        return DestinationError(
            f"cannot reach the AWS endpoint: {exc}", aws_code="EndpointConnectionError"
        )
    if isinstance(exc, BotoCoreError):
        return DestinationError(f"{action} to {resource} failed: {exc}", aws_code=code)
    return DestinationError(f"{action} to {resource} failed: {exc}", aws_code=code)
