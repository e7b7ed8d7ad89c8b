"""The one exception type that reaches users as a one-line message."""


class UserError(Exception):
    """Bad input from the user: the CLI prints ``error: <message>`` and exits with status 2.

    Raise it before any heavy work starts, with a message that names the file or setting, the
    offending value and what is allowed.
    """
