"""Monitoring as code: metric catalogue, rule files, Prometheus and Alertmanager configuration."""
