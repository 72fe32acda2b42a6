"""Traces, metrics, logs and health: what corpgraph tells its operators."""
