"""Errors raised by the personalization stage."""


class PersonalizationError(Exception):
    """Root of every error raised by personalization/."""

    code = "personalization_error"


class StyleDNAError(PersonalizationError):
    """A collection's style DNA, or params checked against it, is invalid."""

    code = "invalid_style_dna"


class HistoryError(PersonalizationError):
    """The wallet's history could not be read from the chain."""

    code = "history_unavailable"
