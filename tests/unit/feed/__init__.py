"""Tests of usermetrics.feed."""
