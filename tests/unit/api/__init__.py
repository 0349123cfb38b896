"""Tests of usermetrics.api."""
