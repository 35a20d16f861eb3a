"""What runs inside Lambda: the plan, download and consolidate steps and their adapters.

The thin handlers in ``lambdas/`` call these; nothing here imports typer, rich or yaml.
``jobs.py`` (where a job's objects live) is shared with the job driver on the user's machine.
"""
