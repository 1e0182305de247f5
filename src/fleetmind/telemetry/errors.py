"""Errors of telemetry.

TelemetryError
+-- InvalidQuery          a bucket, aggregation or time range that cannot be answered
+-- StoreUnavailable      the store cannot commit now (I/O, disk, connection): nothing of the
                          batch is durable, so nothing of it may be acknowledged
"""


class TelemetryError(Exception):
    pass


class InvalidQuery(TelemetryError):
    pass


class StoreUnavailable(TelemetryError):
    pass
