"""Read a tenant's rows as Arrow record batches."""
