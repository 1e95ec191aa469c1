"""The REST API (FastAPI) and, later, the web pages."""
