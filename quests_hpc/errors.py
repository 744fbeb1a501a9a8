"""Exception types shared by the whole package.

Every error caused by a user's input derives from :class:`QuestsInputError`, which is a
``ValueError`` (so upstream-style ``except ValueError`` keeps working).  The CLI turns it
into a one-line message and a non-zero exit status.
"""


class QuestsInputError(ValueError):
    """Bad user input: a file, a key, an argument or a value that cannot be used.

    The message names the culprit (file and line, argument and value) and what was
    expected.
    """


class CoincidentAtomsError(QuestsInputError):
    """Two atoms (or an atom and a periodic image of another) sit at distance zero."""

    def __init__(self, i, j, message=None):
        self.i, self.j = int(i), int(j)
        super().__init__(message or f"atoms {self.i} and {self.j} are at the same position (r = 0)")
