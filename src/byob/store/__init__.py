"""byob's state: connections, validations, transfers, high-water marks (SQLite or PostgreSQL)."""
