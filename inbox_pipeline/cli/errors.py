"""``CliError``: a mistake in what the user asked for (one line on stderr, exit status 2)."""


class CliError(Exception):
    """A mistake in what the user asked for; its message is shown as is."""
