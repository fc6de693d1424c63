"""MQTT transport for both sides: paho used the way its docs say, and nothing protocol-specific.

The last will is set before ``connect``; subscriptions are renewed in ``on_connect`` so they
survive reconnects; paho's network thread reconnects with doubling back-off; callbacks only
hand messages to a queue, so a slow consumer never stalls the socket (mosquitto drops QoS 1
messages for a subscriber whose queue fills). Agents' sessions are clean: delivery guarantees
come from the application (outbox, acks, job re-sends), not from broker queues. A controller
running a campaign keeps a persistent session (``session_expiry_s``) so that what devices publish
while it is briefly away or slow waits for it at the broker; that is a shortcut, never the
guarantee.
"""

from __future__ import annotations

import logging
import queue
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent import tls_diagnosis
from agent.errors import EXIT_UNREACHABLE, EdgeperfError, SettingsError

log = logging.getLogger(__name__)


class BrokerUnreachable(EdgeperfError):
    """No connection to the broker within the time asked for."""

    exit_code = EXIT_UNREACHABLE


class BrokerRefused(EdgeperfError):
    """The broker turned this client away for a reason waiting will not change: its certificate, the broker's
    certificate, its credentials."""

    exit_code = EXIT_UNREACHABLE


@dataclass(frozen=True)
class BrokerUrl:
    """``mqtt[s]://[user[:password]@]host[:port]``; the password never appears in logs."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # nor in a repr

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise SettingsError(f"bad broker URL {cls._redact(url)!r}; use mqtt[s]://[user:pass@]host[:port]")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError:
            raise SettingsError(f"bad port in broker URL {cls._redact(url)!r}") from None
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.scheme, parts.hostname, port, user, password)

    @staticmethod
    def _redact(url: str) -> str:
        return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)

    def with_credentials(self, username: str | None, password: str | None) -> BrokerUrl:
        """Credentials given apart from the URL (flags, environment, config file) win over the URL's."""
        return replace(self, username=username or self.username, password=password or self.password)

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}"


