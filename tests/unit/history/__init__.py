"""Tests of usermetrics.history."""
