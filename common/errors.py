"""The one error type the CLI turns into a single clear line and a non-zero exit."""


class EdgeplaceError(Exception):
    """A user-facing failure: the message says what is wrong and, where it helps, what to do."""
