"""Errors of the twins domain.

TwinError              anything a twin update cannot do
+-- VersionConflict    the caller's version is not the current one (optimistic concurrency)
+-- InvalidDocument    not a JSON object, or larger than the limit
"""


class TwinError(ValueError):
    pass


class VersionConflict(TwinError):
    pass


class InvalidDocument(TwinError):
    pass
