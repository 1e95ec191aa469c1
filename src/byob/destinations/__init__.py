"""Where files go: S3 (and Athena on top of it) or a local directory."""
