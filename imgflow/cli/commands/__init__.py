"""One module per command; imgflow/cli/app.py registers them in help order."""
