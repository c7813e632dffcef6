"""Test-only plugin that exercises every kernel hook; installed in the test environment."""
