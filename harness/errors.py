"""The one exception type users see: a message that says what is wrong and what to do."""


class HarnessError(Exception):
    """An error whose message is meant for the user, shown without a traceback by the CLI."""
