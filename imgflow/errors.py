"""imgflow's exception tree.

    ImgflowError                 anything imgflow reports as one line
    ├── UsageError               bad input from the user: exit code 2
    │   ├── ConfigError          imgflow.yaml or IMGFLOW_* variables
    │   └── JobError             the job: base URL, paths file, job JSON
    └── BackendError             a backend could not do its work: exit code 1
        └── DeployError          provisioning on AWS failed (names resource and code)

Only the command line (imgflow/cli/exits.py) turns these into messages and exit codes.
"""

from __future__ import annotations


class ImgflowError(Exception):
    """Base of every error imgflow reports to a user as one line."""

    exit_code = 1


class UsageError(ImgflowError):
    """The user's input is wrong; nothing was written."""

    exit_code = 2


class ConfigError(UsageError):
    """imgflow.yaml or an IMGFLOW_* variable is invalid."""


class JobError(UsageError):
    """The job (base URL, paths, job JSON) is invalid."""


class BackendError(ImgflowError):
    """A backend failed to do its work."""


class Interrupted(BackendError):
    """Stopped by a signal (exit 130); what was done so far is saved."""

    exit_code = 130


class DeployError(BackendError):
    """Provisioning failed; the message names the resource and the AWS error code."""
