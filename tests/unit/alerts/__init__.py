"""Tests of usermetrics.alerts."""
