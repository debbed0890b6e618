"""One exception type for every message meant for a person."""


class VignetteError(Exception):
    """A problem the user can act on (bad input, missing book, unavailable model).

    The message is written for a reader of novels, not a programmer: it says what went wrong and, where
    possible, what to do. Entry points print it without a traceback and exit non-zero.
    """

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n{hint}")
