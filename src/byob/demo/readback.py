"""Reading the delivered tree back with DuckDB, an engine independent of byob's writer."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import duckdb


def httpfs_extension() -> Path:
    """DuckDB cannot download extensions offline; the PyPI package ships httpfs."""
    import duckdb_extension_httpfs

    base = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    found = sorted(base.glob(f"v{duckdb.__version__}/httpfs.duckdb_extension"))
    if not found:
        raise RuntimeError(f"duckdb-extension-httpfs has no build for DuckDB {duckdb.__version__}")
    return found[0]


def connect_s3(
    endpoint_url: str, *, key: str, secret: str, token: str = "", region: str = "us-east-1"
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection reading s3:// URLs through an S3-compatible endpoint."""
    con = duckdb.connect()
    con.execute(f"LOAD '{httpfs_extension()}'")
    endpoint = urlparse(endpoint_url)
    con.execute(
        "CREATE SECRET byob_s3 (TYPE s3, KEY_ID $key, SECRET $secret, SESSION_TOKEN $token, "
        "REGION $region, ENDPOINT $endpoint, URL_STYLE 'path', USE_SSL $ssl)",
        {
            "key": key,
            "secret": secret,
            "token": token,
            "region": region,
            "endpoint": endpoint.netloc,
            "ssl": endpoint.scheme == "https",
        },
    )
    return con
