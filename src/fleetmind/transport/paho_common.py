"""What the paho-based clients share: building and configuring a paho client."""

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetmind.transport.address import BrokerAddress


def new_client(client_id: str, *, clean: bool, manual_ack: bool = False) -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )


def configure(client: mqtt.Client, address: BrokerAddress, tls: ssl.SSLContext | None) -> None:
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if tls is not None or address.tls:
        client.tls_set_context(tls or ssl.create_default_context())
