"""The embedded broker's process: amqtt (:class:`~.server.StrictBroker`) in a child of the hub.

The child serves the devices' listeners (passwords, mutual TLS) and the hub's own listener on the
loopback address; it checks its connected devices against the registry every ``SWEEP_S`` seconds
and drops those no longer allowed (revoked, suspended, decommissioned, deleted). It ends the
moment its hub does, whatever killed the hub: a broker without its hub would accept readings
nobody stores and keep the ports a restarted hub needs.
"""

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fleetmind.devices.service import DeviceService
from fleetmind.devices.store import DeviceStore
from fleetmind.hub.broker import plugins
from fleetmind.hub.broker.rules import BrokerLimits
from fleetmind.hub.broker.server import StrictBroker

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not start (a port taken, a TLS file unreadable...)."""


#: seconds between checks of the connected devices against the registry
SWEEP_S = 2.0
_AUTH = f"{plugins.__name__}.RegistryAuthPlugin"
_ACL = f"{plugins.__name__}.TopicAclPlugin"


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A mutual-TLS listener: its port and the CA, certificate and key files it serves."""

    port: int
    cafile: Path
    certfile: Path
    keyfile: Path
    #: the hub's own client certificate (its SHA-256 fingerprint), when it connects over TLS
    hub_fingerprint: str = ""


def _tls(bind: str, tls: TlsListener) -> dict[str, Any]:
    return {
        "type": "tcp",
        "bind": bind,
        "ssl": True,
        "cafile": str(tls.cafile),
        "certfile": str(tls.certfile),
        "keyfile": str(tls.keyfile),
    }


def broker_config(
    host: str,
    port: int | None,
    registry_url: str,
    hub_secret_hash: str,
    tls: TlsListener | None,
    hub_port: int | None,
) -> dict[str, Any]:
    """amqtt's configuration: the devices' plain listener on ``port`` (None: none) and ``tls``,
    and the hub's listener on ``127.0.0.1:hub_port`` (None: a port the system picks; mutual TLS
    when the hub has a certificate, plain otherwise).

    amqtt fills every field a listener leaves at its default from its ``default`` listener,
    which is the hub's: plain beside the plain devices' listener, TLS only in production,
    where devices have no plain listener."""
    hub_bind = f"127.0.0.1:{hub_port or 0}"
    hub_over_tls = tls is not None and bool(tls.hub_fingerprint)
    listeners: dict[str, Any] = {
        plugins.HUB_LISTENER: _tls(hub_bind, tls) if tls is not None and hub_over_tls else {
            "type": "tcp", "bind": hub_bind
        },
    }  # fmt: skip
    if port is not None:
        listeners["devices"] = {"type": "tcp", "bind": f"{host}:{port}"}
    if tls is not None:
        listeners["devices-tls"] = _tls(f"{host}:{tls.port}", tls)
    return {
        "listeners": listeners,
        "plugins": {
            _AUTH: {
                "registry_url": registry_url,
                "hub_secret_hash": hub_secret_hash,
                "hub_fingerprint": tls.hub_fingerprint if tls is not None else "",
            },
            _ACL: {},
        },
    }


def _serve(config: dict[str, Any], limits: BrokerLimits, log_level: int, ready: Connection) -> None:
    logging.basicConfig(level=log_level, format="%(asctime)s broker %(levelname)s %(message)s")
    # amqtt logs every refused client at ERROR with a traceback; the hub logs what matters
    logging.getLogger("amqtt").setLevel(logging.CRITICAL)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the hub stops us with SIGTERM

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_unless_cancelled)
        parent = multiprocessing.parent_process()
        if parent is not None:  # readable once the hub's process is gone, however it ended
            loop.add_reader(parent.sentinel, _orphaned)
        broker = StrictBroker(config, limits)
        try:
            await broker.start()
        except Exception as exc:  # noqa: BLE001 - said once, plainly; the hub reports it
            log.error("the embedded broker cannot start: %s", exc.__cause__ or exc)  # noqa: TRY400
            os._exit(1)
        ready.send(broker.hub_port)  # the hub connects there: bound, so nobody can take it
        ready.close()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        registry = config["plugins"][_AUTH]["registry_url"]
        devices = DeviceService(DeviceStore(sa.create_engine(registry)))
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SWEEP_S)
            try:
                await broker.drop_disallowed(devices)
            except Exception:
                log.exception("checking connected devices failed; trying again")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), timeout=5)

    asyncio.run(main())


def _unless_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Report what asyncio reports, except a connection's task cancelled as the broker stops
    (asyncio's streams call that an error)."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def _orphaned() -> None:
    log.warning("the hub is gone; the embedded broker stops")
    os._exit(1)  # at once: nothing held is acknowledged, devices send it again


class EmbeddedBroker:
    """Run the embedded broker in a child process for the lifetime of a ``with`` block."""

    def __init__(
        self,
        host: str,
        port: int | None,
        registry_url: str,
        hub_secret_hash: str,
        tls: TlsListener | None = None,
        *,
        hub_port: int | None = None,
        limits: BrokerLimits | None = None,
    ) -> None:
        """``hub_port``: the hub's listener (None: a free port, known once :meth:`start`
        returned)."""
        self.host = host
        self.port = port
        self.tls = tls
        self.hub_port = hub_port or 0
        self._config = broker_config(host, port, registry_url, hub_secret_hash, tls, hub_port)
        self._limits = limits or BrokerLimits()
        self._process: BaseProcess | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the child and return once it listens; BrokerError if it cannot."""
        context = multiprocessing.get_context("spawn")
        ready, child_end = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_serve,
            args=(self._config, self._limits, logging.getLogger().getEffectiveLevel(), child_end),
            name="fleetmind-broker",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        try:
            if not ready.poll(timeout):
                raise BrokerError(f"the embedded broker did not start within {timeout:.0f} s")
            self.hub_port = ready.recv()
        except EOFError:
            raise BrokerError("the embedded broker could not start; see its log") from None
        finally:
            ready.close()
        ports = [f"{self.port} (plain)"] if self.port is not None else []
        ports += [f"{self.tls.port} (mutual TLS)"] if self.tls is not None else []
        log.info(
            "embedded broker on %s: %s; the hub's listener on 127.0.0.1:%d",
            self.host, ", ".join(ports), self.hub_port,
        )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._process = None

    def __enter__(self) -> "EmbeddedBroker":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
