"""Exception types shown to users as clear one-line messages (no traceback)."""


class MmprepError(Exception):
    """An error the user can fix: bad option, missing file, incompatible output."""


class ConfigError(MmprepError, ValueError):
    """An invalid configuration value; the message names the field and allowed values."""


class SampleError(Exception):
    """A failure of one sample in one stage; becomes an error record, never a crash."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage
