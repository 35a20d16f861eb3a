"""The shared download engine: plan, fetch, store, index, consolidate.

No boto3, Typer or rich here: the download Lambda ships this package unchanged, so local
runs and cloud runs fetch the same way. Storage and indexing go through the ports in
``imgflow.engine.ports``.
"""
