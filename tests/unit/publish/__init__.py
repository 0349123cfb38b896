"""Tests of usermetrics.publish."""
