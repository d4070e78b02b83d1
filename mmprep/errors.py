"""Exception types shown to users as clear one-line messages (no traceback)."""


class MmprepError(Exception):
    """An error the user can fix: bad option, missing file, incompatible output."""


class UsageError(MmprepError):
    """Bad usage or an unusable input file (a manifest that cannot be read as one):
    exit code 2, before any work starts."""


class ConfigError(UsageError, ValueError):
    """An invalid configuration value; the message names the field and allowed values."""


class EnvironmentProblem(MmprepError):
    """The installation cannot run the job (a library that does not load, a worker that
    cannot start): exit code 4, with a pointer to ``mmprep doctor``."""


class SampleError(Exception):
    """A failure of one sample in one stage; becomes an error record, never a crash."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage
