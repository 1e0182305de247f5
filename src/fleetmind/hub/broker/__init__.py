"""The embedded broker: amqtt in a child process of the hub, as strict as Mosquitto.

:mod:`.process` runs it, :mod:`.server` holds its connection and publishing rules,
:mod:`.connections` a client connection, :mod:`.hub_link` the way uplink messages reach the hub,
:mod:`.plugins` the authentication and topic ACL.
"""

from fleetmind.hub.broker.plugins import RegistryAuthPlugin
from fleetmind.hub.broker.process import SWEEP_S, BrokerError, EmbeddedBroker, TlsListener
from fleetmind.hub.broker.server import BrokerLimits

__all__ = [
    "SWEEP_S", "BrokerError", "BrokerLimits", "EmbeddedBroker", "RegistryAuthPlugin", "TlsListener",
]  # fmt: skip
