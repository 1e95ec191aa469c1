"""CloudFormation templates in the vendor's own bucket (BYOB_TEMPLATE_BUCKET), for the AWS
console's Launch stack link: AWS documents a quick-create link's templateURL as an Amazon S3
URL, so byob uploads the template with its own identity and links a presigned URL of it (no
public bucket needed; the URL is the only key)."""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from byob.aws.sessions import AwsSessions, aws_error_code
from byob.errors import TemplateBucketError

# A HEAD has no body, so its errors carry only the HTTP status.
_HEAD_CODES = {"403": "AccessDenied", "404": "NoSuchBucket"}


class S3TemplateStore:
    """Uploads a template and presigns a GET of it, with byob's own AWS identity."""

    def __init__(self, aws: AwsSessions) -> None:
        self._aws = aws
        # By bucket: a client in its region. Made once: building a client costs ~40 ms, more
        # than the PUT (~10 ms against the emulator).
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def publish(self, *, bucket: str, key: str, text: str, expires_in: int) -> str:
        """Put the template at s3://bucket/key (each time: one small PUT costs what the
        HEAD deciding whether to skip it would) and return a presigned URL of it."""
        try:
            client = self._client(bucket)
            client.put_object(
                Bucket=bucket, Key=key, Body=text.encode(), ContentType="application/json"
            )
            url: str = client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        except (ClientError, BotoCoreError) as exc:
            code = aws_error_code(exc)
            raise TemplateBucketError(
                f"cannot upload the CloudFormation template to s3://{bucket}/{key} ({code})",
                aws_code=code,
            ) from exc
        return url

    def _client(self, bucket: str) -> Any:
        with self._lock:
            known = self._clients.get(bucket)
        if known is None:
            known = self._aws.presigning_s3_client(self._region(bucket))
            with self._lock:
                self._clients[bucket] = known
        return known

    def _region(self, bucket: str) -> str:
        """The bucket's region, asked of S3 once per process: a presigned URL is signed for
        one region, and byob does not otherwise know where the vendor keeps the bucket."""
        client = self._aws.service_client("s3")
        try:
            headers = _headers(client.head_bucket(Bucket=bucket))
        except ClientError as exc:
            # S3 names the region even when it refuses the HEAD itself (403), so byob needs
            # no s3:ListBucket on the bucket.
            headers = _headers(exc.response)
            if "x-amz-bucket-region" not in headers:
                code = aws_error_code(exc)
                raise TemplateBucketError(
                    f"cannot find bucket {bucket} ({_HEAD_CODES.get(code, code)})",
                    aws_code=_HEAD_CODES.get(code, code),
                ) from exc
        return headers.get("x-amz-bucket-region") or str(client.meta.region_name)


def _headers(response: Any) -> dict[str, str]:
    return dict(response.get("ResponseMetadata", {}).get("HTTPHeaders", {}))
