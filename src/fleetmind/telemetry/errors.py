"""Errors of telemetry queries.

TelemetryError
+-- InvalidQuery          a bucket, aggregation or time range that cannot be answered
"""


class TelemetryError(Exception):
    pass


class InvalidQuery(TelemetryError):
    pass
