"""The one error type users see: a one-line message that says what is wrong and what is expected."""


class StreamerError(Exception):
    """A problem with the user's input or setup; the CLI prints it as one line, no traceback."""
