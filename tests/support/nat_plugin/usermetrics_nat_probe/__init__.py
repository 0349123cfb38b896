"""Test-only NAT plugin: a per-user workflow that sleeps, fails or waits on demand (no LLM)."""
