"""Property-based fuzzing of every operation in the OpenAPI document the running server
publishes (hypothesis; schemathesis is not a dependency): random path parameters, query
parameters and JSON bodies (unicode, huge numbers, nulls, nested objects, wrong types, unknown
fields, bodies that are not JSON at all), sent with an operator key, with link tokens, with
nothing and with garbage. No answer may be a 5xx, and every non-2xx answer is a JSON error
with a code and a message."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.api.conftest import Server
from tests.integration.api.helpers import API, error_of, ok, unique
from tests.support import CUSTOMER

pytestmark = pytest.mark.integration

METHODS = ("get", "post", "put", "patch", "delete")
# Examples differ from run to run (not derandomized), so every CI run tries new ones.
FUZZ = settings(
    max_examples=20,
    deadline=None,
    database=None,
    derandomize=False,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# NUL is refused by PostgreSQL text columns: it has its own test below (a known bug), so the
# fuzz leaves it out to look for other failures. Surrogates cannot be encoded at all.
EXCLUDED = "\x00"
NASTY = [
    "",
    " ",
    "..",
    "../..",
    "/",
    "%",
    "%00",
    "%2F",
    "?",
    "#",
    "'",
    '"',
    "\\",
    "' OR '1'='1",
    "; DROP TABLE connections; --",
    "${jndi:ldap://x}",
    "{{7*7}}",
    "<script>alert(1)</script>",
    "\u202e",
    "\u2028",
    "\ufeff",
    "\U0001f600" * 3,
    "é" * 300,
    "a" * 5000,
    "\t\r\n",
    "\x7f",
    "null",
    "true",
    "-1",
    "1e309",
    "NaN",
    "0x10",
    "9" * 50,
    "byob_link_",
    "byob_key_",
    "arn:aws:iam::210987654321:role/x",
    "s3://bucket/key",
]
TEXT = st.one_of(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters=EXCLUDED),
        max_size=80,
    ),
    st.sampled_from([n for n in NASTY if EXCLUDED not in n]),
    st.lists(
        st.sampled_from([n for n in NASTY if EXCLUDED not in n and len(n) < 100]),
        min_size=2,
        max_size=4,
    ).map("".join),
)
BIG = st.integers(min_value=-(10**40), max_value=10**40)
LEAF = st.one_of(
    st.none(),
    st.booleans(),
    BIG,
    st.integers(-3, 2000),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)

PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "name": st.from_regex(r"fz-[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True),
    "tenant": st.sampled_from(["acme", "globex", "fuzz tenant", "ünïcode-☃"]),
    "type": st.sampled_from(["s3", "athena", "local", "S3"]),
    "account_id": st.sampled_from([CUSTOMER, "123456789012", "12345678901", "x" * 12]),
    "bucket": st.sampled_from(["fuzz-bucket", "fuzz.bucket.1", "Fuzz_Bucket", "xn--bad", "ab"]),
    "region": st.sampled_from(["eu-west-1", "us-east-1", "us-gov-west-1", "mars-1"]),
    "base_path": st.sampled_from(["", "exports", "a/b/c", "/abs", "a/../b", "_hidden", "a//b"]),
    "auth": st.sampled_from(["role", "hmac", "none"]),
    "role_arn": st.sampled_from(
        [f"arn:aws:iam::{CUSTOMER}:role/fuzz", "arn:aws:iam::1:role/x", "not an arn"]
    ),
    "access_key_id": st.sampled_from(["AKIAIOSFODNN7EXAMPLE", "akia", "A" * 200]),
    "secret_access_key": st.sampled_from(["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "short"]),
    "workgroup": st.sampled_from(["primary", "wg 1", ""]),
    "schema": st.sampled_from(["sales", "Sales", "", "results"]),
    "database": st.sampled_from(["results", "sales", "", "a" * 300]),
    "frequency_minutes": st.sampled_from([15, 60, 360, 720, 1440, 0, 7, -15]),
    "expires": st.sampled_from(["7d", "12h", "30m", "0m", "91d", "9999d", "1m"]),
    "model": st.sampled_from(["invoices", "nope"]),
    "full_refresh": st.booleans(),
    "limit": st.sampled_from([1, 2, 50, 500, 0, 501, -1]),
    # Page cursors: none, forged, and well-formed ones byob never handed out.
    "after": st.sampled_from(["", "x", "!!", "MjAyNi0xMi0wMlQwMDowMDowMCswMDowMHw" + "A" * 40]),
    "before": st.sampled_from(["", "=", "MjAyNi0xMi0wMlQwMDowMDowMCswMDowMHxhYWFh"]),
}


RAW_BODIES = [b"{", b"not json", b"\xff\xfe", b"[1, 2", b'{"a": 1}{"b": 2}', b"null", b"1e999"]
AUTHS = ["operator", "link", "linked", "none", "garbage"]
RECIPIENT = f"{API}/recipient/"


def deref(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def by_type(document: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of the declared type (right type, random content)."""
    schema = deref(document, schema)
    if "anyOf" in schema:
        return st.one_of(*(by_type(document, s) for s in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    return {
        "string": TEXT,
        "integer": st.one_of(BIG, st.integers(-3, 2000)),
        "number": st.floats(allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(),
        "null": st.none(),
        "array": st.lists(JSON, max_size=3),
        "object": st.dictionaries(TEXT, JSON, max_size=3),
    }.get(schema.get("type", ""), JSON)


def value_for(
    document: dict[str, Any], name: str, schema: dict[str, Any]
) -> st.SearchStrategy[Any]:
    """A plausible value (often valid), one of the right type, or anything at all."""
    options = [by_type(document, schema), JSON]
    if name in PLAUSIBLE:
        options = [PLAUSIBLE[name], PLAUSIBLE[name], *options]
    return st.one_of(*options)


def body_for(document: dict[str, Any], operation: dict[str, Any]) -> st.SearchStrategy[Any]:
    """("json", value), ("raw", bytes) or ("none", None)."""
    anything = st.one_of(
        JSON.map(lambda v: ("json", v)),
        st.sampled_from(RAW_BODIES).map(lambda b: ("raw", b)),
        st.just(("none", None)),
    )
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return anything
    schema = deref(document, content["schema"])
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    fields = st.fixed_dictionaries(
        {k: value_for(document, k, v) for k, v in properties.items() if k in required},
        optional={k: value_for(document, k, v) for k, v in properties.items() if k not in required},
    )
    unknown = st.dictionaries(
        st.sampled_from(["tenant", "id", "status", "external_id", "x"]) | TEXT, JSON, max_size=2
    )
    structured = st.tuples(fields, unknown, st.integers(0, 3)).map(
        lambda t: ("json", {**t[1], **t[0]} if t[2] == 0 else t[0])
    )
    return st.one_of(structured, structured, structured, anything)


def query_for(
    document: dict[str, Any], operation: dict[str, Any]
) -> st.SearchStrategy[dict[str, str]]:
    declared = [p for p in operation.get("parameters", []) if p["in"] == "query"]
    as_text = lambda v: v if isinstance(v, str) else json.dumps(v)  # noqa: E731
    known = st.fixed_dictionaries(
        {},
        optional={
            p["name"]: value_for(document, p["name"], p.get("schema", {})).map(as_text)
            for p in declared
        },
    )
    extra = st.dictionaries(st.sampled_from(["name", "id", "tenant", "x"]) | TEXT, TEXT, max_size=2)
    return st.tuples(known, extra).map(lambda t: {**t[1], **t[0]})


def path_for(
    path: str, operation: dict[str, Any], known: dict[str, list[str]]
) -> st.SearchStrategy[str]:
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
    values = st.fixed_dictionaries(
        {n: st.one_of(st.sampled_from(known.get(n) or ["x"]), TEXT, BIG.map(str)) for n in names}
    )
    return values.map(lambda v: path.format(**{k: quote(x, safe="") for k, x in v.items()}))


def check(response: httpx.Response, auth: str, path: str) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:500]}"
    if 200 <= status < 300:
        if status != 204:
            response.json()
        # Who may succeed where: links only on recipient endpoints, operators only elsewhere.
        assert auth not in ("none", "garbage"), "an unauthenticated request succeeded"
        if auth in ("link", "linked"):
            assert path.startswith(RECIPIENT), "a link succeeded on an operator endpoint"
        else:
            assert not path.startswith(RECIPIENT), (
                "an operator key succeeded on a recipient endpoint"
            )
    else:
        error_of(response)


@pytest.fixture
def fuzz_targets(server: Server, ops: httpx.Client, aws: Any) -> dict[str, Any]:
    """Tokens and names for the fuzz. `aws` wipes the emulator, so no bucket exists and no
    connection can pass validation: nothing becomes active, and no transfer ever starts."""
    conn = ok(
        ops.post(
            f"{API}/connections",
            json={
                "name": unique("fuzz"),
                "tenant": "fuzz",
                "account_id": CUSTOMER,
                "bucket": unique("fuzz"),
                "region": "eu-west-1",
            },
        ),
        201,
    )
    link = ok(ops.post(f"{API}/links", json={"tenant": unique("fuzz")}), 201)
    linked = ok(ops.post(f"{API}/links", json={"tenant": unique("fuzz")}), 201)
    spare = ok(ops.post(f"{API}/links", json={"tenant": unique("fuzz")}), 201)
    with server.client(linked["token"]) as recipient:
        ok(
            recipient.post(
                f"{API}/recipient/connection",
                json={
                    "name": unique("fuzz-linked"),
                    "account_id": CUSTOMER,
                    "bucket": unique("fuzz"),
                    "region": "eu-west-1",
                },
            ),
            201,
        )
    return {
        "tokens": {
            "operator": server.token,
            "link": link["token"],
            "linked": linked["token"],
            "none": "",
            "garbage": "byob_key_" + "x" * 43,
        },
        "known": {
            "name": [conn["name"], conn["id"]],
            "link_id": [spare["id"]],
            "transfer_id": ["0" * 32],
        },
    }


def fuzz_operation(
    server: Server,
    document: dict[str, Any],
    method: str,
    path: str,
    operation: dict[str, Any],
    targets: dict[str, Any],
) -> Callable[[], None]:
    @FUZZ
    @given(
        url=path_for(path, operation, targets["known"]),
        params=query_for(document, operation),
        body=body_for(document, operation),
        auth=st.sampled_from(AUTHS),
    )
    def run(url: str, params: dict[str, str], body: tuple[str, Any], auth: str) -> None:
        kind, value = body
        options: dict[str, Any] = {"params": params}
        if kind == "json":
            options["content"] = json.dumps(value).encode()
        elif kind == "raw":
            options["content"] = value
        if kind != "none":
            options["headers"] = {"content-type": "application/json"}
        # A fresh connection each time: a server error must not poison the next request.
        with server.client(targets["tokens"][auth]) as client:
            client.follow_redirects = True
            response = client.request(method, url, **options)
        check(response, auth, path)

    return run  # type: ignore[no-any-return]


def test_no_operation_answers_a_server_error(server: Server, fuzz_targets: dict[str, Any]) -> None:
    with server.client("") as anonymous:
        document = ok(anonymous.get("/openapi.json"))
    operations = [
        (method.upper(), path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]
    expected = {
        ("POST", f"{API}/connections"),
        ("GET", f"{API}/connections"),
        ("PATCH", f"{API}/connections/{{name}}"),
        ("DELETE", f"{API}/connections/{{name}}"),
        ("POST", f"{API}/connections/{{name}}/validate"),
        ("POST", f"{API}/links"),
        ("POST", f"{API}/recipient/connection"),
        ("POST", f"{API}/transfers"),
        ("GET", f"{API}/models"),
    }
    assert expected <= {(m, p) for m, p, _ in operations}
    failures: list[str] = []
    for method, path, operation in operations:
        try:
            fuzz_operation(server, document, method, path, operation, fuzz_targets)()
        except Exception as exc:  # collect every operation's failure, then report them all
            notes = "\n".join(getattr(exc, "__notes__", []))  # hypothesis's falsifying example
            failures.append(f"{method} {path}: {type(exc).__name__}: {exc}\n{notes}")
    assert not failures, "\n\n".join(failures)


# -- NUL characters: PostgreSQL text refuses them ----------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("GET", f"{API}/connections/a%00b", None),
        ("GET", f"{API}/connections?tenant=a%00", None),
        ("GET", f"{API}/transfers/a%00", None),
        ("GET", f"{API}/transfers?connection=a%00", None),
        ("POST", f"{API}/links/a%00/revoke", None),
        ("POST", f"{API}/links", {"tenant": "a\x00"}),
        ("POST", f"{API}/transfers", {"connection": "a\x00"}),
        (
            "POST",
            f"{API}/connections",
            {
                "name": "nul",
                "tenant": "a\x00b",
                "account_id": CUSTOMER,
                "bucket": "nul-bucket",
                "region": "eu-west-1",
            },
        ),
    ],
    ids=[
        "get-connection",
        "list-tenant",
        "get-transfer",
        "list-transfers",
        "revoke-link",
        "link-tenant",
        "trigger",
        "create-tenant",
    ],
)
def test_nul_characters_are_client_errors(
    request: pytest.FixtureRequest, server: Server, method: str, url: str, body: Any
) -> None:
    with server.client() as client:  # its own connection: a 500 closes it
        if body is not None and "name" in body:
            body = body | {"name": unique("nul")}
        response = client.request(method, url, json=body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error_of(response)
