"""MQTT packets written by hand, for attacks a well-behaved client library will not make: a
CONNECT that never comes or comes in part, MQTT 5 wills with a delay, QoS 2, oversized packets,
publishes that never wait for their acknowledgement."""

import socket
import ssl
import struct
import time
from dataclasses import dataclass

CONNACK_ACCEPTED = 0


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _text(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    #: MQTT 5 only: seconds the broker waits before publishing it
    delay_s: int | None = None


def connect_packet(
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    *,
    will: Will | None = None,
    clean: bool = True,
    keepalive: int = 60,
    version: int = 4,
) -> bytes:
    flags = 0x02 if clean else 0
    payload = _text(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        if version == 5:
            properties = b"" if will.delay_s is None else b"\x18" + struct.pack("!I", will.delay_s)
            payload += _length(len(properties)) + properties
        payload += _text(will.topic) + _text(will.payload)
    if username is not None:
        flags |= 0x80
        payload += _text(username)
    if password is not None:
        flags |= 0x40
        payload += _text(password)
    variable = _text("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        variable += b"\x00"  # no CONNECT properties
    body = variable + payload
    return b"\x10" + _length(len(body)) + body


def publish_packet(topic: str, payload: bytes, *, qos: int = 1, packet_id: int = 1,
                   retain: bool = False) -> bytes:  # fmt: skip
    body = _text(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    header = 0x30 | (qos << 1) | (1 if retain else 0)
    return bytes([header]) + _length(len(body)) + body


def subscribe_packet(topic_filter: str, *, qos: int = 1, packet_id: int = 1) -> bytes:
    body = struct.pack("!H", packet_id) + _text(topic_filter) + bytes([qos])
    return b"\x82" + _length(len(body)) + body


class RawClient:
    """One TCP (or TLS) connection speaking hand-made MQTT."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, timeout: float = 5) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock: socket.socket = (
            tls.wrap_socket(sock, server_hostname="127.0.0.1") if tls is not None else sock
        )

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connack(self) -> int | None:
        """The CONNACK's return code, or None if the broker closed the connection instead."""
        try:
            header = self.sock.recv(2)
            if len(header) < 2 or header[0] >> 4 != 2:
                return None
            body = self._exactly(header[1])
        except OSError:
            return None
        return body[1] if len(body) >= 2 else None

    def connect(self, *args: object, **kwargs: object) -> int | None:
        self.send(connect_packet(*args, **kwargs))  # type: ignore[arg-type]
        return self.connack()

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def closed_within(self, seconds: float) -> bool:
        """True if the broker closes the connection within ``seconds``; what it sent meanwhile
        is in ``self.unread``."""
        deadline = time.monotonic() + seconds
        self.unread = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.unread += data
            except TimeoutError:
                continue
            except OSError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()
