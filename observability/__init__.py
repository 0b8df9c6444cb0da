"""Logs and metrics: JSON logs with secret redaction, Prometheus metrics of the background processes."""
