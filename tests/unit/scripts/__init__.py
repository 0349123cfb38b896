"""Tests of scripts/ (the dev command, the docs build hooks)."""
