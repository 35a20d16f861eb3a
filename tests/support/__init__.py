"""Test helpers: a scriptable fault-injecting HTTP server (``support.faultserver``)."""
