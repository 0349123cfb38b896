"""Tests of usermetrics.conf's modules (the package's door, get_config, is tests/unit/test_conf.py)."""
