"""Tests of usermetrics.services."""
