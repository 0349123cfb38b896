"""Tests of static/ (the pages' JavaScript as the linter sees it)."""
