"""Publish: the atomic swap to the published schema, its history, and the roles."""
