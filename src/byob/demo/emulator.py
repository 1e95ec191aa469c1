"""A local AWS for the demo and the tests: a moto server on 127.0.0.1 speaking the real wire
protocols, and a "customer" account that creates its bucket and the role byob asked for."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

# The emulator accepts any credentials; these name the vendor's (byob's own) account.
SERVICE_ACCOUNT_ID = "123456789012"
EMULATOR_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class LocalAws:
    """An in-process moto server on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint_url = ""

    def start(self) -> LocalAws:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Wipe every account's state (between tests)."""
        self._post("/moto-api/reset", b"")

    def enforce_iam(self, on: bool) -> None:
        """Switch IAM enforcement server-wide (off by default: moto then checks nothing)."""
        self._post("/moto-api/reset-auth", b"0" if on else b"inf")

    def _post(self, path: str, body: bytes) -> None:
        # A form content type would make the server parse (and swallow) the raw body.
        request = urllib.request.Request(
            self.endpoint_url + path,
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def service_session(self) -> boto3.Session:
        """byob's own identity in the vendor's account."""
        return boto3.Session(
            aws_access_key_id=EMULATOR_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=EMULATOR_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def create_service_user(self, name: str = "byob-service") -> dict[str, str]:
        """A real IAM user for byob in the vendor's account, allowed to assume roles: with IAM
        enforcement on, the emulator's dummy keys are refused."""
        iam = self.service_session().client("iam", endpoint_url=self.endpoint_url)
        iam.create_user(UserName=name)
        iam.put_user_policy(
            UserName=name,
            PolicyName="assume-customer-roles",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }

    def customer(self, account_id: str, region: str = "us-east-1") -> CustomerAccount:
        """An administrator of another AWS account (the recipient's)."""
        sts = self.service_session().client("sts", endpoint_url=self.endpoint_url)
        creds = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
            RoleSessionName="customer-admin",
        )["Credentials"]
        session = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=region,
        )
        return CustomerAccount(
            account_id=account_id, region=region, session=session, endpoint_url=self.endpoint_url
        )


@contextmanager
def local_aws() -> Iterator[LocalAws]:
    aws = LocalAws().start()
    try:
        yield aws
    finally:
        aws.stop()


@contextmanager
def emulator_credentials() -> Iterator[None]:
    """Point the standard AWS credential chain at the emulator's dummy keys."""
    saved = {k: os.environ.get(k) for k in EMULATOR_CREDENTIALS}
    os.environ.update(EMULATOR_CREDENTIALS)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class CustomerAccount:
    account_id: str
    region: str
    session: boto3.Session
    endpoint_url: str

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url, region_name=self.region)

    def create_bucket(self, bucket: str) -> None:
        s3 = self.client("s3")
        if self.region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.region}
            )

    def create_role(
        self, name: str, trust_policy: dict[str, Any], permissions: dict[str, Any]
    ) -> str:
        """What the recipient does in the IAM console with the policies byob showed them."""
        iam = self.client("iam")
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy))[
            "Role"
        ]["Arn"]
        iam.put_role_policy(
            RoleName=name, PolicyName="byob-transfer", PolicyDocument=json.dumps(permissions)
        )
        return str(arn)

    def keys(self, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
        paginator = self.client("s3").get_paginator("list_objects_v2")
        out: list[dict[str, Any]] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            out += page.get("Contents", [])
        return out

    def credentials(self) -> dict[str, str]:
        frozen = self.session.get_credentials().get_frozen_credentials()
        return {"key": frozen.access_key, "secret": frozen.secret_key, "token": frozen.token or ""}
