"""Mosquitto as FleetMind's broker: everything FleetMind writes for it, in one place.

The layout keeps devices and the hub apart (``per_listener_settings true``):

- the devices' listeners (passwords; certificates over mutual TLS) check ``passwd`` and the CRL,
  and replace a client's id with its username (``use_username_as_clientid``), so a device can
  neither take over another device's session nor hold more than one connection;
- the hub's own listener, bound to the loopback address, checks ``hub.passwd`` (the hub alone)
  and lets the hub choose its client ids (several connections, several hubs);
- one ``acl`` for all; no anonymous clients; QoS at most 1; packets of at most 256 KiB.

Mosquitto reads the files at start and on SIGHUP; :func:`write_files` replaces each atomically.
The files are written from the registry as :class:`BrokerFiles` sees it (the hub's
``DeviceService``); this module imports no registry store, so a harness that starts Mosquitto
(``fleetmind.sim.stack``) needs nothing of the hub.
"""

import os
import signal
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Protocol

from fleetmind.devices import model
from fleetmind.files import write_file
from fleetmind.wire import topics

PASSWORD_FILE = "passwd"
HUB_PASSWORD_FILE = "hub.passwd"
ACL_FILE = "acl"
HUB_ACL_FILE = "hub.acl"
CRL_FILE = "crl.pem"
#: where the hub finds Mosquitto's pid, to make it reread its files
PID_FILE = "mosquitto.pid"
#: the largest MQTT packet either broker takes: a 96 KiB twin document with room to spare
MAX_PACKET_BYTES = 256 * 1024


class RevocationSigner(Protocol):
    """The hub's CA, as far as the CRL goes."""

    def revocation_list(self, revoked: Iterable[tuple[str, datetime]]) -> bytes: ...


class ServerFiles(RevocationSigner, Protocol):
    """The CA as a Mosquitto's TLS listener needs it (:class:`~fleetmind.devices.ca.
    CertificateAuthority`)."""

    def server_files(self, directory: Path, hosts: Iterable[str]) -> tuple[Path, Path, Path]: ...


class BrokerFiles(Protocol):
    """What Mosquitto's files are written from: the hub's ``DeviceService``."""

    @property
    def ca(self) -> RevocationSigner | None: ...

    def secret_hashes(self) -> dict[str, str]:
        """The hashed secrets of the devices that may connect."""
        ...

    def cut_off(self) -> Iterable[str]:
        """The devices denied every topic (suspended, decommissioned, deleted)."""
        ...

    def revocations(self) -> Iterable[tuple[str, datetime]]:
        """The revoked certificates: serial (hex) and when."""
        ...


def password_file(entries: dict[str, str]) -> str:
    """Mosquitto ``password_file`` lines from username to ``$7$`` hash."""
    return "".join(f"{username}:{hashed}\n" for username, hashed in sorted(entries.items()))


def acl_file(cut_off: Iterable[str] = ()) -> str:
    """The devices' listeners' ``acl_file``, equivalent to
    :func:`~fleetmind.devices.model.is_allowed` for devices (``%u`` is the username). It gives
    the hub's identity nothing: a certificate that names ``_hub`` is worth nothing there.

    Devices in ``cut_off`` (suspended, decommissioned, deleted) are denied every topic: Mosquitto
    rereads the file on SIGHUP and checks each message, so a device already connected can no
    longer send or receive anything (its next connection is refused by passwd and CRL)."""
    root = topics.ROOT
    denied = "".join(f"user {device}\ntopic deny #\n\n" for device in sorted(cut_off))
    return (
        "# Written by FleetMind: devices publish under their own up/, read their own down/.\n"
        f"{denied}"
        f"pattern write {root}/d/%u/up/#\n"
        f"pattern read {root}/d/%u/down/#\n"
        f"pattern read {root}/fleet/down/#\n"
    )


def hub_acl_file() -> str:
    """The hub's listener's ``acl_file``: the hub reads every device's ``up/`` and writes every
    ``down/``; nobody else may do anything there."""
    root = topics.ROOT
    return (
        "# Written by FleetMind: the hub reads what devices send and writes what they read.\n"
        f"user {model.HUB_USERNAME}\n"
        f"topic read {root}/d/+/up/#\n"
        f"topic write {root}/d/+/down/#\n"
        f"topic write {root}/fleet/down/#\n"
    )


