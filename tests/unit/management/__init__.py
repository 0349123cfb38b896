"""Tests of usermetrics.management."""
