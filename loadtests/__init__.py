"""Load generation for execbench: Locust scenarios, experiment specs and the runner (docs/loadtests.md)."""