def config(
    directory: str,
    host: str,
    port: int | None,
    *,
    hub_port: int,
    tls_port: int | None = None,
    hub_tls: bool = False,
    max_connections: int = 50_000,
    autosave_interval: int = 10,
) -> str:
    """A ``mosquitto.conf`` for FleetMind.

    ``port``: the devices' password listener (None: none, certificates only); ``tls_port``: the
    devices' mutual-TLS listener (``ca.crt``, ``server.crt``, ``server.key`` and ``crl.pem`` in
    ``directory``, written by the hub); ``hub_port``: the hub's listener on 127.0.0.1 (with
    ``hub_tls``, mutual TLS: the hub's certificate of the same CA). ``max_connections`` bounds
    each devices' listener.

    Persistence keeps the hub's session and what is queued for it across a clean restart of
    Mosquitto. Mosquitto acknowledges a message once it holds it in memory and writes to disk
    every ``autosave_interval`` seconds: a kill -9 or power cut of Mosquitto itself can lose what
    it acknowledged since its last save (the embedded broker has no such window)."""
    tls_files = (
        f"cafile {directory}/ca.crt\n"
        f"certfile {directory}/server.crt\n"
        f"keyfile {directory}/server.key\n"
        f"crlfile {directory}/{CRL_FILE}\n"
        "require_certificate true\n"
        "use_identity_as_username true\n"
        "tls_version tlsv1.2\n"
    )
    devices = (
        "allow_anonymous false\n"
        f"acl_file {directory}/{ACL_FILE}\n"
        "use_username_as_clientid true\n"
        "max_qos 1\n"
        f"max_connections {max_connections}\n"
    )
    plain = (
        ""
        if port is None
        else f"# devices, with a password\nlistener {port} {host}\n"
        f"password_file {directory}/{PASSWORD_FILE}\n{devices}"
    )
    tls = (
        ""
        if tls_port is None
        else f"# devices, with a certificate\nlistener {tls_port} {host}\n{tls_files}{devices}"
    )
    hub_auth = tls_files if hub_tls else f"password_file {directory}/{HUB_PASSWORD_FILE}\n"
    return (
        "# Written by FleetMind.\n"
        "per_listener_settings true\n"
        f"{plain}{tls}"
        "# the hub, on this machine only\n"
        f"listener {hub_port} 127.0.0.1\n"
        f"{hub_auth}"
        "allow_anonymous false\n"
        f"acl_file {directory}/{HUB_ACL_FILE}\n"
        "max_qos 1\n"
        "# everywhere; the pid file is how the hub asks for a reload of these files\n"
        f"pid_file {directory}/{PID_FILE}\n"
        "# client ids are not logged: the hub's is kept from whoever reads the log\n"
        "connection_messages false\n"
        f"max_packet_size {MAX_PACKET_BYTES}\n"
        "max_queued_messages 1000000\n"
        "max_inflight_messages 0\n"
        "persistence true\n"
        f"persistence_location {directory}/\n"
        f"autosave_interval {autosave_interval}\n"
    )


def write_files(directory: Path, devices: BrokerFiles, hub_secret_hash: str) -> None:
    """Write ``passwd`` (devices that may connect), ``hub.passwd`` (the hub), ``acl`` (devices),
    ``hub.acl`` (the hub) and (with a CA) ``crl.pem``; each is replaced atomically.

    The files are mode 0640: put them in a group the broker's user belongs to.
    """
    directory.mkdir(parents=True, exist_ok=True)
    write_file(directory / PASSWORD_FILE, password_file(devices.secret_hashes()), 0o640)
    hub = password_file({model.HUB_USERNAME: hub_secret_hash})
    write_file(directory / HUB_PASSWORD_FILE, hub, 0o640)
    write_file(directory / ACL_FILE, acl_file(devices.cut_off()), 0o640)
    write_file(directory / HUB_ACL_FILE, hub_acl_file(), 0o640)
    if devices.ca is not None:
        crl = devices.ca.revocation_list(devices.revocations())
        write_file(directory / CRL_FILE, crl, 0o640)


def bootstrap(directory: Path, hub_secret_hash: str) -> None:
    """The files Mosquitto needs to start before the hub has written its own: the hub's password,
    no device yet, the ACL."""
    directory.mkdir(parents=True, exist_ok=True)
    write_file(directory / PASSWORD_FILE, "", 0o640)
    write_file(
        directory / HUB_PASSWORD_FILE, password_file({model.HUB_USERNAME: hub_secret_hash}), 0o640
    )
    write_file(directory / ACL_FILE, acl_file(), 0o640)
    write_file(directory / HUB_ACL_FILE, hub_acl_file(), 0o640)


def reload(directory: Path) -> None:
    """Ask the Mosquitto whose pid is in ``directory/mosquitto.pid`` to reread its files
    (SIGHUP); OSError or ValueError when there is none to ask."""
    os.kill(int((directory / PID_FILE).read_text().strip()), signal.SIGHUP)


def setup(
    directory: Path,
    *,
    ca: ServerFiles | None,
    hub_secret_hash: str,
    host: str,
    port: int | None,
    hub_port: int,
    tls_port: int | None,
    hosts: list[str],
) -> Path:
    """Everything a Mosquitto needs to start for a hub that has not run yet: ``mosquitto.conf``
    (:func:`config`), the hub's password and the ACLs (:func:`bootstrap`), and with ``ca`` and
    ``tls_port`` the CA, a server certificate for ``hosts`` and an empty CRL. The hub, once
    started with ``--mosquitto-dir``, keeps the files current. Returns the configuration's
    path."""
    bootstrap(directory, hub_secret_hash)
    if ca is not None and tls_port is not None:
        ca.server_files(directory, hosts)
        write_file(directory / CRL_FILE, ca.revocation_list([]), 0o640)
    conf = directory / "mosquitto.conf"
    text = config(str(directory), host, port, hub_port=hub_port, tls_port=tls_port)
    write_file(conf, text, 0o644)
    return conf
