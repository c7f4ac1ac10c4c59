"""Transform: running dbt, nightly and under Cosmos."""
