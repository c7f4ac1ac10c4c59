"""Quality: the Great Expectations suites and the raw and build gates."""
