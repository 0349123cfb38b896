"""Tests of usermetrics.models."""