@dataclass(frozen=True)
class TlsFiles:
    """CA bundle and optional client certificate for ``mqtts://`` (mutual TLS)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def certificate_name(self) -> str | None:
        """The client certificate's common name (a hardened broker's identity for this client), or None
        when there is no certificate or it cannot be read."""
        subject = (self.certificate() or {}).get("subject", ())
        return next((value for rdn in subject for key, value in rdn if key == "commonName"), None)

    def certificate(self) -> dict | None:
        """The client certificate as the ssl module decodes it (subject, issuer, notBefore, notAfter), or None."""
        return _decode(self.cert_file)

    def ca_certificate(self) -> dict | None:
        """The first certificate in the CA file, decoded the same way, or None."""
        return _decode(self.ca_file)


def _decode(path: Path | None) -> dict | None:
    """A PEM certificate read with the ssl module's own decoder (the agent carries no X.509 library); a failure
    is only a missing hint, never an error."""
    if path is None:
        return None
    try:
        return ssl._ssl._test_decode_cert(str(path))  # type: ignore[attr-defined]
    except (AttributeError, OSError, ssl.SSLError, ValueError):
        return None


@dataclass(frozen=True)
class Message:
    """One received message, as the consumer thread sees it."""

    topic: str
    payload: bytes
    retain: bool


Publish = tuple[str, bytes, int, bool]  # topic, payload, qos, retain


class Connection:
    """A paho client that keeps itself connected and queues what it receives.

    A connection that fails says why in one line (``problem``): a refused certificate on either side
    (``agent.tls_diagnosis``), a broker that refused the CONNECT, or one that cannot be reached.
    """

    def __init__(
        self,
        client_id: str,
        broker: BrokerUrl,
        *,
        subscriptions: Sequence[tuple[str, int]] = (),
        will: Publish | None = None,
        on_connected: Callable[[], None] | None = None,
        loopback: Publish | None = None,
        tls: TlsFiles | None = None,
        mqtt_version: str = "3.1.1",
        keepalive_s: int = 30,
        reconnect_s: tuple[int, int] = (1, 30),
        session_expiry_s: int | None = None,
        max_packet_bytes: int | None = None,
    ) -> None:
        """``loopback`` is published after every (re)connect once the subscriptions are granted, and this client
        subscribes to its topic: its arrival (``looped``) proves the broker lets this client write and read there.
        Messages on that topic are not queued."""
        if mqtt_version not in ("3.1.1", "5"):
            raise SettingsError(f"unknown MQTT version {mqtt_version!r}; use 3.1.1 or 5")
        self.broker, self.inbox = broker, queue.Queue[Message]()
        # The largest packet the broker takes: configured (MQTT 3.1.1 cannot learn it) or announced in
        # CONNACK (MQTT 5), the smaller of the two. A bigger packet would make the broker drop the connection.
        self._configured_max, self.max_packet_bytes = max_packet_bytes, max_packet_bytes
        self.connected, self.looped = threading.Event(), threading.Event()
        self.problem: str | None = None  # why the last connection attempt failed, in one line
        self._refused = threading.Event()  # ... and it was a refusal that retrying alone will not change
        self._answered = self._reported = False  # this attempt: CONNACK received; its failure already said
        self._waiting = False
        self._loopback = loopback
        self._subscriptions = list(subscriptions) + ([(loopback[0], loopback[2])] if loopback else [])
        self._on_connected, self._keepalive = on_connected, keepalive_s
        self._tls = tls or TlsFiles()
        v5 = mqtt_version == "5"
        persistent = session_expiry_s is not None
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else not persistent,  # 3.1.1: the broker's persistent_client_expiration ends it
        )
        self._clean_start = (not persistent) if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY
        self._properties: Properties | None = None
        if v5 and persistent:
            self._properties = Properties(PacketTypes.CONNECT)
            self._properties.SessionExpiryInterval = session_expiry_s
        if broker.username:
            self._client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            files = self._tls
            try:
                self._client.tls_set(
                    ca_certs=str(files.ca_file) if files.ca_file else None,
                    certfile=str(files.cert_file) if files.cert_file else None,
                    keyfile=str(files.key_file) if files.key_file else None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ValueError) as exc:  # ssl.SSLError included: a key that is not the certificate's, a non-PEM file
                raise SettingsError(f"cannot use the TLS files (ca {files.ca_file}, certificate {files.cert_file}, key "
                                    f"{files.key_file}): {exc}; give the files 'edgeperf certs' made for this client") from None
        if will:
            topic, payload, qos, retain = will
            self._client.will_set(topic, payload, qos=qos, retain=retain)  # before connect, or it is never sent
        self._client.reconnect_delay_set(*reconnect_s)
        self._client.max_queued_messages_set(0)
        self._client.on_pre_connect = self._handle_pre_connect
        self._client.on_connect = self._handle_connect
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_message = self._handle_message
        self._client.on_subscribe = self._handle_subscribe
        self._subscribe_mid: int | None = None

    # paho's thread: enqueue and return (a connection closed before CONNACK first asks the broker why: up to
    # ``tls_diagnosis.PROBE_TIMEOUT_S``, before paho's back-off)
    def _handle_pre_connect(self, client, userdata) -> None:
        self._answered = self._reported = False

    def _handle_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._answered = True
        if reason_code.is_failure:
            who = f"user {self.broker.username}" if self.broker.username else "no username"
            self._fail(f"the broker refused the connection: {reason_code} ({who}); check the credentials it was given "
                       "(a broker from 'edgeperf broker config' checks the controller's password, kept beside its "
                       "certificate as controller.password, against its broker.passwd: both come from one PKI)", refused=True)
            return
        self.problem = None
        self._refused.clear()
        announced = getattr(properties, "MaximumPacketSize", None) if properties is not None else None
        limits = [n for n in (self._configured_max, announced) if n]
        self.max_packet_bytes = min(limits) if limits else None
        if self._subscriptions:  # "connected" once the broker has granted them: nothing is missed after
            self._subscribe_mid = client.subscribe(self._subscriptions)[1]
        else:
            self._ready()

    def _handle_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._subscribe_mid:
            return
        refused = [code for code in reason_codes if code.is_failure]
        if refused:
            log.warning("broker %s refused a subscription: %s", self.broker, refused[0])
        self._ready()

    def _ready(self) -> None:
        self.connected.set()
        log.info("connected to %s", self.broker)
        if self._loopback:
            topic, payload, qos, retain = self._loopback
            self._client.publish(topic, payload, qos=qos, retain=retain)
        if self._on_connected:
            self._on_connected()

    def _handle_connect_fail(self, client, userdata) -> None:
        self._failed(sys.exc_info()[1])  # paho calls this inside its ``except OSError``: that error is why

    def _handle_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not reason_code.is_failure or self._reported:
            return
        if not self._answered and self.broker.tls:
            # Closed after the TLS handshake, before the broker's CONNACK: with TLS 1.3 that is how a refused
            # client certificate looks, and its alert may not have been read. Ask once more, listening only.
            refusal = tls_diagnosis.probe(self.broker.host, self.broker.port, self._tls)
            if isinstance(refusal, ssl.SSLError):
                self._failed(refusal)
            else:
                self._fail(f"the broker closed the connection before answering ({reason_code}), though it accepted "
                           "this client's TLS handshake: see the broker's log", refused=False)
            return
        log.warning("lost broker %s: %s (reconnecting)", self.broker, reason_code)

    def _handle_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if self._loopback and msg.topic == self._loopback[0]:
            if msg.payload == self._loopback[1]:
                self.looped.set()
            return
        self.inbox.put(Message(msg.topic, msg.payload, bool(msg.retain)))

    # either thread
    def _failed(self, error: BaseException | None) -> None:
        """A connection attempt failed before the broker answered: say why, in one line."""
        if isinstance(error, ssl.SSLError) and self.broker.tls:
            self._fail(tls_diagnosis.describe(error, self._tls, self.broker.host), refused=True)
        else:
            self._fail(str(error), refused=False)

    def _fail(self, problem: str, refused: bool) -> None:
        """Log ``problem`` (loudly the first time, quietly when it repeats or while ``start`` waits to report it
        itself) and keep it for ``start``; paho retries with its doubling back-off either way."""
        quiet = self._waiting or problem == self.problem
        log.log(logging.INFO if quiet else logging.WARNING, "cannot connect to broker %s: %s (retrying)", self.broker, problem)
        self.problem, self._reported = problem, True
        if refused:
            self._refused.set()

    def start(self, wait_s: float | None = None) -> None:
        """Connect in the background; with ``wait_s``, fail if the first connection takes longer, or at once
        when the broker refuses this client."""
        where = (self.broker.host, self.broker.port)
        self._waiting = wait_s is not None
        try:  # the first attempt in the foreground, so a refused certificate or a wrong port is said at once
            self._client.connect(*where, keepalive=self._keepalive, clean_start=self._clean_start, properties=self._properties)
        except OSError as exc:  # ssl.SSLError included
            self._failed(exc)
            self._client.connect_async(*where, keepalive=self._keepalive, clean_start=self._clean_start,
                                       properties=self._properties)
        self._client.loop_start()
        try:
            if self._waiting and not self._wait_connected(wait_s):
                self._client.loop_stop()
                if self._refused.is_set():
                    raise BrokerRefused(f"no connection to broker {self.broker}: {self.problem}")
                why = f" ({self.problem})" if self.problem else ""
                raise BrokerUnreachable(
                    f"no connection to broker {self.broker} within {wait_s:g} s{why}; is it running and "
                    "reachable (start one with 'edgeperf broker')?"
                )
        finally:
            self._waiting = False

    def _wait_connected(self, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        while not self.connected.wait(0.05):
            if self._refused.is_set() or time.monotonic() >= deadline:
                return False
        return True

    @staticmethod
    def packet_bytes(topic: str, payload: bytes) -> int:
        """A PUBLISH packet's size, at most: fixed header (5), topic (2 + its bytes), packet id (2), properties (4)."""
        return 13 + len(topic.encode()) + len(payload)

    def fits(self, topic: str, payload: bytes) -> bool:
        """Whether the broker takes this message (a bigger one would cost the connection, and be re-sent forever)."""
        return self.max_packet_bytes is None or self.packet_bytes(topic, payload) <= self.max_packet_bytes

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Queue a message; QoS 1 messages published while disconnected go out after reconnecting."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def stop(self, final: Sequence[Publish] = (), timeout_s: float = 5.0) -> None:
        """Publish ``final`` messages (waiting for their acks while connected), then disconnect cleanly."""
        for topic, payload, qos, retain in final:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
            if self.connected.is_set():
                try:
                    info.wait_for_publish(timeout_s)
                except (RuntimeError, ValueError):
                    log.warning("could not deliver %s before disconnecting", topic)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
