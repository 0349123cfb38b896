"""Tests of usermetrics.management.commands."""
