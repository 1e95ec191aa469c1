"""Pure rules: no I/O, no boto3, no SQL, no web code."""
