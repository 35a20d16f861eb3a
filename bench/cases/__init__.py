"""The benchmark's cases, one module per case or group of cases, on bench/harness."""
