"""Tests of usermetrics.templatetags."""
