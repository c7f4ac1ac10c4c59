"""One extractor per source; each writes immutable landing files plus a manifest."""
