"""Load: the raw loader (COPY from the landing zone into the raw schemas, quarantine)."""
