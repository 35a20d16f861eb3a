"""Storage layouts: how a run's images are laid out in the data folder (see base.py)."""
