"""A small real SMTP server for tests (asyncio streams): EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT.

Replies can be scripted (the next RCPT answers 451, a recipient always answers 550, ...); every session's
commands and every accepted message are kept for the test to look at.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Reply = Callable[[int, str], Awaitable[None]]
Ask = Callable[[str], Awaitable[str]]


@dataclass
class Received:
    """One accepted message with its envelope, who logged in, and whether the session was encrypted."""

    sender: str
    recipients: list[str]
    data: bytes
    login: tuple[str, str] | None
    tls: bool

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Session:
    tls: bool
    login: tuple[str, str] | None = None
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)


class SmtpServer:
    """Listens on 127.0.0.1 (a free port). `replies` scripts the next answers to a verb (`MAIL`, `RCPT`, `DATA`
    for the reply after the message's final dot); `refuse` answers RCPT for an address with a fixed code."""

    def __init__(
        self,
        *,
        auth_methods: tuple[str, ...] = ("PLAIN", "LOGIN"),
        credentials: tuple[str, str] | None = None,
        starttls: ssl.SSLContext | None = None,
        implicit_tls: ssl.SSLContext | None = None,
        replies: dict[str, list[int]] | None = None,
        refuse: dict[str, int] | None = None,
        greet: bool = True,
    ) -> None:
        self.auth_methods = auth_methods
        self.credentials = credentials
        self.starttls_context = starttls
        self.implicit_tls = implicit_tls
        self.replies = {verb: list(codes) for verb, codes in (replies or {}).items()}
        self.refuse = refuse or {}
        self.greet = greet
        self.received: list[Received] = []
        self.commands: list[str] = []  # verbs only (AUTH payloads hold the password)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.StreamWriter, asyncio.Task[None] | None] = {}

    async def __aenter__(self) -> SmtpServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.implicit_tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        # Close the sessions still open (Python 3.12+ waits for them in wait_closed) and let them end.
        for writer in self._clients:
            writer.close()
        await asyncio.gather(*(task for task in self._clients.values() if task), return_exceptions=True)
        await self._server.wait_closed()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[SmtpServer]:
        """Serve from a thread of its own, for synchronous (end-to-end) tests."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="smtp-server", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.__aenter__(), loop).result(10)
            yield self
            asyncio.run_coroutine_threadsafe(self.__aexit__(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()

    def _scripted(self, verb: str, default: int) -> int:
        queue = self.replies.get(verb)
        return queue.pop(0) if queue else default

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(tls=self.implicit_tls is not None)
        self._clients[writer] = asyncio.current_task()
        upgrade_failed = False

        async def reply(code: int, text: str = "ok") -> None:
            writer.write(f"{code} {text}\r\n".encode())
            await writer.drain()

        async def ask(challenge: str) -> str:
            await reply(334, challenge)
            return (await reader.readline()).decode().strip()

        try:
            if not self.greet:
                await reader.read()  # say nothing until the client gives up
                return
            await reply(220, "test.local ESMTP ready")
            while line := (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n"):
                verb, _, argument = line.partition(" ")
                verb = verb.upper()
                self.commands.append(verb)
                if verb in {"EHLO", "HELO"}:
                    writer.write(self._ehlo(session).encode())
                    await writer.drain()
                elif verb == "STARTTLS" and self.starttls_context is not None and not session.tls:
                    await reply(220, "go ahead")
                    plain = writer.transport
                    try:
                        await writer.start_tls(self.starttls_context)
                    except AttributeError:
                        # The client hung up in the handshake (it refused our certificate): CPython 3.11 then
                        # leaves the writer without a transport, which its __del__ trips over. Give it the old one.
                        writer._transport = plain  # type: ignore[attr-defined]
                        upgrade_failed = True
                        return
                    session = _Session(tls=True)
                elif verb == "AUTH":
                    await self._auth(session, argument, reply, ask)
                elif verb == "MAIL":
                    address = argument.partition(":")[2].split(" ")[0].strip("<>")
                    code = self._scripted("MAIL", 250)
                    session.sender = address if code == 250 else None
                    await reply(code, "sender ok" if code == 250 else f"<{address}> sender refused")
                elif verb == "RCPT":
                    address = argument.partition(":")[2].split(" ")[0].strip("<>")
                    code = self.refuse.get(address) or self._scripted("RCPT", 250)
                    if code == 250:
                        session.recipients.append(address)
                    await reply(code, "recipient ok" if code == 250 else f"5.1.1 <{address}>: Recipient refused")
                elif verb == "DATA":
                    await self._data(session, reader, reply)
                elif verb == "RSET":
                    session.sender, session.recipients = None, []
                    await reply(250)
                elif verb == "NOOP":
                    await reply(250)
                elif verb == "QUIT":
                    await reply(221, "bye")
                    break
                else:
                    await reply(502, "command not implemented")
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()
            # A TLS client may leave without its close_notify: do not wait for it for ever.
            with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
                if not upgrade_failed:  # that transport never reports its end
                    await asyncio.wait_for(writer.wait_closed(), 2)
            self._clients.pop(writer, None)

    def _ehlo(self, session: _Session) -> str:
        lines = ["test.local", "8BITMIME", "PIPELINING"]
        if self.starttls_context is not None and not session.tls:
            lines.append("STARTTLS")
        if self.auth_methods:
            lines.append("AUTH " + " ".join(self.auth_methods))
        return "".join(f"250{'-' if i < len(lines) - 1 else ' '}{text}\r\n" for i, text in enumerate(lines))

    async def _auth(self, session: _Session, argument: str, reply: Reply, ask: Ask) -> None:
        method, _, initial = argument.partition(" ")
        method = method.upper()
        if method not in self.auth_methods:
            await reply(504, "unrecognized authentication type")
            return
        if method == "PLAIN":
            _, user, password = _b64(initial or await ask("")).split("\0")
        else:
            user = _b64(initial) if initial else _b64(await ask("VXNlcm5hbWU6"))
            password = _b64(await ask("UGFzc3dvcmQ6"))
        if self.credentials is not None and (user, password) != self.credentials:
            await reply(535, "5.7.8 authentication credentials invalid")
            return
        session.login = (user, password)
        await reply(235, "2.7.0 authentication successful")

    async def _data(self, session: _Session, reader: asyncio.StreamReader, reply: Reply) -> None:
        if session.sender is None or not session.recipients:
            await reply(503, "need MAIL and RCPT first")
            return
        await reply(354, "end data with <CR><LF>.<CR><LF>")
        lines = []
        while (line := await reader.readline()) not in {b".\r\n", b".\n", b""}:
            lines.append(line[1:] if line.startswith(b"..") else line)  # dot-stuffing undone
        code = self._scripted("DATA", 250)
        if code == 250:
            self.received.append(
                Received(session.sender, list(session.recipients), b"".join(lines), session.login, session.tls)
            )
        await reply(code, "queued" if code == 250 else "message refused")
        session.sender, session.recipients = None, []


def _b64(text: str) -> str:
    return base64.b64decode(text).decode()


@dataclass
class Certificates:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost it signed."""

    server: ssl.SSLContext
    client: ssl.SSLContext  # trusts the CA only


def make_certificates(directory: Path) -> Certificates:
    now = dt.datetime.now(dt.UTC)

    def build(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = build("test CA", ca_key, ca_name, ca_key, ca=True)
    server_cert = build("localhost", server_key, ca_name, ca_key, ca=False)
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    return Certificates(server=server, client=ssl.create_default_context(cafile=str(ca_path)))
