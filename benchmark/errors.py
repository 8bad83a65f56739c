"""The one exception type that the command line turns into a clean one-line message.

The rule: every exception that reaches the command line is either a ClipbenchError, with a message written
for the user, or a bug, which `cli.run_app` reports as one "internal error, please report" line.
"""


class ClipbenchError(Exception):
    """A problem the user can fix: the message names the thing and what to do.

    `exit_code` is 2 for bad names or arguments, 1 for everything else.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
