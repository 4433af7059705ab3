"""Observation of the request path: the one PII mask, audit lines and Prometheus metrics."""
