"""The embedded broker: amqtt in a child process of the hub, as strict as Mosquitto.

:mod:`.process` runs it, :mod:`.server` serves connections and routes what they publish by
:mod:`.rules` (limits, and what may be published and retained), :mod:`.connections` is a client
connection, :mod:`.hub_link` the way uplink messages reach the hub,
:mod:`.plugins` the authentication and topic ACL.
"""

from fleetmind.hub.broker.plugins import RegistryAuthPlugin
from fleetmind.hub.broker.process import SWEEP_S, BrokerError, EmbeddedBroker, TlsListener
from fleetmind.hub.broker.rules import BrokerLimits

__all__ = [
    "SWEEP_S", "BrokerError", "BrokerLimits", "EmbeddedBroker", "RegistryAuthPlugin", "TlsListener",
]  # fmt: skip
