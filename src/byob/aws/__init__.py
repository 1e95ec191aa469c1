"""AWS sessions and clients: byob's own identity, assumed roles, HMAC keys, endpoint override."""
