"""Exception types shared by every stage.

Each error carries a message that names the offending value and the way to fix it,
so the command line can print it as it is, without a traceback.
"""


class RecsearchError(Exception):
    """Base class of every error recsearch raises on purpose."""


class InputError(RecsearchError):
    """The input data or an option is invalid; the message names it and the fix."""


class DatasetFormatError(RecsearchError):
    """A dataset directory is missing, incomplete or of an unsupported format version."""


class ModelDirError(RecsearchError):
    """A model directory is missing, corrupted or of an unsupported format version."""
