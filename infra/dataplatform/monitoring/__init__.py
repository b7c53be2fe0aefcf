"""Monitoring as code: the metrics each service exports, the alert rules and
the Grafana dashboard built from them, and Alertmanager's configuration.

Rules and panels name metrics only through ``dataplatform.monitoring.metrics``; tests
prove that every name used exists in the catalog and that each service
really exports what the catalog says.
"""
