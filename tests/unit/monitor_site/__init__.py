"""Tests of monitor_site (the Django project: its settings)."""
