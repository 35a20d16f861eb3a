"""imgflow: download large sets of images from the web into storage you own."""

import os

__version__ = "0.1.0"

# Arrow's C++ code allocates from its default memory pool wherever a caller passes none (a
# Parquet writer's pages, its metadata, its encoders). That pool is mimalloc, which keeps
# what it freed for later: a parquet run held 20-30 MB more at its peak than with the system
# allocator, whose freed memory imgflow hands back (imgflow/local/memory.py). Arrow reads
# the choice once, when pyarrow is first loaded, so it is made here, before any module of
# imgflow can load it (a user's own setting is kept; worker processes inherit it).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
