"""Errors of the commands domain.

CommandError           a command that cannot be sent
+-- DeviceOffline      the device is offline and the caller chose to fail fast
+-- CommandNotFound    no command with that id for that device
+-- InvalidCommand     a name or arguments the hub refuses
"""


class CommandError(ValueError):
    pass


class DeviceOffline(CommandError):
    pass


class CommandNotFound(CommandError):
    pass


class InvalidCommand(CommandError):
    pass
