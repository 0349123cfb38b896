"""Whole-stack tests: real processes (Daphne, Chromium, NAT servers, runmonitor, a Redis of their own)."""
