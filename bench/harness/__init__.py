"""The benchmark's harness: its folders, servers, timing, tools and results files."""
