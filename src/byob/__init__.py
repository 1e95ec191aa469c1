"""byob: bring your own bucket."""
