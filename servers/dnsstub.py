"""A real authoritative DNS server on loopback, for blocklist tests and the demo.

It speaks the DNS wire protocol over UDP and TCP on the same port, so dnspython's stub
resolver talks to it exactly as it would talk to a production recursive resolver. Tests
never reach a real DNS server.

Use it through the `dns_server` fixture:

    def test_it_sees_the_listing(dns_server):
        dns_server.set("2.0.0.127.zen.example", "A", ["127.0.0.2"])
        resolver = make_resolver(nameserver="127.0.0.1", port=dns_server.port, timeout=1.0)
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

TTL = 60
# A TXT character-string holds at most 255 bytes; longer values (DKIM keys) are split,
# as a real zone file would split them.
TXT_CHUNK = 255


@dataclass(frozen=True)
class ReceivedQuery:
    name: str
    rdtype: str
    transport: str  # "udp" or "tcp"


def _normalise(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _txt_rdata(value: str | Iterable[str]) -> dns.rdata.Rdata:
    if isinstance(value, str):
        raw = value.encode()
        strings = [raw[i : i + TXT_CHUNK] for i in range(0, len(raw), TXT_CHUNK)] or [b""]
    else:
        strings = [part.encode() for part in value]
    return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)


class LoopbackDNSServer:
    """Serves `{(name, rdtype): [values]}`; unknown names get NXDOMAIN, silenced names nothing."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._records: dict[tuple[str, str], list[str | tuple[str, ...]]] = {}
        self._silenced: set[str] = set()
        self._queries: list[ReceivedQuery] = []
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._tcp_clients: set[socket.socket] = set()

    # -- zone editing (called from the test thread) -------------------------------------

    def set(self, name: str, rdtype: str, values: Iterable[str | tuple[str, ...]]) -> None:
        """Replace the records for (name, rdtype). A TXT value given as a tuple is one
        record made of several character-strings; a plain string is one record."""
        rdtype = rdtype.upper()
        prepared = [tuple(v) if not isinstance(v, str) else v for v in values]
        # Fail in the test, not silently in the server thread, on a malformed value.
        for value in prepared:
            self._rdata(rdtype, value)
        with self._lock:
            self._records[(_normalise(name), rdtype)] = prepared

    def remove(self, name: str, rdtype: str) -> None:
        with self._lock:
            self._records.pop((_normalise(name), rdtype.upper()), None)

    def silence(self, name: str) -> None:
        """Never answer queries for `name`, so clients time out."""
        with self._lock:
            self._silenced.add(_normalise(name))

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._silenced.clear()
            self._queries.clear()

    @property
    def queries(self) -> list[ReceivedQuery]:
        with self._lock:
            return list(self._queries)

    def was_asked(self, name: str, rdtype: str | None = None) -> bool:
        wanted = _normalise(name)
        return any(q.name == wanted and (rdtype is None or q.rdtype == rdtype.upper()) for q in self.queries)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> LoopbackDNSServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # UDP gets an ephemeral port; TCP must then bind the same number, which another
        # process may hold, so retry with a fresh UDP port a few times.
        for _ in range(1 if self.port else 20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            break
        else:
            raise RuntimeError("could not bind UDP and TCP to the same loopback port")
        udp.setblocking(False)
        tcp.setblocking(False)
        self._udp, self._tcp, self.port = udp, tcp, port
        self._selector.register(udp, selectors.EVENT_READ, "udp")
        self._selector.register(tcp, selectors.EVENT_READ, "tcp-accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._serve, name=f"loopback-dns:{port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for client in list(self._tcp_clients):
            # shutdown() wakes a thread blocked in recv(); close() alone may not.
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.close()
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._selector.close()

    # -- serving (server thread) ----------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.5):
                if key.data == "wake":
                    return
                if key.data == "udp":
                    self._serve_udp()
                elif key.data == "tcp-accept":
                    self._accept_tcp()

    def _serve_udp(self) -> None:
        assert self._udp is not None
        try:
            wire, peer = self._udp.recvfrom(65535)
        except BlockingIOError:
            return
        reply = self._handle(wire, "udp")
        if reply is not None:
            self._udp.sendto(reply, peer)

    def _accept_tcp(self) -> None:
        assert self._tcp is not None
        try:
            client, _ = self._tcp.accept()
        except BlockingIOError:
            return
        client.setblocking(True)
        client.settimeout(5)
        self._tcp_clients.add(client)
        threading.Thread(target=self._serve_tcp_client, args=(client,), daemon=True).start()

    def _serve_tcp_client(self, client: socket.socket) -> None:
        try:
            while not self._stopping.is_set():
                header = _recv_exactly(client, 2)
                if header is None:
                    return
                (length,) = struct.unpack("!H", header)
                wire = _recv_exactly(client, length)
                if wire is None:
                    return
                reply = self._handle(wire, "tcp")
                if reply is not None:
                    client.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return
        finally:
            self._tcp_clients.discard(client)
            client.close()

    def _handle(self, wire: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response = dns.message.make_response(query)
            response.set_rcode(dns.rcode.NOTIMP)
            return response.to_wire()

        question = query.question[0]
        name = _normalise(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self._queries.append(ReceivedQuery(name=name, rdtype=rdtype, transport=transport))
            if name in self._silenced:
                return None
            values = self._records.get((name, rdtype))
            name_exists = any(known == name for known, _ in self._records)

        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if values:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, question.rdtype)
            for value in values:
                rrset.add(self._rdata(rdtype, value), TTL)
            response.answer.append(rrset)
        elif not name_exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        # A name that exists without this type is NOERROR with an empty answer (NODATA).
        if transport == "tcp":
            return response.to_wire()
        # Over UDP an answer larger than the client can take is truncated, which tells the
        # client to retry over TCP, as a real server does.
        limit = max(query.payload, 512) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            response.answer.clear()
            response.flags |= dns.flags.TC
            return response.to_wire()

    @staticmethod
    def _rdata(rdtype: str, value: str | tuple[str, ...]) -> dns.rdata.Rdata:
        if rdtype == "TXT":
            return _txt_rdata(value)
        if not isinstance(value, str):
            raise TypeError(f"only TXT values may be tuples, got {value!r} for {rdtype}")
        return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return chunks
