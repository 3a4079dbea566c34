"""The one user-facing error type: a message that names the thing and the fix."""


class LmforgeError(Exception):
    """A problem the user can fix; the CLI prints the message and exits with code 2.

    The message names what was wrong (field, file, reference, value received) and
    how to fix it, in one paragraph.
    """

    exit_code = 2
