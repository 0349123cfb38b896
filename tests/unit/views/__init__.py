"""Tests of usermetrics.views."""
